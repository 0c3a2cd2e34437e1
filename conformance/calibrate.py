"""Tolerance evidence: the worst honest error against the smallest defect error, per model.

A tolerance is well placed when the honest targets stay below it (margin < 1) and every
value-perturbing negative control lands above it (margin > 1). An honest target that
fails is a runtime finding, not evidence for a wider tolerance: it is listed with its
margin, and one that fails narrowly (margin below NEAR_MISS) is flagged for review, since
that is where a tolerance could be too tight. Structural defects (NaN, dtype, swapped
outputs, crashes) are caught whatever the tolerance and are not used here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from conformance.results.records import PASSED, CheckRecord
from conformance.run.plan import DEFAULT_PRECISION
from conformance.run.session import RunRequest

NEGATIVE_CONTROL_PREFIX = "defect:"
VALUE_DEFECTS = ("defect:noise", "defect:fp16")
NEAR_MISS = 2.0


@dataclass(frozen=True)
class CalibrationRow:
    model: str
    precision: str
    atol: float
    rtol: float
    honest_margin: float  # worst over honest targets' passing, exporter-clean checks
    honest_where: str
    honest_max_abs: float
    failing_margin: float | None  # closest honest failure (a runtime finding), if any
    failing_where: str
    defect_margin: float  # smallest over value defects
    defect_where: str

    @property
    def well_placed(self) -> bool:
        near_miss = self.failing_margin is not None and self.failing_margin < NEAR_MISS
        return self.honest_margin <= 1.0 < self.defect_margin and not near_miss


def _max_abs(record: CheckRecord) -> float:
    return max((o["max_abs"] or 0.0 for o in record.outputs.values() if o), default=0.0)


def _margin(record: CheckRecord) -> float:
    return float("inf") if record.margin is None else record.margin


def _where(record: CheckRecord) -> str:
    return f"{record.target} {record.exporter} {record.data_set_label}"


def calibrate_session(
    pack_dir: Path, run_dir: Path, honest: list[str], precision: str = DEFAULT_PRECISION
) -> RunRequest:
    """The run calibrate opens: the honest targets, then the value-perturbing controls."""
    return RunRequest(pack_dir, run_dir, [*honest, *VALUE_DEFECTS], precision=precision)


def calibration_row(
    model: str, records: list[CheckRecord], precision: str = DEFAULT_PRECISION
) -> CalibrationRow | None:
    judged = [
        r
        for r in records
        if r.model == model and r.margin is not None and r.attributed_to != "exporter"
    ]
    honest = [r for r in judged if not r.target.startswith(NEGATIVE_CONTROL_PREFIX)]
    passing = [r for r in honest if r.verdict == PASSED]
    failing = [r for r in honest if r.verdict != PASSED]
    defects = [r for r in judged if r.target in VALUE_DEFECTS]
    if not passing or not defects:
        return None
    worst = max(passing, key=_margin)
    closest_failure = min(failing, key=_margin) if failing else None
    closest_defect = min(defects, key=_margin)
    return CalibrationRow(
        model=model,
        precision=precision,
        atol=worst.tolerance["atol"],
        rtol=worst.tolerance["rtol"],
        honest_margin=_margin(worst),
        honest_where=_where(worst),
        honest_max_abs=_max_abs(worst),
        failing_margin=closest_failure.margin if closest_failure else None,
        failing_where=_where(closest_failure) if closest_failure else "",
        defect_margin=_margin(closest_defect),
        defect_where=_where(closest_defect),
    )


def calibration_rows(
    records: list[CheckRecord], precision: str = DEFAULT_PRECISION
) -> list[CalibrationRow]:
    rows = (
        calibration_row(model, records, precision)
        for model in dict.fromkeys(r.model for r in records)
    )
    return [row for row in rows if row is not None]


def render_markdown(rows: list[CalibrationRow]) -> str:
    lines = [
        "| model | precision | atol | rtol | worst honest margin (max abs) | where "
        "| closest honest failure | smallest defect margin | where | placed |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        failure = (
            f"{r.failing_margin:.3g} ({r.failing_where})"
            if r.failing_margin is not None
            else "none"
        )
        lines.append(
            f"| {r.model} | {r.precision} | {r.atol:g} | {r.rtol:g} "
            f"| {r.honest_margin:.3f} ({r.honest_max_abs:.2e}) | {r.honest_where} | {failure} "
            f"| {r.defect_margin:.3g} | {r.defect_where} | {'yes' if r.well_placed else 'NO'} |"
        )
    return "\n".join(lines)
