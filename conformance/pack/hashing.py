"""Content hashes of the pack: one sha256 per file and one digest for the whole pack."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from conformance.spec import load_json

MANIFEST = "pack.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def arrays_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """The identity of named arrays: the same names, dtypes, shapes and bytes give the same
    digest (inputs of a check, of a localisation, of a reference evaluation)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def file_hashes(pack_dir: Path) -> dict[str, str]:
    """sha256 of every file under the pack except the manifest, keyed by POSIX relative path."""
    return {
        path.relative_to(pack_dir).as_posix(): sha256_file(path)
        for path in sorted(pack_dir.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }


def pack_digest(hashes: dict[str, str]) -> str:
    lines = "".join(f"{name}\0{sha}\n" for name, sha in sorted(hashes.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


@dataclass(frozen=True)
class Mismatch:
    path: str
    problem: str  # "modified", "missing", "unexpected"
    expected: str | None
    actual: str | None

    def describe(self) -> str:
        if self.problem == "modified":
            return (
                f"{self.path}: sha256 {self.actual} does not match the manifest's {self.expected}"
            )
        if self.problem == "missing":
            return f"{self.path}: listed in the manifest but missing"
        return f"{self.path}: present but not listed in the manifest"


@dataclass(frozen=True)
class Verification:
    pack_dir: Path
    digest: str
    files_checked: int
    mismatches: tuple[Mismatch, ...]
    digest_ok: bool

    @property
    def ok(self) -> bool:
        return self.digest_ok and not self.mismatches


class PackManifestError(RuntimeError):
    """The pack folder or its manifest cannot be read."""


class PackError(PackManifestError):
    """A file of the pack (model.json, golden.npz, a .pb) is unreadable or malformed: bad input,
    never a runtime's failure. The message names the file and what is wrong with it."""


def read_manifest(pack_dir: Path) -> dict:
    path = pack_dir / MANIFEST
    if not path.is_file():
        raise PackManifestError(f"no pack at {pack_dir}: {MANIFEST} is missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise PackManifestError(f"{path} is not readable JSON: {error}") from error


def manifest_files(manifest: object, where: Path) -> dict[str, str]:
    """The manifest's ``files`` (relative path -> sha256), or a PackError saying what is wrong."""
    if not isinstance(manifest, dict):
        raise PackError(f"{where}: is {type(manifest).__name__}, not a JSON object")
    files = manifest.get("files", {})
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        raise PackError(f"{where}: manifest.files is not an object of path -> sha256 texts")
    return files


def verify_pack(pack_dir: Path) -> Verification:
    manifest = read_manifest(pack_dir)
    expected = manifest_files(manifest, pack_dir / MANIFEST)
    actual = file_hashes(pack_dir)
    mismatches = [
        Mismatch(name, "modified", sha, actual[name])
        for name, sha in sorted(expected.items())
        if name in actual and actual[name] != sha
    ]
    mismatches += [
        Mismatch(n, "missing", expected[n], None) for n in sorted(expected.keys() - actual.keys())
    ]
    mismatches += [
        Mismatch(n, "unexpected", None, actual[n]) for n in sorted(actual.keys() - expected.keys())
    ]
    return Verification(
        pack_dir=pack_dir,
        digest=manifest.get("digest", ""),
        files_checked=len(expected),
        mismatches=tuple(mismatches),
        digest_ok=pack_digest(expected) == manifest.get("digest"),
    )


@dataclass(frozen=True)
class PinCheck:
    """Whether a pack is the one ``spec.json`` ``pinned_packs`` names for this spec version.

    A pack can hash to its own manifest and still not be that pack (goldens rescaled and every
    hash updated): its verdicts are then not conformance results of this spec version.
    """

    spec_version: str
    digest: str
    pinned: str | None  # the digest spec.json pins for spec_version; None: it pins none

    @property
    def ok(self) -> bool:
        return self.pinned is not None and self.digest == self.pinned

    def describe(self) -> str:
        """One line: ``the pinned pack of spec 0.1.0`` or why not, with both digests."""
        if self.ok:
            return f"the pinned pack of spec {self.spec_version}"
        if self.pinned is None:
            return (
                f"NOT the pinned pack of spec {self.spec_version}: spec.json pins no pack for "
                f"that version (digest {self.digest[:16]}...)"
            )
        return (
            f"NOT the pinned pack of spec {self.spec_version}: its digest {self.digest[:16]}... "
            f"is not the pinned {self.pinned[:16]}..., so its verdicts are not conformance "
            f"results of spec {self.spec_version}"
        )


def pinned_digest(spec_version: str | None = None) -> str | None:
    """The pack digest spec.json pins for ``spec_version`` (default: this suite's version)."""
    spec = load_json("spec.json")
    version = str(spec["spec_version"] if spec_version is None else spec_version)
    pinned = spec.get("pinned_packs", {}).get(version)
    return pinned if isinstance(pinned, str) else None


def pin_check(digest: str, spec_version: str | None = None) -> PinCheck:
    """``digest`` (a pack.json digest, verified or not) against spec.json's pin."""
    version = str(load_json("spec.json")["spec_version"] if spec_version is None else spec_version)
    return PinCheck(version, str(digest), pinned_digest(version))
