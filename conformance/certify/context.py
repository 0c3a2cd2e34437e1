"""What a verifier (or certify) judges against: this suite's spec version, the pack pins, the local
pack (itself verified and pinned) and the profiles."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.certify.interface import CertifyUsageError
from conformance.certify.profiles import Profile, load_profiles
from conformance.pack.hashing import PackManifestError, verify_pack
from conformance.pack.load import Pack
from conformance.spec import PACK_DIR, load_json


@dataclass(frozen=True)
class SpecContext:
    spec_version: str
    pinned_packs: Mapping[str, str]
    pack: Pack
    profiles: Mapping[str, Profile] = field(default_factory=dict)

    @property
    def pack_digest(self) -> str:
        return self.pack.digest


def pinned_packs() -> dict[str, str]:
    return dict(load_json("spec.json").get("pinned_packs", {}))


def load_context(
    pack_dir: Path = PACK_DIR, profiles: Mapping[str, Any] | None = None
) -> SpecContext:
    """The local pack must hash to its manifest and be the pack the spec pins for its version:
    a verifier with a modified pack could be made to accept anything."""
    spec_version = str(load_json("spec.json")["spec_version"])
    try:
        verification = verify_pack(Path(pack_dir))
    except PackManifestError as error:
        raise CertifyUsageError(str(error)) from error
    if not verification.ok:
        first = (
            verification.mismatches[0].describe()
            if verification.mismatches
            else "the digest does not match"
        )
        raise CertifyUsageError(
            f"the local pack {pack_dir} is modified ({first}); reinstall the suite"
        )
    pins = pinned_packs()
    if pins.get(spec_version) != verification.digest:
        raise CertifyUsageError(
            f"the local pack's digest {verification.digest[:16]}... is not the one spec.json pins "
            f"for spec {spec_version} ({str(pins.get(spec_version))[:16]}...)"
        )
    return SpecContext(spec_version, pins, Pack(Path(pack_dir)), load_profiles(profiles))
