"""What a drill-down shows for one check: error figures per output, and for a check that did not
pass, the histogram of element errors and the worst elements with their indices."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conformance.report.charts import BarChart, ratio_histogram
from conformance.report.signs import Sign, sign_of
from conformance.results.records import PASSED, CheckRecord

PROBLEM_CHARS = 1500  # an error message can carry a whole traceback; the results file keeps it all
PROBLEMS_SHOWN = 12


@dataclass(frozen=True)
class OutputView:
    name: str
    stats: dict[str, Any] | None  # None: values not comparable (shape, dtype, count)
    histogram: BarChart | None  # only for checks that did not pass
    worst_elements: tuple[dict[str, Any], ...]  # only for checks that did not pass


@dataclass(frozen=True)
class CheckView:
    anchor: str
    record: CheckRecord
    sign: Sign
    problems: tuple[str, ...]
    problems_left_out: int
    outputs: tuple[OutputView, ...]
    properties: tuple[tuple[str, str], ...]  # determinism, batch invariance: (name, what was found)

    @property
    def full_detail(self) -> bool:
        return self.record.verdict != PASSED


def property_lines(record: CheckRecord) -> tuple[tuple[str, str], ...]:
    lines = []
    det = record.determinism or {}
    if det.get("checked"):
        lines.append(
            (
                "determinism",
                f"{'passed' if det.get('passed') else 'FAILED'} ({det.get('mode', '?')})",
            )
        )
    inv = record.batch_invariance or {}
    if inv.get("checked"):
        margin = inv.get("margin")
        text = "passed" if inv.get("passed") else f"FAILED at sample {inv.get('sample', '?')}"
        if isinstance(margin, (int, float)):
            text += f", margin {margin:.3g}"
        lines.append(("batch invariance", text))
    return tuple(lines)


def output_view(name: str, stats: dict[str, Any] | None, full: bool) -> OutputView:
    if not stats or not full:
        return OutputView(name, stats, None, ())
    counts = stats.get("ratio_histogram") or []
    return OutputView(
        name,
        stats,
        ratio_histogram(counts) if any(counts) else None,
        tuple(stats.get("worst_elements") or ()),
    )


def check_view(record: CheckRecord, anchor: str) -> CheckView:
    full = record.verdict != PASSED
    problems = tuple(
        p
        if len(p) <= PROBLEM_CHARS
        else p[:PROBLEM_CHARS] + " \u2026 (cut; the results file has it all)"
        for p in record.problems[:PROBLEMS_SHOWN]
    )
    return CheckView(
        anchor=anchor,
        record=record,
        sign=sign_of(record.verdict, record.attributed_to, record.margin),
        problems=problems,
        problems_left_out=max(0, len(record.problems) - PROBLEMS_SHOWN),
        outputs=tuple(
            output_view(name, stats, full) for name, stats in (record.outputs or {}).items()
        ),
        properties=property_lines(record),
    )
