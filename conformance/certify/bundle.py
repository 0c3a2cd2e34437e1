"""Write a certification bundle: one zip with the results, the report, the environment, the
vendor's system description, logs and a manifest of sha256 hashes, optionally signed.

Layout (every path is relative, no links, no folders but logs/):
    manifest.json     bundle format, suite/spec/pack versions, pack digest, target, the profile
                      outcomes certify computed, sha256 of every other member
    signature.json    Ed25519 signature over manifest.json's bytes (only with --key)
    results.json      the run's results document, byte for byte
    report.html       the HTML report of results.json, rendered deterministically from it
                      (bundle_report): verify renders it again and compares byte for byte
    environment.json  what the suite captured about this machine and the target
    system.json       {"attested": the vendor's file, "captured": what the suite saw}
    ops.json          profile ops only: the target's op table, as its case records give it
    logs/certify.log  what certify did and printed
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conformance import __version__
from conformance.certify import keys, schemas, strict_json
from conformance.certify.interface import CertifyError, CertifyUsageError, ProfileOutcome

BUNDLE_FORMAT = "1"
MANIFEST = "manifest.json"
SIGNATURE = "signature.json"
RESULTS = "results.json"
REPORT = "report.html"
ENVIRONMENT = "environment.json"
SYSTEM = "system.json"
LOG = "logs/certify.log"
OPS = "ops.json"  # profile ops: the target's op table (conformance.certify.ops.table_member)
REQUIRED_MEMBERS = (RESULTS, REPORT, ENVIRONMENT, SYSTEM)
MAX_SYSTEM_BYTES = 64 * 1024


def bundle_report(results: bytes) -> bytes:
    """The report a bundle carries: the HTML report of ``results``, dated by the run's own end
    (not by the time of rendering), so that the same results always give the same bytes and the
    verifier can vouch for the report by rendering it again."""
    import dataclasses

    from conformance.report.html import render_html
    from conformance.report.model import build_view

    document = strict_json.loads(results)
    run = document.get("run", {}) if isinstance(document, dict) else {}
    dated = (
        str(run.get("finished_at") or run.get("started_at") or "") if isinstance(run, dict) else ""
    )
    view = dataclasses.replace(build_view(document), generated_at=dated)
    return render_html(view).encode("utf-8")


def bound(files: Mapping[str, bytes]) -> dict[str, bytes]:
    """``files`` with the report replaced by the one bound to the results (bundle_report)."""
    out = dict(files)
    if RESULTS in out and REPORT in out:
        out[REPORT] = bundle_report(out[RESULTS])
    return out


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def load_attested(path: Path) -> dict[str, Any]:
    """The vendor's system description, checked against spec/schemas/system.schema.json#attested."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise CertifyUsageError(
            f"cannot read the system description {path}: {error.strerror or error}"
        ) from error
    if len(data) > MAX_SYSTEM_BYTES:
        raise CertifyUsageError(f"{path}: larger than {MAX_SYSTEM_BYTES} bytes")
    try:
        attested = strict_json.loads(data)
    except strict_json.MalformedJson as error:
        raise CertifyUsageError(f"{path}: not JSON ({error})") from error
    problems = schemas.errors(schemas.SYSTEM, attested, "$defs/attested")
    if problems:
        raise CertifyUsageError(f"{path} is not a system description: {'; '.join(problems)}")
    return attested


def captured(document: Mapping[str, Any], target: str) -> dict[str, Any]:
    """What the suite itself saw: the target's description and the machine's environment."""
    return {
        "target": dict(document["targets"].get(target, {})),
        "environment": dict(document["environment"]),
    }


def system_document(
    attested: dict[str, Any], document: Mapping[str, Any], target: str
) -> dict[str, Any]:
    return {"attested": attested, "captured": captured(document, target)}


def environment_document(document: Mapping[str, Any], target: str) -> dict[str, Any]:
    run = document["run"]
    return {
        **captured(document, target),
        "suite_version": run["suite_version"],
        "spec_version": run["spec_version"],
        "pack_version": run["pack_version"],
        "pack_digest": run["pack_digest"],
        "command": run["command"],
    }


def manifest_for(
    document: Mapping[str, Any],
    target: str,
    outcomes: tuple[ProfileOutcome, ...],
    files: Mapping[str, bytes],
) -> dict[str, Any]:
    run = document["run"]
    files = bound(files)
    return {
        "bundle_format": BUNDLE_FORMAT,
        "suite_version": __version__,
        "spec_version": run["spec_version"],
        "pack_version": run["pack_version"],
        "pack_digest": run["pack_digest"],
        "target": target,
        "created_at": utc_now(),
        "profiles": {o.profile: o.as_dict() for o in outcomes},
        "files": {name: sha256(data) for name, data in sorted(files.items())},
    }


def _member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=datetime.now(UTC).timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o100644 << 16  # a regular file, rw-r--r--
    info.create_system = 3
    return info


def write_bundle(
    out_path: Path,
    files: Mapping[str, bytes],
    manifest: Mapping[str, Any],
    key: Ed25519PrivateKey | None = None,
) -> Path:
    """Write the zip atomically (a temporary file beside it, then a rename)."""
    out_path = Path(out_path)
    manifest_bytes = strict_json.dumps(manifest)
    members = {MANIFEST: manifest_bytes, **bound(files)}
    if key is not None:
        members[SIGNATURE] = strict_json.dumps(keys.sign(key, MANIFEST, manifest_bytes))
    scratch = out_path.with_name(out_path.name + ".tmp")
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(scratch, "w") as archive:
            for name, data in members.items():
                archive.writestr(_member(name), data)
        os.replace(scratch, out_path)
    except OSError as error:
        raise CertifyError(f"cannot write the bundle {out_path}: {error}") from error
    return out_path
