"""The certification family's contract: its errors, reason codes and frozen value types.

Every rule the verifier enforces has its own reason code, so a rejected bundle names each rule
it broke; the same codes appear in SPEC.md, the verifier's output and the scoreboard.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class CertifyError(RuntimeError):
    """Base of the family's errors."""


class CertifyUsageError(CertifyError):
    """Bad input to certify, verify, keygen or scoreboard (a missing file, an unknown profile, a
    modified local pack, a key that does not load): exit code 2 in the CLI."""


class KeyFileError(CertifyUsageError):
    """A key file is missing, unreadable or not an Ed25519 key."""


class Reason(enum.StrEnum):
    """Why a bundle is rejected. Each value is one rule; SPEC.md lists them with their meaning."""

    # opening the archive
    NOT_A_ZIP = "NOT_A_ZIP"
    TRUNCATED = "TRUNCATED"
    ARCHIVE_TOO_LARGE = "ARCHIVE_TOO_LARGE"
    TOO_MANY_MEMBERS = "TOO_MANY_MEMBERS"
    PATH_TRAVERSAL = "PATH_TRAVERSAL"
    ABSOLUTE_PATH = "ABSOLUTE_PATH"
    BAD_NAME = "BAD_NAME"
    SYMLINK = "SYMLINK"
    SPECIAL_FILE = "SPECIAL_FILE"
    DUPLICATE_NAME = "DUPLICATE_NAME"
    ENCRYPTED_MEMBER = "ENCRYPTED_MEMBER"
    UNSUPPORTED_COMPRESSION = "UNSUPPORTED_COMPRESSION"
    OVERLAPPING_MEMBERS = "OVERLAPPING_MEMBERS"
    ZIP_BOMB = "ZIP_BOMB"
    CORRUPT_MEMBER = "CORRUPT_MEMBER"
    LOCAL_HEADER_MISMATCH = "LOCAL_HEADER_MISMATCH"  # a local header disagrees with the directory
    DATA_DESCRIPTOR_MISMATCH = "DATA_DESCRIPTOR_MISMATCH"
    STRAY_BYTES = "STRAY_BYTES"  # bytes outside every member, the directory and the end record
    # contents
    MISSING_MEMBER = "MISSING_MEMBER"
    UNEXPECTED_MEMBER = "UNEXPECTED_MEMBER"
    HASH_MISMATCH = "HASH_MISMATCH"
    MALFORMED_JSON = "MALFORMED_JSON"
    SCHEMA_INVALID = "SCHEMA_INVALID"
    MANIFEST_MISMATCH = "MANIFEST_MISMATCH"
    REPORT_MISMATCH = "REPORT_MISMATCH"  # report.html is not the report of results.json
    TOO_LARGE = "TOO_LARGE"  # a member past the verifier's limits on what it will recompute
    # signature
    UNSIGNED = "UNSIGNED"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    # versions
    SPEC_VERSION_MISMATCH = "SPEC_VERSION_MISMATCH"
    PACK_DIGEST_NOT_PINNED = "PACK_DIGEST_NOT_PINNED"
    RUN_INCOMPLETE = "RUN_INCOMPLETE"
    LIVE_RUN = "LIVE_RUN"
    # the checks
    UNKNOWN_PROFILE = "UNKNOWN_PROFILE"
    TARGET_MISMATCH = "TARGET_MISMATCH"
    MISSING_CHECK = "MISSING_CHECK"
    DUPLICATE_CHECK = "DUPLICATE_CHECK"
    UNKNOWN_CHECK = "UNKNOWN_CHECK"
    TOLERANCE_MISMATCH = "TOLERANCE_MISMATCH"
    STRUCTURE_MISMATCH = "STRUCTURE_MISMATCH"
    FIGURES_INCONSISTENT = "FIGURES_INCONSISTENT"
    GOLDEN_MISMATCH = "GOLDEN_MISMATCH"
    VERDICT_MISMATCH = "VERDICT_MISMATCH"
    ATTRIBUTION_MISMATCH = "ATTRIBUTION_MISMATCH"
    # the operator cases (profile ops)
    CASE_SET_NOT_PINNED = "CASE_SET_NOT_PINNED"  # measured on another case set than the pin
    OP_TABLE_MISMATCH = "OP_TABLE_MISMATCH"  # an op table that its case records do not give
    # the accuracy records (reduced-precision profiles)
    ACCURACY_MISMATCH = "ACCURACY_MISMATCH"  # figures, tier or verdict not what the pack gives
    # the benchmarks
    MISSING_BENCHMARK = "MISSING_BENCHMARK"
    BENCHMARK_RULES_NOT_MET = "BENCHMARK_RULES_NOT_MET"
    BENCHMARK_INCONSISTENT = "BENCHMARK_INCONSISTENT"
    # the claims
    CLAIM_MISMATCH = "CLAIM_MISMATCH"
    RERUN_MISMATCH = "RERUN_MISMATCH"
    RERUN_REFUSED = "RERUN_REFUSED"  # --rerun asked, but the bundle's target may not run here
    BAD_TARGET = "BAD_TARGET"  # the bundle's target name or options are not a valid target
    # the scoreboard
    UNTRUSTED_SIGNER = "UNTRUSTED_SIGNER"  # not signed by a key listed for its submitter
    DUPLICATE_BUNDLE = "DUPLICATE_BUNDLE"  # the same bundle, or the same signed results, again


@dataclass(frozen=True)
class Finding:
    """One broken rule: the reason code, what broke it (a member, a check id) and how."""

    reason: Reason
    message: str
    subject: str = ""

    def describe(self) -> str:
        return f"{self.reason}: {self.subject + ': ' if self.subject else ''}{self.message}"


CERTIFIED, NOT_CERTIFIED = "certified", "not certified"

# verify's verdicts and exit codes (2 is bad input, as everywhere)
VERIFIED, REJECTED, UNVERIFIED_SIGNER = "VERIFIED", "REJECTED", "UNVERIFIED-SIGNER"
EXIT_CODES = {VERIFIED: 0, REJECTED: 1, UNVERIFIED_SIGNER: 3}


@dataclass(frozen=True)
class ProfileOutcome:
    """A profile's verdict for one target, recomputed from the recorded figures."""

    profile: str
    status: str  # CERTIFIED or NOT_CERTIFIED
    reasons: tuple[str, ...] = ()  # why not certified; empty when certified
    required: int = 0  # required checks (or benchmark records)
    passed: int = 0  # of which passed (normative) or met the rules

    @property
    def certified(self) -> bool:
        return self.status == CERTIFIED

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reasons": list(self.reasons),
            "required": self.required,
            "passed": self.passed,
        }


@dataclass(frozen=True)
class CheckOutcome:
    """One check as the verifier sees it: its recomputed verdict and whether it counts."""

    check_id: str
    model: str
    exporter: str
    data_set_label: str
    passed: bool  # recomputed, never the stored verdict
    normative: bool  # the pack records the artifact as exporter-clean for this data set
    margin: float | None = None
    verdict: str = ""  # as recorded, for display only (``passed`` is what counts)


@dataclass(frozen=True)
class AccuracyOutcome:
    """One accuracy record (model, artifact, target) as the verifier recomputes it from the
    recorded predictions, the pack's labels and its float64 golden."""

    record_id: str
    model: str
    exporter: str
    precision: str
    accuracy: float | None
    relative: float | None
    tier: str  # "99.9", "99" or "below 99" ("" when not answered)
    top1_agreement: float | None
    passed: bool
    verdict: str = ""  # as recorded, for display only


@dataclass(frozen=True)
class SignatureStatus:
    present: bool
    valid: bool
    key_sha256: str | None = None  # fingerprint of the key that signed
    trusted: bool = False  # checked against a public key the verifier was given

    def describe(self) -> str:
        if not self.present:
            return "unsigned"
        if not self.valid:
            return "signature INVALID"
        who = f"key sha256:{self.key_sha256[:16]}" if self.key_sha256 else "unknown key"
        return f"signed by {who}" + (
            " (the trusted public key)" if self.trusted else ", NOT a trusted key (no --public-key)"
        )


@dataclass(frozen=True)
class Verification:
    """What `conformance verify` found. ``verified`` is the only source of both the summary line
    and the exit code, so they cannot disagree."""

    bundle: str
    findings: tuple[Finding, ...]
    notes: tuple[str, ...] = ()
    manifest: dict[str, Any] = field(default_factory=dict)
    outcomes: tuple[ProfileOutcome, ...] = ()  # recomputed, for the claimed profiles
    checks: tuple[CheckOutcome, ...] = ()
    benchmarks: tuple[dict[str, Any], ...] = ()
    system: dict[str, Any] = field(default_factory=dict)  # what the vendor attests
    target_info: dict[str, Any] = field(
        default_factory=dict
    )  # the target as the suite described it
    signature: SignatureStatus = SignatureStatus(False, False)
    op_table: dict[str, Any] | None = None  # recomputed from the case records (profile ops)
    accuracy: tuple[AccuracyOutcome, ...] = ()  # recomputed accuracy records

    @property
    def verified(self) -> bool:
        """Every rule holds: the bundle is intact and every claim in it is true. Who signed it is
        ``signer_trusted``; both together are the VERIFIED verdict."""
        return not self.findings

    @property
    def signer_trusted(self) -> bool:
        """Signed, and the signature checked against a public key the verifier was given."""
        return self.signature.valid and self.signature.trusted

    @property
    def verdict(self) -> str:
        if not self.verified:
            return REJECTED
        return VERIFIED if self.signer_trusted else UNVERIFIED_SIGNER

    @property
    def reasons(self) -> tuple[Reason, ...]:
        return tuple(dict.fromkeys(f.reason for f in self.findings))

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    @property
    def target(self) -> str:
        return str(self.manifest.get("target", "?"))

    def outcome(self, profile: str) -> ProfileOutcome | None:
        return next((o for o in self.outcomes if o.profile == profile), None)


@dataclass(frozen=True)
class CertifyRequest:
    target: str
    profiles: tuple[str, ...]
    system_path: Path  # the vendor's system description (JSON)
    out_path: Path  # the bundle to write
    key_path: Path | None = None  # the Ed25519 private key (PEM); None: unsigned
    work_dir: Path | None = None  # where the run folder goes; None: a temporary folder
    timeout_s: float | None = None
    # the ops profile's selection of the pinned case set (empty: every case)
    op_types: tuple[str, ...] = ()
    op_cases: tuple[str, ...] = ()
    op_sets: tuple[str, ...] = ()


@dataclass(frozen=True)
class CertifyOutcome:
    bundle: Path
    target: str
    outcomes: tuple[ProfileOutcome, ...]
    signed: bool

    @property
    def certified(self) -> bool:
        return all(o.certified for o in self.outcomes)
