"""The verifier reads a bundle's archive in exactly one way (issue 9 §1, zip parser differential).

A genuine signed bundle is re-encoded by hand (the signature covers the members' contents, not
their encoding, so anyone can do this) and then changed so that the central directory, which the
verifier reads, still describes the genuine members while the local headers, which other zip tools
read, say something else, or bytes are added outside every member. Each shape must be REJECTED
with its own reason; the faithful re-encoding must still verify, so each rejection is the shape's.
"""

from __future__ import annotations

import copy
import json
import random
import shutil
import struct
import subprocess
import zipfile
import zlib
from pathlib import Path

import pytest
from certify_fixtures import MLP_CORE, assemble, members, raw_members, raw_of, rehash, write_zip

from conformance.certify import keys
from conformance.certify.certify import certify
from conformance.certify.command import render_verification
from conformance.certify.context import load_context
from conformance.certify.interface import VERIFIED, CertifyRequest, Reason
from conformance.certify.verify import VerifyOptions, verify_bundle

SYSTEM = {"submitter": "test vendor", "system_name": "CI box", "status": "available"}
ALTERED = b"<p>ALTERED: every check passed</p>"


@pytest.fixture(scope="module")
def context():
    return load_context(profiles=MLP_CORE)


@pytest.fixture(scope="module")
def signed(tmp_path_factory, context) -> tuple[Path, Path]:
    """A genuine bundle (ort:cpu, core restricted to mlp), signed; and its public key."""
    folder = tmp_path_factory.mktemp("signed")
    system = folder / "system.json"
    system.write_text(json.dumps(SYSTEM))
    pair = keys.generate(folder / "vendor.pem")
    request = CertifyRequest("ort:cpu", ("core",), system, folder / "b.zip", pair.private_path)
    return certify(request, context).bundle, pair.public_path


def check(path: Path, context, public_key: Path):
    return verify_bundle(path, context, VerifyOptions(public_key=public_key))


def appended_report(source: Path) -> bytes:
    """report.html stored; its local header (size, CRC) and data carry extra bytes; the
    directory still describes the genuine report, so a directory reader hashes the genuine one."""
    raws = raw_members(source, stored=("report.html",))
    report = raw_of(raws, "report.html")
    longer = report.payload + ALTERED
    report.local.update(crc=zlib.crc32(longer), compressed=len(longer), size=len(longer))
    report.after = ALTERED
    return assemble(raws)


def descriptor(source: Path, lie: bool) -> bytes:
    raws = raw_members(source)
    report = raw_of(raws, "report.html")
    report.flags |= 0x8
    report.local.update(crc=0, compressed=0, size=0)
    size = report.size + (len(ALTERED) if lie else 0)
    report.after = struct.pack("<4s3L", b"PK\x07\x08", report.crc, len(report.payload), size)
    return assemble(raws)


def local_name(source: Path) -> bytes:
    raws = raw_members(source)
    raw_of(raws, "report.html").local["name"] = b"report.htm_"
    return assemble(raws)


def local_method(source: Path) -> bytes:
    raws = raw_members(source, stored=("report.html",))
    raw_of(raws, "report.html").local["method"] = zipfile.ZIP_DEFLATED
    return assemble(raws)


def gap(source: Path) -> bytes:
    raws = raw_members(source)
    raw_of(raws, "results.json").after = b"hidden bytes between members"
    return assemble(raws)


def folder_entry(source: Path) -> bytes:
    raws = raw_members(source)
    raws.append(
        type(raws[0])(b"logs/", b"", zipfile.ZIP_STORED, 0, 0, external=(0o40755 << 16) | 0x10)
    )
    return assemble(raws)


SHAPES = {
    "report-appended-in-local-header": (appended_report, Reason.LOCAL_HEADER_MISMATCH),
    "local-name-differs": (local_name, Reason.LOCAL_HEADER_MISMATCH),
    "local-method-differs": (local_method, Reason.LOCAL_HEADER_MISMATCH),
    "data-descriptor-disagrees": (
        lambda s: descriptor(s, lie=True),
        Reason.DATA_DESCRIPTOR_MISMATCH,
    ),
    "data-before-first-member": (
        lambda s: assemble(raw_members(s), prefix=b"#!/bin/sh\nexit 0\n"),
        Reason.STRAY_BYTES,
    ),
    "data-between-members": (gap, Reason.STRAY_BYTES),
    "trailing-data": (lambda s: assemble(raw_members(s), suffix=b"trailing"), Reason.STRAY_BYTES),
    "archive-comment": (
        lambda s: assemble(raw_members(s), comment=b"look here"),
        Reason.STRAY_BYTES,
    ),
    "concatenated-archives": (lambda s: s.read_bytes() + s.read_bytes(), Reason.STRAY_BYTES),
    "folder-not-in-manifest": (folder_entry, Reason.UNEXPECTED_MEMBER),
}


def test_a_faithful_re_encoding_still_verifies(signed, context, tmp_path):
    source, public_key = signed
    for name, data in {
        "deflate": assemble(raw_members(source)),
        "stored": assemble(raw_members(source, stored=("report.html", "results.json"))),
        "descriptor": descriptor(source, lie=False),
    }.items():
        path = tmp_path / f"{name}.zip"
        path.write_bytes(data)
        verification = check(path, context, public_key)
        assert verification.verified, (name, [f.describe() for f in verification.findings])


@pytest.mark.parametrize("shape", list(SHAPES))
def test_an_ambiguous_archive_is_rejected(shape, signed, context, tmp_path):
    source, public_key = signed
    build, reason = SHAPES[shape]
    path = tmp_path / f"{shape}.zip"
    path.write_bytes(build(source))
    verification = check(path, context, public_key)
    assert not verification.verified and verification.exit_code == 1
    assert reason in verification.reasons, [f.describe() for f in verification.findings]


@pytest.mark.skipif(shutil.which("unzip") is None, reason="needs Info-ZIP unzip")
def test_unzip_extracts_the_altered_report_that_the_verifier_refuses(signed, context, tmp_path):
    """The differential is real: an ordinary zip tool extracts what the local header says."""
    source, public_key = signed
    path = tmp_path / "appended.zip"
    path.write_bytes(appended_report(source))
    with zipfile.ZipFile(path) as archive:  # the directory's view: the genuine report
        assert not archive.read("report.html").endswith(ALTERED)
    extracted = subprocess.run(
        ["unzip", "-p", str(path), "report.html"], capture_output=True, check=False
    ).stdout
    assert extracted.endswith(ALTERED)
    assert Reason.LOCAL_HEADER_MISMATCH in check(path, context, public_key).reasons


def _mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at, kind = rng.randrange(len(out)), rng.random()
        if kind < 0.6:
            out[at] = rng.randrange(256)
        elif kind < 0.8:
            del out[at : at + rng.randint(1, 50)]
        else:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 20)))
    return bytes(out)


def _paths(node, path=()):
    yield path
    children = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, child in children:
        yield from _paths(child, (*path, key))


HOSTILE_VALUES = (None, "x", [], {}, -1, 0, 1e308, 2**62, True, "\x1b[2K\r", [1, 2], {"a": 1})


def _mutate_json(content: dict[str, bytes], rng: random.Random) -> dict[str, bytes]:
    name = rng.choice(["results.json", "manifest.json", "system.json", "environment.json"])
    document = json.loads(content[name])
    paths = list(_paths(document))[1:]
    for _ in range(rng.randint(1, 3)):
        *parents, last = rng.choice(paths)
        node = document
        try:
            for key in parents:
                node = node[key]
            node[last] = copy.deepcopy(rng.choice(HOSTILE_VALUES))
        except (KeyError, IndexError, TypeError):
            pass  # an earlier change removed this path
    return rehash({**content, name: json.dumps(document).encode()})


def test_no_mutated_bundle_ends_in_a_traceback_or_verifies(signed, context, tmp_path):
    """Seeded random damage, to the bytes and to the JSON members (re-hashed): every one ends in
    a verdict that names a rule, and the terminal rendering holds no control character."""
    source, public_key = signed
    rng = random.Random(9)
    genuine = members(source)
    path = tmp_path / "mutated.zip"
    for case in range(120):
        if case % 2:
            write_zip(path, _mutate_json(genuine, rng))
        else:
            path.write_bytes(_mutate_bytes(source.read_bytes(), rng))
        verification = check(path, context, public_key)
        if verification.verdict == VERIFIED:
            # Only bytes that mean nothing may differ: a deflate stream's last byte can carry
            # padding bits after its end-of-block code, which decode to the same member (seen:
            # signature.json's last byte 0x00 -> 0x1a). Every member must read as the genuine one.
            assert members(path) == genuine, case
        text = "\n".join(render_verification(verification))
        assert not any(c in text for c in "\x1b\r"), case
