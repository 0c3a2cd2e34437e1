"""What a run's inputs must be, checked before the first check: the timeout, the pack (intact,
pinned, readable), the selection, the run folder and a results file to resume.

Every refusal is one ``RunInputError``: one line naming the input and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from conformance.pack.hashing import PackManifestError, Verification, pin_check, verify_pack
from conformance.pack.load import Pack
from conformance.results.document import SCHEMA_VERSION, ResultsFileError, load_document
from conformance.spec import load_json


class RunInputError(ValueError):
    """Bad input to a run (pack, targets, selection, run folder, resume, timeout): one line that
    names the input and what is allowed. The CLI turns it into exit code 2."""


def check_timeout_s() -> float:
    return float(load_json("spec.json")["check_timeout_s"])


def valid_timeout(timeout_s: float | None) -> float:
    if timeout_s is None:
        return check_timeout_s()
    if not isinstance(timeout_s, (int, float)) or not math.isfinite(timeout_s) or timeout_s <= 0:
        raise RunInputError(
            f"timeout {timeout_s!r}: a timeout is a positive, finite number of seconds"
        )
    return float(timeout_s)


def verified_pack(pack_dir: Path) -> Verification:
    try:
        verification = verify_pack(Path(pack_dir))
    except PackManifestError as error:
        raise RunInputError(str(error)) from error
    if not verification.ok:
        first = (
            verification.mismatches[0].describe()
            if verification.mismatches
            else "the digest does not match the listed hashes"
        )
        raise RunInputError(
            f"the pack at {pack_dir} is corrupted ({len(verification.mismatches)} mismatch(es); "
            f"first: {first}); reinstall it or rebuild it with `conformance pack build`"
        )
    return verification


def pin_warning(pack: Pack) -> str | None:
    """A line saying the pack is not the one the spec pins for its version (None when it is)."""
    check = pin_check(pack.digest, str(pack.manifest.get("spec_version", "")) or None)
    return None if check.ok else f"warning: this pack is {check.describe()}"


def validate_selection(pack: Pack, models: Sequence[str], exporters: Sequence[str]) -> None:
    names = [m.name for m in pack.models]
    unknown = [m for m in models if m not in names]
    if unknown:
        raise RunInputError(
            f"unknown model(s) {', '.join(unknown)}; the pack has {', '.join(sorted(names))}"
        )
    known = list(pack.manifest["exporters"])
    unknown = [e for e in exporters if e not in known]
    if unknown:
        raise RunInputError(
            f"unknown exporter(s) {', '.join(unknown)}; the pack has {', '.join(sorted(known))}"
        )


def read_goldens(pack: Pack, models: Sequence[str]) -> None:
    """Load the selected goldens now, so a malformed one is bad input before the first check
    (PackError), not a traceback in the middle of the run; they are cached for the checks."""
    for model in pack.models:
        if not models or model.name in models:
            model.golden  # noqa: B018 - the load is the point


def writable_run_dir(run_dir: Path) -> None:
    """Refuse a run folder that cannot hold the results before any check runs."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunInputError(f"--out {run_dir} is a file, not a folder: name a folder for the run")
    probe = run_dir / ".write-probe"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise RunInputError(
            f"--out {run_dir} is not a writable folder ({error.strerror or error}): "
            "name a folder this user can write"
        ) from error


def other_pack(path: Path, run: dict[str, Any], pack: Pack) -> None:
    digest = str(run.get("pack_digest"))
    if digest != pack.digest:
        raise RunInputError(f"{path} was measured on pack {digest[:12]}, not {pack.digest[:12]}")


def read_resumable(path: Path, pack: Pack, live: bool) -> dict[str, Any]:
    if not path.is_file():
        raise RunInputError(f"nothing to resume: {path} does not exist")
    try:
        document = load_document(path)
    except (OSError, ResultsFileError) as error:
        raise RunInputError(f"cannot resume: {error}") from error
    run = document.get("run")
    if (
        not isinstance(run, dict)
        or not isinstance(document.get("checks"), list)
        or not isinstance(document.get("targets"), dict)
    ):
        raise RunInputError(f"cannot resume: {path} is not a results document")
    if document.get("schema_version") != SCHEMA_VERSION:
        raise RunInputError(
            f"cannot resume: {path} has results schema {document.get('schema_version')!r}, "
            f"this suite writes {SCHEMA_VERSION!r}; start a new run"
        )
    if run.get("spec_version") != pack.manifest["spec_version"]:
        raise RunInputError(
            f"cannot resume: {path} was measured under spec {run.get('spec_version')!r}, "
            f"this pack is spec {pack.manifest['spec_version']!r}; start a new run"
        )
    if "live" in run and not live:
        raise RunInputError(f"{path} is a live run: resume it with --live")
    other_pack(path, run, pack)
    return document
