"""What a drill-down shows for one check: error figures per output, and for a check that did not
pass, the histogram of element errors and the worst elements with their indices."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conformance.report.charts import BarChart, ratio_histogram
from conformance.report.messages import FULL_CHARS, informative
from conformance.report.signs import Sign, sign_of
from conformance.results.records import PASSED, CheckRecord

PROBLEMS_SHOWN = 12
STDERR_CHARS = 20_000  # the tail of what the target wrote on stderr (the results file has it all)
# Past the first DETAILED_CHECKS checks that did not pass, a shorter tail: a crashing runtime's
# stack dump repeats in every such check, and the page must stay bounded in a run of thousands.
BRIEF_STDERR_CHARS = 1_000


@dataclass(frozen=True)
class ProblemView:
    summary: str  # the informative part, on one line
    full: str  # the whole message, up to FULL_CHARS
    cut: bool  # the message is longer than what is shown

    @property
    def has_more(self) -> bool:
        """The full text says more than the summary (a long or multi-line message)."""
        return self.cut or self.full.strip() != self.summary


def problem_view(message: str) -> ProblemView:
    return ProblemView(informative(message), message[:FULL_CHARS], len(message) > FULL_CHARS)


def stderr_of(record: CheckRecord, limit: int = STDERR_CHARS) -> tuple[str, bool]:
    """The check's captured stderr (optional field; results files before it have none): its
    last ``limit`` characters and whether it was cut."""
    text = getattr(record, "stderr", "") or ""
    if not isinstance(text, str):
        return "", False
    return (text[-limit:], True) if len(text) > limit else (text, False)


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
    problems: tuple[ProblemView, ...]
    problems_left_out: int
    outputs: tuple[OutputView, ...]
    properties: tuple[tuple[str, str], ...]  # determinism, batch invariance: (name, what was found)
    stderr: str = ""  # what the target wrote on stderr during the check (its tail)
    stderr_cut: bool = False
    detailed: bool = True  # charts and worst elements rendered (a bounded number per report)

    @property
    def summary(self) -> str:
        """The informative part of the first problem ('' when there is none)."""
        return self.problems[0].summary if self.problems else ""

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


def check_view(record: CheckRecord, anchor: str, detailed: bool = True) -> CheckView:
    full = record.verdict != PASSED
    stderr, stderr_cut = stderr_of(record, STDERR_CHARS if detailed else BRIEF_STDERR_CHARS)
    return CheckView(
        anchor=anchor,
        record=record,
        sign=sign_of(record.verdict, record.attributed_to, record.margin),
        problems=tuple(problem_view(p) for p in record.problems[:PROBLEMS_SHOWN]),
        problems_left_out=max(0, len(record.problems) - PROBLEMS_SHOWN),
        outputs=tuple(
            output_view(name, stats, full and detailed)
            for name, stats in (record.outputs or {}).items()
        ),
        properties=property_lines(record),
        stderr=stderr,
        stderr_cut=stderr_cut,
        detailed=detailed,
    )
