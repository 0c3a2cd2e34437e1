"""Tolerance evidence: the worst honest error against the smallest defect error, per model.

A tolerance is well placed when every honest target stays below it (margin < 1) and every
value-perturbing negative control lands above it (margin > 1). Structural defects (NaN,
dtype, swapped outputs, crashes) are caught whatever the tolerance and are not used here.
"""
from __future__ import annotations

from dataclasses import dataclass

from conformance.results.records import CheckRecord

VALUE_DEFECTS = ("defect:noise", "defect:fp16")


@dataclass(frozen=True)
class CalibrationRow:
    model: str
    precision: str
    atol: float
    rtol: float
    honest_margin: float  # worst over honest targets and exporter-clean checks
    honest_where: str
    honest_max_abs: float
    defect_margin: float  # smallest over value defects
    defect_where: str

    @property
    def well_placed(self) -> bool:
        return self.honest_margin <= 1.0 < self.defect_margin


def _max_abs(record: CheckRecord) -> float:
    return max((o["max_abs"] or 0.0 for o in record.outputs.values() if o), default=0.0)


def calibration_rows(records: list[CheckRecord]) -> list[CalibrationRow]:
    rows = []
    for model in dict.fromkeys(r.model for r in records):
        mine = [r for r in records if r.model == model and r.margin is not None and r.attributed_to != "exporter"]
        honest = [r for r in mine if not r.target.startswith("defect:")]
        defects = [r for r in mine if r.target in VALUE_DEFECTS]
        if not honest or not defects:
            continue
        worst = max(honest, key=lambda r: r.margin)
        closest = min(defects, key=lambda r: r.margin)
        rows.append(CalibrationRow(
            model=model, precision="fp32", atol=worst.tolerance["atol"], rtol=worst.tolerance["rtol"],
            honest_margin=worst.margin, honest_where=f"{worst.exporter} {worst.data_set_label} on {worst.target}",
            honest_max_abs=_max_abs(worst), defect_margin=closest.margin,
            defect_where=f"{closest.target} {closest.exporter} {closest.data_set_label}",
        ))
    return rows


def render_markdown(rows: list[CalibrationRow]) -> str:
    lines = [
        "| model | precision | atol | rtol | worst honest margin (max abs) | where | smallest defect margin | where | placed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.precision} | {r.atol:g} | {r.rtol:g} | {r.honest_margin:.3f} ({r.honest_max_abs:.2e}) | "
            f"{r.honest_where} | {r.defect_margin:.3g} | {r.defect_where} | {'yes' if r.well_placed else 'NO'} |")
    return "\n".join(lines)
