"""What changed between a baseline run and this one: verdicts, margins, latency and throughput."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conformance.results.records import NOT_PASSED, PASSED, CheckRecord

# A margin "moved" when it changed by this factor or more and the larger side is big enough to
# matter: below 0.05 a margin is float32 rounding, and factors of ten there mean nothing.
MARGIN_FACTOR = 2.0
MARGIN_FLOOR = 0.05
# A run does not record its run-to-run noise yet; until it does, a latency or throughput change
# counts only beyond 5% and beyond half of either run's own p50-to-p90 spread.
NOISE_FLOOR = 0.05

REGRESSED, RECOVERED, CHANGED, MOVED, NEW, GONE = (
    "regressed",
    "recovered",
    "changed",
    "moved",
    "new",
    "gone",
)
KINDS = (REGRESSED, RECOVERED, CHANGED, MOVED, NEW, GONE)


@dataclass(frozen=True)
class CheckChange:
    check_id: str
    kind: str  # one of KINDS
    before: CheckRecord | None
    after: CheckRecord | None


@dataclass(frozen=True)
class FigureChange:
    """A benchmark figure that moved beyond noise: latency p50, or throughput at one batch size."""

    benchmark: str
    figure: str  # "p50 latency (ms)" or "batch 8 throughput (samples/s)"
    before: float
    after: float
    noise: float
    worse: bool

    @property
    def change_pct(self) -> float:
        return 100.0 * (self.after - self.before) / self.before if self.before else 0.0


@dataclass(frozen=True)
class Comparison:
    baseline_run: dict[str, Any]
    same_pack: bool
    checks: tuple[CheckChange, ...]  # only those that changed
    figures: tuple[FigureChange, ...]  # only those beyond noise
    unchanged: int  # checks present in both runs with nothing to report
    warnings: tuple[str, ...] = ()  # why the comparison may mislead (another spec version, ...)

    def count(self, kind: str) -> int:
        return sum(1 for c in self.checks if c.kind == kind)

    def kinds_by_check(self) -> dict[str, str]:
        return {c.check_id: c.kind for c in self.checks}


def check_change(before: CheckRecord, after: CheckRecord) -> str | None:
    if before.verdict == PASSED and after.verdict in NOT_PASSED:
        return REGRESSED
    if before.verdict in NOT_PASSED and after.verdict == PASSED:
        return RECOVERED
    if before.verdict != after.verdict:
        return CHANGED
    if before.margin is None or after.margin is None:
        return None
    low, high = sorted((before.margin, after.margin))
    if high >= MARGIN_FLOOR and (low == 0 or high / low >= MARGIN_FACTOR):
        return MOVED
    return None


def compare_checks(
    baseline: list[CheckRecord], current: list[CheckRecord]
) -> tuple[list[CheckChange], int]:
    before = {r.check_id: r for r in baseline}
    after = {r.check_id: r for r in current}
    changes, unchanged = [], 0
    for check_id, record in after.items():
        if check_id not in before:
            changes.append(CheckChange(check_id, NEW, None, record))
        elif kind := check_change(before[check_id], record):
            changes.append(CheckChange(check_id, kind, before[check_id], record))
        else:
            unchanged += 1
    changes += [CheckChange(i, GONE, r, None) for i, r in before.items() if i not in after]
    changes.sort(key=lambda c: KINDS.index(c.kind))
    return changes, unchanged


def bench_key(record: dict[str, Any]) -> str:
    if record.get("id"):
        return str(record["id"])
    return "-".join(str(record.get(k, "?")) for k in ("model", "exporter", "scenario", "target"))


def _figure(value: Any) -> float | None:
    return (
        float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
        else None
    )


def latency_change(key: str, before: dict, after: dict) -> FigureChange | None:
    old, new = (_figure((r.get("latency_ms") or {}).get("p50")) for r in (before, after))
    if old is None or new is None:
        return None
    spreads = [
        (_figure((r.get("latency_ms") or {}).get("p90")) or 0.0) - p50
        for r, p50 in ((before, old), (after, new))
    ]
    noise = max(NOISE_FLOOR * old, 0.5 * max(spreads), _figure(after.get("noise_ms")) or 0.0)
    if abs(new - old) <= noise:
        return None
    return FigureChange(key, "p50 latency (ms)", old, new, noise, worse=new > old)


def throughput_changes(key: str, before: dict, after: dict) -> list[FigureChange]:
    def by_batch(record: dict) -> dict[Any, float]:
        return {
            p.get("batch"): v
            for p in record.get("throughput") or []
            if isinstance(p, dict) and (v := _figure(p.get("samples_per_s"))) is not None
        }

    old, new = by_batch(before), by_batch(after)
    changes = []
    for batch in old.keys() & new.keys():
        noise = NOISE_FLOOR * old[batch]
        if abs(new[batch] - old[batch]) > noise:
            changes.append(
                FigureChange(
                    key,
                    f"batch {batch} throughput (samples/s)",
                    old[batch],
                    new[batch],
                    noise,
                    worse=new[batch] < old[batch],
                )
            )
    return changes


def compare_benchmarks(baseline: list[dict], current: list[dict]) -> list[FigureChange]:
    before = {bench_key(r): r for r in baseline if isinstance(r, dict)}
    changes: list[FigureChange] = []
    for record in current:
        if not isinstance(record, dict) or bench_key(record) not in before:
            continue
        key = bench_key(record)
        if moved := latency_change(key, before[key], record):
            changes.append(moved)
        changes += throughput_changes(key, before[key], record)
    return changes


def compare_documents(
    baseline: dict[str, Any],
    current: dict[str, Any],
    baseline_records: list[CheckRecord],
    records: list[CheckRecord],
    warnings: tuple[str, ...] = (),
) -> Comparison:
    changes, unchanged = compare_checks(baseline_records, records)
    figures = compare_benchmarks(baseline.get("benchmarks") or [], current.get("benchmarks") or [])
    return Comparison(
        baseline_run=baseline.get("run", {}),
        same_pack=baseline.get("run", {}).get("pack_digest")
        == current.get("run", {}).get("pack_digest"),
        checks=tuple(changes),
        figures=tuple(figures),
        unchanged=unchanged,
        warnings=warnings,
    )
