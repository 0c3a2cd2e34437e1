"""`conformance scoreboard`: certified runtimes side by side, from verified bundles only.

Every bundle is verified first (offline). Only verified bundles are compared, and a verified bundle
is by construction at this suite's spec version and pinned pack digest; the others are listed
with the rules they broke. Every figure shown is the verifier's recomputation, never a bundle's
own claim: profile outcomes, pass rates per model family, and an interop column counting the
normative checks (model x artifact x test data set) that pass on every compared target, after
wpt.fyi's interop view. Performance is shown as measured under the cert-mode rules, not judged.

Who made a bundle is part of what is compared. With a trusted-keys file (submitter -> the
sha256 fingerprints of that submitter's published keys), a bundle is compared only when it is
signed by a key listed for the submitter it attests (UNTRUSTED_SIGNER otherwise). Without one,
bundles are compared but every one is marked "signer not trusted". A bundle counted twice (the
same file, or another file with the same results.json) is compared once (DUPLICATE_BUNDLE).
"""

from __future__ import annotations

import hashlib
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conformance.certify.context import SpecContext
from conformance.certify.interface import (
    CertifyUsageError,
    CheckOutcome,
    Finding,
    Reason,
    Verification,
)
from conformance.untrusted import UntrustedInputError, loads_strict_json, printable

MAX_TRUSTED_KEYS_BYTES = 1 << 20
FINGERPRINT = re.compile(r"^(?:sha256:)?([0-9a-f]{64})$")


@dataclass(frozen=True)
class Entry:
    """One bundle: who submitted what, and what the verifier made of it."""

    path: str
    target: str
    submitter: str
    system_name: str
    verification: Verification
    digest: str = ""  # sha256 of the bundle file
    results_digest: str = ""  # the manifest's sha256 of results.json
    refusals: tuple[Finding, ...] = ()  # the scoreboard's own rules (trust, duplicates)
    signer: str = ""  # how the signer was checked, for the verification column

    @property
    def compared(self) -> bool:
        return self.verification.verified and not self.refusals

    @property
    def findings(self) -> tuple[Finding, ...]:
        return self.verification.findings + self.refusals

    @property
    def reasons(self) -> tuple[Reason, ...]:
        return tuple(dict.fromkeys(f.reason for f in self.findings))

    @property
    def label(self) -> str:
        return f"{self.target} · {self.system_name}" if self.system_name else self.target

    @property
    def runtime(self) -> str:
        info = self.verification.target_info
        if not info.get("available"):
            return ""
        return f"{info.get('runtime', '?')} {info.get('version', '?')} on {info.get('device', '?')}"


@dataclass(frozen=True)
class Cell:
    passed: int
    total: int

    @property
    def rate(self) -> float:
        return self.passed / self.total if self.total else 0.0

    @property
    def css(self) -> str:
        return (
            "pass" if self.total and self.passed == self.total else "fail" if self.total else "skip"
        )


@dataclass(frozen=True)
class FamilyRow:
    model: str
    cells: tuple[Cell, ...]  # one per compared entry
    interop: Cell  # checks passing on every compared entry


@dataclass(frozen=True)
class PerfRow:
    model: str
    single_stream_p50_ms: tuple[float | None, ...]  # one per compared entry
    offline_best: tuple[tuple[float, int] | None, ...]  # (samples/s, batch)


@dataclass(frozen=True)
class OpsCell:
    """A bundle's op coverage (profile ops), recomputed from its case records: op types whose
    every case passes (the headline), op types with a case that ran, op types in its table."""

    all_passing: int
    tested: int
    total: int
    cases: int
    selection: str  # "every case" or the certify selection (--op/--case/--set)


@dataclass(frozen=True)
class PrecisionCell:
    """A bundle's verdict at one reduced precision and its worst accuracy tier (recomputed)."""

    precision: str
    status: str  # the profile outcome: certified / not certified
    tier: str  # the worst tier over its accuracy records ("" when it has none)
    records: int  # accuracy records recomputed
    worst_relative: float | None  # the lowest accuracy relative to fp32 among them


@dataclass(frozen=True)
class Scoreboard:
    generated_at: str
    spec_version: str
    pack_digest: str
    profiles: tuple[str, ...]
    compared: tuple[Entry, ...]
    excluded: tuple[Entry, ...]
    families: tuple[FamilyRow, ...]
    interop_total: Cell
    perf: tuple[PerfRow, ...]
    median_p50_ms: tuple[float | None, ...]  # per compared entry, over the perf rows
    trusted_keys: bool = False  # compared entries are signed by their submitter's listed key
    ops: tuple[OpsCell | None, ...] = ()  # per compared entry (None: no ops profile)
    precisions: tuple[str, ...] = ()  # the reduced precisions some compared bundle certifies
    precision_cells: tuple[tuple[PrecisionCell | None, ...], ...] = ()  # entry -> precision

    @property
    def has_ops(self) -> bool:
        return any(cell is not None for cell in self.ops)


def entry_of(path: Path, verification: Verification) -> Entry:
    system = verification.system
    files = verification.manifest.get("files")
    results_digest = files.get("results.json") if isinstance(files, dict) else None
    try:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        digest = ""
    return Entry(
        str(path),
        verification.target,
        str(system.get("submitter", "")),
        str(system.get("system_name", "")),
        verification,
        digest,
        results_digest if isinstance(results_digest, str) else "",
    )


TrustedKeys = dict[str, frozenset[str]]


def load_trusted_keys(path: Path) -> TrustedKeys:
    """``{"submitter": ["sha256:<hex>", ...], ...}``: each submitter's published key fingerprints
    (``conformance keygen`` prints them). CertifyUsageError when the file is not that."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise CertifyUsageError(f"cannot read the trusted keys {path}: {error.strerror}") from error
    try:
        document = loads_strict_json(data, max_bytes=MAX_TRUSTED_KEYS_BYTES)
    except UntrustedInputError as error:
        raise CertifyUsageError(f"{path}: not JSON ({error})") from error
    shape = 'an object {"submitter": ["sha256:<64 hex>", ...]}'
    if not isinstance(document, dict):
        raise CertifyUsageError(f"{path}: the trusted keys must be {shape}")
    trusted: TrustedKeys = {}
    for submitter, prints in document.items():
        if not isinstance(prints, list) or not prints:
            raise CertifyUsageError(f"{path}: {printable(submitter, 80)!r}: expected {shape}")
        found = []
        for value in prints:
            match = FINGERPRINT.match(value) if isinstance(value, str) else None
            if match is None:
                raise CertifyUsageError(
                    f"{path}: {printable(submitter, 80)!r}: {printable(value, 80)!r} is not a "
                    "key fingerprint (sha256:<64 lowercase hex>)"
                )
            found.append(match.group(1))
        trusted[submitter] = frozenset(found)
    return trusted


def judge_entries(entries: Sequence[Entry], trusted: TrustedKeys | None) -> list[Entry]:
    """The scoreboard's own rules on top of verification: signer trust and duplicates."""
    out: list[Entry] = []
    seen_files: dict[str, str] = {}
    seen_results: dict[str, str] = {}
    for entry in entries:
        refusals: list[Finding] = []
        signature = entry.verification.signature
        if trusted is None:
            signer = "signer not trusted (no trusted keys given)"
        elif not (signature.valid and signature.key_sha256):
            signer = "unsigned"
            refusals.append(
                Finding(Reason.UNTRUSTED_SIGNER, "the bundle is not signed", entry.path)
            )
        elif signature.key_sha256 not in trusted.get(entry.submitter, frozenset()):
            signer = f"signed by an unlisted key sha256:{signature.key_sha256[:16]}"
            refusals.append(
                Finding(
                    Reason.UNTRUSTED_SIGNER,
                    f"signed by key sha256:{signature.key_sha256[:16]}, which the trusted keys do "
                    f"not list for submitter {printable(entry.submitter, 80)!r}",
                    entry.path,
                )
            )
        else:
            signer = f"signed by {printable(entry.submitter, 80)}'s trusted key"
        if entry.verification.verified and not refusals:
            first = seen_files.get(entry.digest) if entry.digest else None
            first = first or (
                seen_results.get(entry.results_digest) if entry.results_digest else None
            )
            if first is not None:
                refusals.append(
                    Finding(
                        Reason.DUPLICATE_BUNDLE,
                        f"the same bundle or the same results as {first}: counted once",
                        entry.path,
                    )
                )
            else:
                if entry.digest:
                    seen_files[entry.digest] = entry.path
                if entry.results_digest:
                    seen_results[entry.results_digest] = entry.path
        out.append(replace(entry, refusals=tuple(refusals), signer=signer))
    return out


def check_key(check: CheckOutcome) -> tuple[str, str, str]:
    return check.model, check.exporter, check.data_set_label


def family_rows(compared: Sequence[Entry], models: list[str]) -> tuple[tuple[FamilyRow, ...], Cell]:
    by_entry = [{check_key(c): c for c in e.verification.checks if c.normative} for e in compared]
    keys = sorted({k for checks in by_entry for k in checks})
    everywhere = {
        k for k in keys if by_entry and all(k in checks and checks[k].passed for checks in by_entry)
    }
    rows = []
    for model in models:
        mine = [k for k in keys if k[0] == model]
        cells = tuple(
            Cell(sum(1 for k in mine if k in checks and checks[k].passed), len(mine))
            for checks in by_entry
        )
        rows.append(
            FamilyRow(model, cells, Cell(sum(1 for k in mine if k in everywhere), len(mine)))
        )
    return tuple(rows), Cell(len(everywhere), len(keys))


def best_offline(record: dict[str, Any]) -> tuple[float, int] | None:
    entries = [
        e for e in record.get("throughput", []) if isinstance(e.get("samples_per_s"), (int, float))
    ]
    if not entries:
        return None
    best = max(entries, key=lambda e: e["samples_per_s"])
    return float(best["samples_per_s"]), int(best["batch"])


def perf_rows(compared: Sequence[Entry], models: list[str]) -> tuple[PerfRow, ...]:
    """Cert-mode figures of records that completed (status ok); a model with none anywhere is
    left out."""
    rows = []
    for model in models:
        p50s, offline = [], []
        for entry in compared:
            mine = [
                b
                for b in entry.verification.benchmarks
                if b.get("model") == model and b.get("mode") == "cert" and b.get("status") == "ok"
            ]
            single = next((b for b in mine if b.get("scenario") == "SingleStream"), None)
            p50s.append(
                float(single["latency_ms"]["p50"]) if single and "latency_ms" in single else None
            )
            batch = next((b for b in mine if b.get("scenario") == "Offline"), None)
            offline.append(best_offline(batch) if batch else None)
        if any(v is not None for v in p50s + offline):
            rows.append(PerfRow(model, tuple(p50s), tuple(offline)))
    return tuple(rows)


def median_p50(rows: Sequence[PerfRow], column: int) -> float | None:
    values = [v for r in rows if (v := r.single_stream_p50_ms[column]) is not None]
    return statistics.median(values) if values else None


TIER_ORDER = ("99.9", "99", "below 99")


def ops_cell(entry: Entry) -> OpsCell | None:
    table = entry.verification.op_table
    if not isinstance(table, dict):
        return None
    cov = table["coverage"]
    selection = table["selection"]
    described = (
        "every case"
        if not any(selection.values())
        else " ".join(f"{k} {', '.join(v)}" for k, v in selection.items() if v)
    )
    return OpsCell(cov["all_passing"], cov["tested"], cov["total"], table["cases"], described)


def precision_of_profile(context: SpecContext, profile: str) -> str | None:
    found = context.profiles.get(profile)
    return found.checks.precision if found is not None and found.checks else None


def precision_cells(
    entry: Entry, context: SpecContext, precisions: Sequence[str]
) -> tuple[PrecisionCell | None, ...]:
    cells: list[PrecisionCell | None] = []
    for precision in precisions:
        outcome = next(
            (
                o
                for o in entry.verification.outcomes
                if precision_of_profile(context, o.profile) == precision
            ),
            None,
        )
        if outcome is None:
            cells.append(None)
            continue
        mine = [a for a in entry.verification.accuracy if a.precision == precision]
        tiers = [a.tier if a.tier else "below 99" for a in mine]
        worst = max(tiers, key=TIER_ORDER.index) if tiers else ""
        relatives = [a.relative for a in mine if a.relative is not None]
        cells.append(
            PrecisionCell(
                precision, outcome.status, worst, len(mine), min(relatives) if relatives else None
            )
        )
    return tuple(cells)


def build_scoreboard(
    entries: Sequence[Entry], context: SpecContext, trusted: TrustedKeys | None = None
) -> Scoreboard:
    judged = judge_entries(entries, trusted)
    compared = tuple(e for e in judged if e.compared)
    excluded = tuple(e for e in judged if not e.compared)
    models = [m.name for m in context.pack.models]
    families, interop = family_rows(compared, models)
    profiles = tuple(dict.fromkeys(o.profile for e in compared for o in e.verification.outcomes))
    perf = perf_rows(compared, models)
    precisions = tuple(
        dict.fromkeys(
            p
            for name in profiles
            if (p := precision_of_profile(context, name)) is not None and p != "fp32"
        )
    )
    return Scoreboard(
        datetime.now(UTC).isoformat(timespec="seconds"),
        context.spec_version,
        context.pack_digest,
        profiles,
        compared,
        excluded,
        families,
        interop,
        perf,
        tuple(median_p50(perf, column) for column in range(len(compared))),
        trusted is not None,
        tuple(ops_cell(e) for e in compared),
        precisions,
        tuple(precision_cells(e, context, precisions) for e in compared),
    )
