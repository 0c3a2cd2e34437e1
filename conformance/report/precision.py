"""The precision section of the report: what a reduced-precision run was judged by.

Shown only when the results hold reduced-precision checks (a record judged at fp16, bf16 or
int8). Three parts, all from the check records alone: the task accuracy per target and tier
(each accuracy record: accuracy, the fp32 golden's, the relative accuracy, MLPerf's tier, top-1
agreement with the golden), the element-wise tolerance each model was judged under at each
precision (spec/tolerances.json as the records carry it), and a picture of relative accuracy
against precision with the two tier lines. Geometry here, markup in templates/_precision.html.j2
(every text escaped there).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from conformance.report.charts import Tick
from conformance.report.signs import number
from conformance.results.records import PASSED, CheckRecord

FP32 = "fp32"
ORDER = ("fp32", "bf16", "fp16", "int8")
TIERS = ("99.9", "99", "below 99")
TIER_LINES = ((0.999, "99.9% of fp32"), (0.99, "99% of fp32"))
ACCURACY = "accuracy"
COLOURS = 6  # series colours in the template


@dataclass(frozen=True)
class AccuracyRow:
    record: CheckRecord
    accuracy: float | None
    fp32_accuracy: float | None
    relative: float | None
    tier: str
    top1_agreement: float | None
    samples: int | None

    @property
    def passed(self) -> bool:
        return self.record.verdict == PASSED


@dataclass(frozen=True)
class TierRow:
    """One target at one precision: how many of its accuracy records reach each tier."""

    target: str
    precision: str
    counts: tuple[int, ...]  # per TIERS
    not_answered: int  # accuracy checks that gave no figures (error, crash, ...)

    @property
    def worst(self) -> str:
        for tier, count in zip(reversed(TIERS), reversed(self.counts), strict=True):
            if count:
                return tier
        return "\u2014"


@dataclass(frozen=True)
class ToleranceRow:
    model: str
    cells: tuple[str, ...]  # per precision of the view: "atol 0.05, rtol 0.05 (9/9 passed)"


@dataclass(frozen=True)
class Mark:
    x: float
    y: float
    colour: int
    tip: str


@dataclass(frozen=True)
class AccuracyChart:
    width: int
    height: int
    plot_left: float
    plot_right: float
    plot_top: float
    plot_bottom: float
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    lines: tuple[tuple[float, float, str], ...]  # (y, label y, label): the tiers, the golden
    marks: tuple[Mark, ...]
    legend: tuple[tuple[str, int], ...]  # (target, colour)
    title: str = "relative accuracy (target / fp32 golden) against precision"


@dataclass(frozen=True)
class PrecisionView:
    precisions: tuple[str, ...]  # judged in this run, fp32 first
    accuracy: tuple[AccuracyRow, ...]
    tiers: tuple[TierRow, ...]
    tolerances: tuple[ToleranceRow, ...]
    chart: AccuracyChart | None


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def accuracy_row(record: CheckRecord) -> AccuracyRow:
    figures = record.accuracy
    if figures is None:
        return AccuracyRow(record, None, None, None, "", None, None)
    return AccuracyRow(
        record,
        _float(figures.accuracy),
        _float(figures.fp32_accuracy),
        _float(figures.relative),
        str(figures.tier),
        _float(figures.top1_agreement),
        figures.samples,
    )


def tier_rows(rows: Sequence[AccuracyRow]) -> tuple[TierRow, ...]:
    grouped: dict[tuple[str, str], list[AccuracyRow]] = defaultdict(list)
    for row in rows:
        grouped[(row.record.target, row.record.precision)].append(row)
    out = []
    for (target, precision), mine in grouped.items():
        counts = Counter(r.tier for r in mine if r.tier)
        out.append(
            TierRow(
                target,
                precision,
                tuple(counts.get(t, 0) for t in TIERS),
                sum(1 for r in mine if not r.tier),
            )
        )
    return tuple(out)


def _tolerance_text(tolerance: dict[str, float]) -> str:
    if not tolerance:
        return "\u2014"
    return f"atol {number(tolerance.get('atol'))}, rtol {number(tolerance.get('rtol'))}"


def tolerance_rows(
    records: Sequence[CheckRecord], precisions: Sequence[str]
) -> tuple[ToleranceRow, ...]:
    """Per model and precision: the tolerance(s) its values checks were judged under."""
    seen: dict[tuple[str, str], list[CheckRecord]] = defaultdict(list)
    for record in records:
        if record.kind != ACCURACY and record.verdict != "skipped":
            seen[(record.model, record.precision)].append(record)
    models = list(dict.fromkeys(r.model for r in records if r.kind != ACCURACY))
    rows = []
    for model in models:
        cells = []
        for precision in precisions:
            mine = seen.get((model, precision), [])
            if not mine:
                cells.append("\u2014")
                continue
            rules = list(dict.fromkeys(_tolerance_text(dict(r.tolerance)) for r in mine))
            passed = sum(1 for r in mine if r.verdict == PASSED)
            cells.append(f"{' or '.join(rules)} ({passed}/{len(mine)} passed)")
        rows.append(ToleranceRow(model, tuple(cells)))
    return tuple(rows)


def accuracy_chart(rows: Sequence[AccuracyRow], precisions: Sequence[str]) -> AccuracyChart | None:
    """One mark per accuracy record at its precision (targets side by side within a slot), the
    golden at 1.0 and the two tier lines."""
    answered = [r for r in rows if r.relative is not None]
    if not answered:
        return None
    width, height = 640, 260
    left, right, top, bottom = 56.0, width - 150.0, 24.0, height - 36.0
    values = [r.relative for r in answered if r.relative is not None]
    low = min(0.97, min(values) - 0.005)
    high = max(1.005, max(values) + 0.002)
    targets = list(dict.fromkeys(r.record.target for r in answered))
    slot = (right - left) / max(len(precisions), 1)

    def y_of(value: float) -> float:
        return round(bottom - (value - low) / (high - low) * (bottom - top), 1)

    marks = []
    for row in answered:
        assert row.relative is not None
        column = precisions.index(row.record.precision) if row.record.precision in precisions else 0
        index = targets.index(row.record.target)
        offset = (index + 1) / (len(targets) + 1)
        marks.append(
            Mark(
                round(left + column * slot + offset * slot, 1),
                y_of(max(low, min(high, row.relative))),
                index % COLOURS,
                f"{row.record.target}: {row.record.model}/{row.record.exporter} "
                f"{row.record.precision}: {row.relative:.4f} of fp32 (tier {row.tier})",
            )
        )
    steps = 5
    y_ticks = tuple(
        Tick(y_of(low + (high - low) * i / steps), f"{low + (high - low) * i / steps:.3f}")
        for i in range(steps + 1)
    )
    x_ticks = tuple(
        Tick(round(left + (i + 0.5) * slot, 1), name) for i, name in enumerate(precisions)
    )
    # the golden's label above its line, the tiers' below theirs (1.0 and 0.999 lie close)
    lines = tuple(
        (y_of(v), y_of(v) + (-3 if v == 1.0 else 9), label)
        for v, label in ((1.0, "fp32 golden"), *TIER_LINES)
    )
    legend = tuple((t, i % COLOURS) for i, t in enumerate(targets))
    return AccuracyChart(
        width, height, left, right, top, bottom, x_ticks, y_ticks, lines, tuple(marks), legend
    )


def build_precision(records: Sequence[CheckRecord]) -> PrecisionView | None:
    """The section's view, or None when every check was judged at fp32."""
    if not any(r.precision != FP32 for r in records):
        return None
    present = {r.precision for r in records}
    precisions = tuple(p for p in ORDER if p in present) + tuple(sorted(present - set(ORDER)))
    rows = tuple(accuracy_row(r) for r in records if r.kind == ACCURACY)
    return PrecisionView(
        precisions,
        rows,
        tier_rows(rows),
        tolerance_rows(records, precisions),
        accuracy_chart(rows, precisions),
    )
