"""`conformance scoreboard`: certified runtimes side by side, from verified bundles only.

Every bundle is verified first (offline). Only verified bundles are compared, and a verified bundle
is by construction at this suite's spec version and pinned pack digest; the others are listed
with the rules they broke. Every figure shown is the verifier's recomputation, never a bundle's
own claim: profile outcomes, pass rates per model family, and an interop column counting the
normative checks (model x artifact x test data set) that pass on every compared target, after
wpt.fyi's interop view. Performance is shown as measured under the cert-mode rules, not judged.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conformance.certify.context import SpecContext
from conformance.certify.interface import CheckOutcome, Verification


@dataclass(frozen=True)
class Entry:
    """One bundle: who submitted what, and what the verifier made of it."""

    path: str
    target: str
    submitter: str
    system_name: str
    verification: Verification

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


def entry_of(path: Path, verification: Verification) -> Entry:
    system = verification.system
    return Entry(
        str(path),
        verification.target,
        str(system.get("submitter", "")),
        str(system.get("system_name", "")),
        verification,
    )


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
    """Cert-mode figures of records that completed (status ok); a model with none anywhere is left out."""
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


def build_scoreboard(entries: Sequence[Entry], context: SpecContext) -> Scoreboard:
    compared = tuple(e for e in entries if e.verification.verified)
    excluded = tuple(e for e in entries if not e.verification.verified)
    models = [m.name for m in context.pack.models]
    families, interop = family_rows(compared, models)
    profiles = tuple(dict.fromkeys(o.profile for e in compared for o in e.verification.outcomes))
    perf = perf_rows(compared, models)
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
    )
