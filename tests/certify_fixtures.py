"""Bundles for the certification tests: rewrite an honest bundle the way an attacker would (edit a
member and re-hash the manifest, so only the deeper rules can catch it), and craft hostile
archives (down to hand-written local headers, directory entries and end records)."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST, SIGNATURE, RESULTS = "manifest.json", "signature.json", "results.json"
HOSTILE = "<img src=x onerror=alert(1)>"
PERF_DEV_PROFILES = {
    "profiles": {
        "core": {
            "title": "core (mlp only)",
            "summary": "test profile",
            "checks": {"models": ["mlp"], "exporters": "*", "precision": "fp32"},
        },
        "perf-dev": {
            "title": "perf in dev mode",
            "summary": "test profile: the perf rules in dev mode, one model",
            "benchmarks": {
                "models": ["mlp"],
                "mode": "dev",
                "scenarios": ["ColdStart", "SingleStream", "Offline", "CachingGuard"],
                "valid_percentiles": ["p50", "p90"],
            },
        },
    }
}


def members(path: Path) -> dict[str, bytes]:
    """Our own (trusted) bundle's members, in order."""
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def write_zip(
    path: Path, content: dict[str, bytes], infos: dict[str, zipfile.ZipInfo] | None = None
) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns on the duplicate names some cases need
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in content.items():
                archive.writestr((infos or {}).get(name, name), data)
    return path


def rehash(content: dict[str, bytes]) -> dict[str, bytes]:
    """What an attacker without the key does after editing: fix every hash in the manifest."""
    manifest = json.loads(content[MANIFEST])
    manifest["files"] = {
        name: hashlib.sha256(data).hexdigest()
        for name, data in content.items()
        if name not in (MANIFEST, SIGNATURE)
    }
    return {**content, MANIFEST: json.dumps(manifest, indent=1).encode()}


def rebound_report(content: dict[str, bytes]) -> dict[str, bytes]:
    """What a careful attacker does after editing results.json: render its report again with
    the public suite (report.html is bound to results.json), so only the deeper rules catch it."""
    from conformance.certify.bundle import bundle_report

    try:
        return {**content, "report.html": bundle_report(content[RESULTS])}
    except Exception:  # results an attacker broke on purpose: leave the old report
        return content


def rewrite(
    source: Path, out: Path, changes: dict[str, bytes | None], rehashed: bool = True
) -> Path:
    content = members(source)
    for name, data in changes.items():
        if data is None:
            content.pop(name, None)
        else:
            content[name] = data
    if (
        rehashed
        and changes.get(RESULTS)
        and "report.html" in content
        and "report.html" not in changes
    ):
        content = rebound_report(content)
    return write_zip(out, rehash(content) if rehashed else content)


def resign(source: Path, out: Path, private_key: Path) -> Path:
    """Sign a (rewritten) bundle's manifest again with ``private_key``."""
    from conformance.certify import keys, strict_json

    content = members(source)
    signature = keys.sign(keys.load_private(private_key), MANIFEST, content[MANIFEST])
    return write_zip(out, {**content, SIGNATURE: strict_json.dumps(signature)})


def edit_json(source: Path, name: str, edit: Callable[[Any], Any]) -> bytes:
    document = copy.deepcopy(json.loads(members(source)[name]))
    result = edit(document)
    return json.dumps(document if result is None else result, indent=1).encode()


def first_check(document: dict[str, Any], verdict: str) -> dict[str, Any]:
    return next(c for c in document["checks"] if c["verdict"] == verdict)


def retarget(source: Path, out: Path, old: str, new: str) -> Path:
    """Claim another target's results as this one's, consistently in every member (a fabrication
    only re-execution can catch)."""

    def results(document: dict[str, Any]) -> None:
        document["targets"] = {new: {**document["targets"][old], "name": new}}
        for check in document["checks"]:
            check["target"] = new
            check["id"] = check["id"][: -len(old)] + new

    def captured(document: dict[str, Any]) -> None:
        section = document.get(
            "captured", document
        )  # system.json nests it, environment.json does not
        section["target"] = {**section["target"], "name": new}

    def manifest(document: dict[str, Any]) -> None:
        document["target"] = new

    return rewrite(
        source,
        out,
        {
            RESULTS: edit_json(source, RESULTS, results),
            "system.json": edit_json(source, "system.json", captured),
            "environment.json": edit_json(source, "environment.json", captured),
            MANIFEST: edit_json(source, MANIFEST, manifest),
        },
    )


def with_member(source: Path, out: Path, info: zipfile.ZipInfo | str, data: bytes) -> Path:
    content = members(source)
    name = info.filename if isinstance(info, zipfile.ZipInfo) else info
    infos = {name: info} if isinstance(info, zipfile.ZipInfo) else None
    return write_zip(out, {**content, name: data}, infos)


def unix_member(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    return info


def duplicate_name(source: Path, out: Path) -> Path:
    content = members(source)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in content.items():
                archive.writestr(name, data)
            archive.writestr(
                RESULTS, b'{"checks": []}'
            )  # a second results.json: which one is read?
    return out


def overlapping(out: Path) -> Path:
    """Two directory entries pointing at the same local data (the overlapping-entry zip bomb)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.json", b"{}" * 100)
        archive.writestr("b.json", b"[]" * 100)
    data = bytearray(buffer.getvalue())
    second = data.find(b"PK\x01\x02", data.find(b"PK\x01\x02") + 4)
    struct.pack_into("<L", data, second + 42, 0)  # b.json's local header offset -> a.json's
    out.write_bytes(bytes(data))
    return out


def lying_size(source: Path, out: Path) -> Path:
    """results.json's directory entry declares fewer bytes than its data decompresses to."""
    data = bytearray(source.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at != -1:
        name_length = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46 : at + 46 + name_length] == RESULTS.encode():
            struct.pack_into("<L", data, at + 24, 1000)  # uncompressed size
            break
        at = data.find(b"PK\x01\x02", at + 4)
    out.write_bytes(bytes(data))
    return out


# ---- raw archives: local headers, directory and end record written by hand ----

MLP_CORE = {"profiles": {"core": PERF_DEV_PROFILES["profiles"]["core"]}}  # one model: fast


@dataclass
class Raw:
    """One member as stored: what its local header and its directory entry each say."""

    name: bytes
    payload: bytes  # the stored bytes (compressed for deflate)
    method: int
    crc: int
    size: int
    flags: int = 0
    local: dict[str, Any] = field(default_factory=dict)  # local header fields that differ
    after: bytes = b""  # written after the data: a data descriptor, or stray bytes
    external: int = 0o100644 << 16


def raw_members(path: Path, stored: tuple[str, ...] = ()) -> list[Raw]:
    """A bundle's members re-encoded (deflate, or stored for the names in ``stored``): the
    signed manifest hashes contents, not encodings, so anyone can re-encode a signed bundle."""
    out = []
    for name, data in members(path).items():
        if name in stored:
            payload, method = data, zipfile.ZIP_STORED
        else:
            packer = zlib.compressobj(6, zlib.DEFLATED, -15)
            payload, method = packer.compress(data) + packer.flush(), zipfile.ZIP_DEFLATED
        out.append(Raw(name.encode(), payload, method, zlib.crc32(data), len(data)))
    return out


def assemble(
    raws: list[Raw], prefix: bytes = b"", suffix: bytes = b"", comment: bytes = b""
) -> bytes:
    """Local headers and data, then the central directory, then the end record."""
    body, central = bytearray(prefix), bytearray()
    for raw in raws:
        offset = len(body)
        local = {
            "name": raw.name,
            "flags": raw.flags,
            "method": raw.method,
            "crc": raw.crc,
            "compressed": len(raw.payload),
            "size": raw.size,
            **raw.local,
        }
        body += struct.pack(
            "<4s5H3L2H",
            b"PK\x03\x04",
            20,
            local["flags"],
            local["method"],
            0,
            0x21,
            local["crc"],
            local["compressed"],
            local["size"],
            len(local["name"]),
            0,
        )
        body += local["name"] + raw.payload + raw.after
        central += struct.pack(
            "<4s6H3L5H2L",
            b"PK\x01\x02",
            0x0314,
            20,
            raw.flags,
            raw.method,
            0,
            0x21,
            raw.crc,
            len(raw.payload),
            raw.size,
            len(raw.name),
            0,
            0,
            0,
            0,
            raw.external,
            offset,
        )
        central += raw.name
    end = struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, len(raws), len(raws), len(central), len(body), len(comment)
    )
    return bytes(body + central + end + comment + suffix)


def raw_of(raws: list[Raw], name: str) -> Raw:
    return next(r for r in raws if r.name == name.encode())
