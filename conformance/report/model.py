"""Turn a results document (and optionally a baseline) into the view data the templates render."""

from __future__ import annotations

import itertools
import json
import shlex
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from conformance.report.compare import Comparison, compare_documents
from conformance.report.drilldown import CheckView, check_view
from conformance.report.matrix import Matrix, MatrixCell, build_matrix
from conformance.report.messages import cause
from conformance.report.performance import Performance, build_performance
from conformance.report.precision import PrecisionView, build_precision
from conformance.report.verdicts import (
    TargetVerdict,
    run_profile,
    target_names,
    target_verdicts,
)
from conformance.results.document import records_of
from conformance.results.records import NOT_PASSED, PASSED, VERDICTS, CheckRecord


@dataclass(frozen=True)
class CellDrill:
    cell: MatrixCell
    checks: tuple[CheckView, ...]


@dataclass(frozen=True)
class ModelGroup:
    model: str
    anchor: str
    cells: tuple[CellDrill, ...]

    @property
    def not_passed(self) -> int:
        return sum(1 for c in self.cells for check in c.checks if check.full_detail)


# Bounds on the page for large runs (an ops profile: 14,000 checks): charts and worst-element
# tables for this many checks that did not pass, the rest with their problems only; this many
# rows of grouped findings. The results file always has everything.
DETAILED_CHECKS = 300
FINDINGS_SHOWN = 1000
# Above this many checks the drill-down lists only the checks that did not pass (a cell of
# passed checks shows its count and largest margin).
COMPACT_ABOVE = 2000


@dataclass(frozen=True)
class Finding:
    """Checks that did not pass for the same reason on the same artifact and target (one per
    data set): one finding, listed once."""

    check: CheckView  # the first check of the group: its anchor, record and summary
    cell_anchor: str | None  # None when the check's target is left out of the matrix
    checks: tuple[CheckView, ...] = ()  # every check of the group, in run order

    @property
    def margin(self) -> float | None:
        margins = [c.record.margin for c in self.checks or (self.check,)]
        numbers = [m for m in margins if m is not None]
        return max(numbers) if numbers else None

    @property
    def data_sets(self) -> tuple[CheckView, ...]:
        return self.checks or (self.check,)


@dataclass(frozen=True)
class Provenance:
    run: tuple[tuple[str, str], ...]
    environment: tuple[tuple[str, str], ...]
    packages: tuple[tuple[str, str], ...]
    targets: tuple[tuple[str, dict[str, Any]], ...]  # name -> its description in the results file


@dataclass(frozen=True)
class ReportView:
    generated_at: str
    run: dict[str, Any]
    verdicts: tuple[TargetVerdict, ...]
    totals: dict[str, int]
    matrix: Matrix
    groups: tuple[ModelGroup, ...]
    findings: tuple[Finding, ...]
    performance: Performance
    comparison: Comparison | None
    provenance: Provenance
    compact: bool = False  # more than COMPACT_ABOVE checks: passed checks are not listed
    extra: str = ""  # the results' own sections (operators, user model): escaped HTML fragments
    precision: PrecisionView | None = None  # reduced-precision runs only
    profile: str = "core"  # the profile the checks belong to (core, or a precision profile)

    @property
    def complete(self) -> bool:
        return self.run.get("status") == "complete"


def text(value: Any) -> str:
    if value is None:
        return "\u2014"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def provenance(document: dict[str, Any]) -> Provenance:
    run = dict(document.get("run", {}))
    command = run.pop("command", None)
    rows = [(k, text(v)) for k, v in run.items()]
    if isinstance(command, list):
        rows.append(("command", shlex.join(str(c) for c in command)))
    environment = dict(document.get("environment", {}))
    packages = environment.pop("packages", {}) or {}
    return Provenance(
        tuple(rows),
        tuple((k, text(v)) for k, v in environment.items()),
        tuple((k, text(v)) for k, v in sorted(packages.items())),
        tuple((name, info) for name, info in document.get("targets", {}).items()),
    )


def drilldown(matrix: Matrix) -> tuple[tuple[ModelGroup, ...], dict[str, tuple[CheckView, str]]]:
    """Per model, every cell with a view of each check; and check id -> (view, cell anchor).
    The first DETAILED_CHECKS checks that did not pass get charts and worst elements."""
    views: dict[str, tuple[CheckView, str]] = {}
    anchors = (f"check-{n}" for n in itertools.count())
    budget = itertools.count()
    groups = []
    for index, row in enumerate(matrix.rows):
        cells = []
        for cell in row.cells:
            if cell is None:
                continue
            checks = tuple(
                check_view(
                    c, next(anchors), detailed=c.verdict == PASSED or next(budget) < DETAILED_CHECKS
                )
                for c in cell.checks
            )
            views.update({v.record.check_id: (v, cell.anchor) for v in checks})
            cells.append(CellDrill(cell, checks))
        groups.append(ModelGroup(row.model, f"model-{index}", tuple(cells)))
    return tuple(groups), views


def finding_key(view: CheckView) -> tuple[str, ...]:
    r = view.record
    first = r.problems[0] if r.problems else ""
    return (r.target, r.model, r.exporter, r.verdict, str(r.attributed_to), cause(first))


def findings_of(
    records: list[CheckRecord], views: dict[str, tuple[CheckView, str]]
) -> tuple[Finding, ...]:
    """Every check that did not pass, grouped by (target, artifact, cause): the runtime's
    findings first, then the exporters'."""
    failing = sorted(
        (r for r in records if r.verdict in NOT_PASSED), key=lambda r: r.attributed_to == "exporter"
    )
    grouped: dict[tuple[str, ...], list[tuple[CheckView, str | None]]] = {}
    for index, record in enumerate(failing):
        view, anchor = views.get(record.check_id) or (
            check_view(record, f"finding-{index}", detailed=False),
            None,
        )
        grouped.setdefault(finding_key(view), []).append((view, anchor))
    return tuple(
        Finding(members[0][0], members[0][1], tuple(v for v, _ in members))
        for members in grouped.values()
    )


def extra_sections(document: dict[str, Any]) -> str:
    """Sections of the results beyond checks and benchmarks, each rendered by its own room
    (every string escaped there); empty when the results have none."""
    from conformance.report.operators import STYLE, operators_section
    from conformance.report.usermodel import usermodel_sections

    operators = operators_section(document)
    return (STYLE + operators if operators else "") + usermodel_sections(document)


def build_view(
    document: dict[str, Any],
    baseline: dict[str, Any] | None = None,
    baseline_warnings: tuple[str, ...] = (),
) -> ReportView:
    records = records_of(document)
    comparison = None
    if baseline is not None:
        comparison = compare_documents(
            baseline, document, records_of(baseline), records, baseline_warnings
        )
    matrix = build_matrix(
        records,
        target_names(document, records),
        comparison.kinds_by_check() if comparison else None,
    )
    groups, views = drilldown(matrix)
    counts = Counter(r.verdict for r in records)
    return ReportView(
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        run=document.get("run", {}),
        verdicts=tuple(target_verdicts(document, records)),
        totals={v: counts.get(v, 0) for v in VERDICTS},
        matrix=matrix,
        groups=groups,
        findings=findings_of(records, views),
        performance=build_performance(document.get("benchmarks")),
        comparison=comparison,
        provenance=provenance(document),
        compact=len(records) > COMPACT_ABOVE,
        extra=extra_sections(document),
        precision=build_precision(records),
        profile=run_profile(records),
    )
