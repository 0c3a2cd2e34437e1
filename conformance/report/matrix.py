"""The interop matrix: models (rows) by target and exporter (column groups, sub-columns).

A cell holds the checks of one (model, exporter, target) over every test data set; it shows
the worst of their verdicts and the largest margin, so a near miss on one data set shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conformance.report.signs import Sign, short_margin, sign_of
from conformance.report.verdicts import target_was_unavailable
from conformance.results.records import NOT_PASSED, PASSED, SKIPPED, VERDICTS, CheckRecord

# Worse first: a failure on the runtime's account outranks an exporter finding, which outranks
# a skip.
_SEVERITY = {verdict: rank for rank, verdict in enumerate(reversed(VERDICTS))}


def severity(record: CheckRecord) -> tuple[int, int, float]:
    against_runtime = record.verdict in NOT_PASSED and record.attributed_to != "exporter"
    group = (
        3
        if against_runtime
        else 2
        if record.verdict in NOT_PASSED
        else 1
        if record.verdict == SKIPPED
        else 0
    )
    return group, _SEVERITY[record.verdict], record.margin or 0.0


@dataclass(frozen=True)
class MatrixCell:
    anchor: str  # the HTML id of the cell's drill-down: generated, never a vendor's name
    model: str
    exporter: str
    target: str
    checks: tuple[CheckRecord, ...]  # one per test data set, in run order
    change: str | None = None  # "regressed", "recovered" or "moved" against a baseline

    @property
    def worst(self) -> CheckRecord:
        return max(self.checks, key=severity)

    @property
    def margin(self) -> float | None:
        margins = [c.margin for c in self.checks if c.margin is not None]
        return max(margins) if margins else None

    @property
    def sign(self) -> Sign:
        worst = self.worst
        return sign_of(
            worst.verdict,
            worst.attributed_to,
            self.margin if worst.verdict == PASSED else worst.margin,
        )

    @property
    def label(self) -> str:
        """What the cell shows beside its icon: the margin, or a word where there is none."""
        worst = self.worst
        margin = self.margin if worst.verdict == PASSED else worst.margin
        return short_margin(margin) or self.sign.cell_word

    @property
    def passed(self) -> int:
        return sum(1 for c in self.checks if c.verdict == PASSED)

    @property
    def title(self) -> str:
        worst = self.worst
        text = (
            f"{self.model} / {self.exporter} on {self.target}: {self.passed} of {len(self.checks)} "
            f"data sets passed; worst {worst.verdict} ({worst.data_set_label})"
        )
        if self.margin is not None:
            text += f"; largest margin {self.margin:.3g}"
        if worst.attributed_to:
            text += f"; on the {worst.attributed_to}'s account"
        return text + (f"; {self.change} against the baseline" if self.change else "")


@dataclass(frozen=True)
class MatrixRow:
    model: str
    cells: tuple[MatrixCell | None, ...]  # target-major, exporter-minor; None where nothing ran


@dataclass(frozen=True)
class Matrix:
    targets: tuple[str, ...]
    exporters: tuple[str, ...]
    rows: tuple[MatrixRow, ...]
    left_out: tuple[
        str, ...
    ] = ()  # targets with no check that ran (unavailable): shown in the verdict only
    cells: tuple[MatrixCell, ...] = field(default=())

    @property
    def exporter_headings(self) -> dict[str, str]:
        return short_names(self.exporters)

    @property
    def column_count(self) -> int:
        return len(self.targets) * len(self.exporters)


def short_names(names: tuple[str, ...]) -> dict[str, str]:
    """Narrow column headings: the last dash-separated word ("torch-dynamo" -> "dynamo") where
    that stays unique."""
    short = {name: name.rsplit("-", 1)[-1] for name in names}
    return short if len(set(short.values())) == len(short) else {name: name for name in names}


def ran(records: list[CheckRecord]) -> bool:
    return any(not target_was_unavailable(r) for r in records)


def build_matrix(
    records: list[CheckRecord], target_order: list[str], changes: dict[str, str] | None = None
) -> Matrix:
    """``changes``: check id -> "regressed" / "recovered" / "moved" (from the baseline
    comparison)."""
    grouped: dict[tuple[str, str, str], list[CheckRecord]] = {}
    for record in records:
        grouped.setdefault((record.model, record.exporter, record.target), []).append(record)
    models = list(dict.fromkeys(r.model for r in records))
    exporters = list(dict.fromkeys(r.exporter for r in records))
    by_target = {t: [r for r in records if r.target == t] for t in target_order}
    shown = [t for t in target_order if by_target[t] and ran(by_target[t])]
    cells: list[MatrixCell] = []
    rows = []
    for model in models:
        row: list[MatrixCell | None] = []
        for target in shown:
            for exporter in exporters:
                checks = grouped.get((model, exporter, target))
                if not checks:
                    row.append(None)
                    continue
                cell = MatrixCell(
                    f"cell-{len(cells)}",
                    model,
                    exporter,
                    target,
                    tuple(checks),
                    cell_change(checks, changes or {}),
                )
                cells.append(cell)
                row.append(cell)
        rows.append(MatrixRow(model, tuple(row)))
    left_out = tuple(t for t in target_order if t not in shown)
    return Matrix(tuple(shown), tuple(exporters), tuple(rows), left_out, tuple(cells))


def cell_change(checks: list[CheckRecord], changes: dict[str, str]) -> str | None:
    kinds = {changes.get(c.check_id) for c in checks}
    for kind in ("regressed", "recovered", "moved"):
        if kind in kinds:
            return kind
    return None
