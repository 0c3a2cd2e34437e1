"""A second run does not localise again what the first one did.

A pack run's localisation of a numeric runtime finding (conformance.localize.pack) costs
several runs of the artifact on the target (IREE: several compiles). Its result is cached in
``<root>/localize/<key[:2]>/<key>/`` (``entry.json`` and the reproducer folder ``repro/``), where
``<root>`` is the compile cache's (``compile_cache.cache_root()``: ``$CONFORMANCE_CACHE_DIR`` or
the user cache folder). The key is sha256 over:

- the artifact's bytes (``compile_cache.artifact_digest``: the ONNX file and its external data),
- the target's description (name, runtime, version, device, options),
- the data set's inputs (dtype, shape, bytes) and the tolerance,
- the failure itself: the failing check's error figures per output (max abs, worst index, ...),
  so a target that now fails differently (another runtime build behind the same version, an
  environment that changes what it computes) is localised afresh, and a target that is not
  deterministic across runs simply misses,
- the localisation code's own source (this package, the float64 reference, the judge), so a
  change of the method never serves an old answer.

Writes are atomic (a temporary folder renamed into place); an entry that cannot be read back
whole is removed and counts as a miss. Only complete localisations are cached (not one that
failed on the target). ``CONFORMANCE_NO_LOCALIZE_CACHE=1``, and ``--no-compile-cache``
(``CONFORMANCE_NO_COMPILE_CACHE=1``: nothing from a cache), bypass it. Entries are small (a
per-node table and a one-to-few-node reproducer); ``conformance`` never prunes them: delete the
folder to reclaim the space.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from conformance.compare.tolerance import Tolerance
from conformance.pack.hashing import arrays_digest
from conformance.spec import SPEC_DIR
from conformance.targets import compile_cache

FOLDER = "localize"
NO_CACHE_ENV = "CONFORMANCE_NO_LOCALIZE_CACHE"
ENTRY = "entry.json"
REPRO = "repro"
FORMAT = 1
RUN_DIR = "${RUN_DIR}"  # the run folder's place in a stored entry's paths
MAX_REPRO_BYTES = 64 * 1024 * 1024  # a bigger reproducer is not worth keeping twice
_PACKAGE = Path(__file__).resolve().parent.parent
_CODE = (
    "localize",
    "usermodel/reference.py",
    "usermodel/evaluate.py",
    "usermodel/corrected.py",
    "compare",
)


def enabled() -> bool:
    """False when the user asked for no cache (this one's variable, or --no-compile-cache)."""
    off = os.environ.get(NO_CACHE_ENV, "").strip().lower() in ("1", "true", "yes", "on")
    return not off and compile_cache.enabled()


@functools.cache
def code_digest() -> str:
    """sha256 over the source of what a localisation computes with."""
    digest = hashlib.sha256()
    for part in _CODE:
        path = _PACKAGE / part
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(file.relative_to(_PACKAGE).as_posix().encode())
            digest.update(file.read_bytes())
    # the reference's corrections are data: they change what it computes too
    digest.update((SPEC_DIR / "reference-corrections.json").read_bytes())
    return digest.hexdigest()


def cache_key(
    artifact_path: Path,
    target: Mapping[str, Any],
    sample: Mapping[str, np.ndarray],
    tolerance: Tolerance,
    failure: Mapping[str, Any],
) -> str:
    """The entry's key (see the module's docstring); ``target`` is the target's description
    (the results file's "targets" entry), ``failure`` the failing check's "outputs" figures."""
    described = {k: target.get(k) for k in ("name", "runtime", "version", "device", "options")}
    parts = {
        "format": FORMAT,
        "code": code_digest(),
        "artifact": compile_cache.artifact_digest(artifact_path),
        "target": described,
        "inputs": arrays_digest(sample),
        "tolerance": [tolerance.atol, tolerance.rtol],
        "failure": failure,
    }
    text = json.dumps(parts, sort_keys=True, default=str, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _rebase(value: Any, old: str, new: str) -> Any:
    """Every path under the run folder ``old`` moved under ``new`` (strings, recursively)."""
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {k: _rebase(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_rebase(v, old, new) for v in value]
    return value


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


class LocalizationCache:
    """Localisations by key; ``root`` defaults to the compile cache's root."""

    def __init__(self, root: Path | None = None) -> None:
        self.folder = (root or compile_cache.cache_root()) / FOLDER

    def _entry_dir(self, key: str) -> Path:
        return self.folder / key[:2] / key

    def get(self, key: str, run_dir: Path) -> dict[str, Any] | None:
        """The stored localisation with its paths (and reproducer folder) moved into
        ``run_dir``, marked ``"cached": true``; None on a miss."""
        where = self._entry_dir(key)
        if not (where / ENTRY).is_file():
            return None
        try:
            stored = json.loads((where / ENTRY).read_text(encoding="utf-8"))
            if not isinstance(stored, dict) or stored.get("format") != FORMAT:
                raise ValueError("not an entry of this format")
            entry = _rebase(stored["entry"], RUN_DIR, str(run_dir))
            repro = entry.get("reproducer")
            if repro:
                if not (where / REPRO).is_dir():
                    raise ValueError("its reproducer folder is missing")
                shutil.copytree(where / REPRO, Path(repro["folder"]), dirs_exist_ok=True)
                if not Path(repro["model"]).is_file():
                    raise ValueError("its reproducer has no model")
        except (OSError, ValueError, KeyError, TypeError) as error:
            del error  # a damaged entry is a miss: localised again, and stored afresh
            shutil.rmtree(where, ignore_errors=True)
            return None
        entry["cached"] = True
        return dict(entry)

    def put(self, key: str, entry: Mapping[str, Any], run_dir: Path) -> bool:
        """Store a complete localisation (not one that failed); True when stored."""
        if "error" in entry or entry.get("cached"):
            return False
        repro = entry.get("reproducer") or {}
        source = Path(repro["folder"]) if repro.get("folder") else None
        if source is not None and (not source.is_dir() or _size(source) > MAX_REPRO_BYTES):
            return False
        final = self._entry_dir(key)
        scratch: Path | None = None
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(prefix=f".{key[:8]}-", dir=final.parent))
            if source is not None:
                shutil.copytree(source, scratch / REPRO)
            stored = {"format": FORMAT, "entry": _rebase(dict(entry), str(run_dir), RUN_DIR)}
            (scratch / ENTRY).write_text(json.dumps(stored, allow_nan=True), encoding="utf-8")
            if final.exists():
                shutil.rmtree(final, ignore_errors=True)
            os.replace(scratch, final)
        except OSError:  # a full or read-only cache folder costs the next run, not this one
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
            return False
        return True
