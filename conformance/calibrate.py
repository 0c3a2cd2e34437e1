"""Tolerance evidence: the worst honest error against the smallest defect error, per model.

A tolerance is well placed when the honest targets stay below it (margin < 1) and every
value-perturbing negative control lands above it (margin > 1). An honest target that
fails is a runtime finding, not evidence for a wider tolerance: it is listed with its
margin, and one that fails narrowly (margin below NEAR_MISS) is flagged for review, since
that is where a tolerance could be too tight. Structural defects (NaN, dtype, swapped
outputs, crashes) are caught whatever the tolerance and are not used here.

At a reduced precision (fp16, bf16, int8) three things differ. There is no earlier tolerance to
tell honest failures from passes, so the honest error of a check is the median over the honest
targets (they agree closely: the artifact's own conversion error dominates), and a target more
than OUTLIER times above that median is listed as a disagreement (a runtime finding to look at),
not as evidence. At a precision that is a mode of the target (bf16: the fp32 artifacts, computed
in bf16 by e.g. ``openvino:cpu:precision=bf16``) there is no shared conversion error: the worst
error of the targets in that mode is the evidence, and an fp32 target failing there is listed as
a runtime finding. The artifact's own conversion error
is part of every honest target's error, so the pack's fidelity findings (which were judged at the
tolerance being calibrated) do not remove a check from the evidence, except on stress data sets
(inputs outside any quantisation's calibrated range by construction: a converter finding, not
evidence). And a control's error depends on the data (a 64-term reduction of one sample can stay
within fp16's rounding), so a control counts as caught on an artifact when at least one of that
artifact's checks fails: its margin is the largest over the artifact's data sets, and the row's
defect margin the smallest of those over controls and artifacts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from conformance.results.records import PASSED, VALUES, CheckRecord
from conformance.run.plan import ARTIFACT_PRECISION, DEFAULT_PRECISION
from conformance.run.session import RunRequest

NEGATIVE_CONTROL_PREFIX = "defect:"
# The value-perturbing negative controls of each precision: what its tolerance must fail.
DEFECTS_BY_PRECISION = {
    "fp32": ("defect:noise", "defect:fp16"),
    "fp16": ("defect:fp16-accumulate", "defect:precision-lie"),
    "bf16": ("defect:precision-lie",),  # fp16 accumulation is finer than bf16 compute itself
    "int8": ("defect:int8-scale", "defect:int8-zero-point"),
}
VALUE_DEFECTS = DEFECTS_BY_PRECISION["fp32"]
# Honest targets a precision adds to the available defaults: the modes that compute in it.
HONEST_MODES = {"bf16": ("openvino:cpu:precision=bf16",)}
NEAR_MISS = 2.0
OUTLIER = 2.0  # reduced precision: a target this many times the others' error disagrees with them
ORDINARY_LABEL = re.compile(r"^batch\d+(-seq\d+)?$")  # not a stress data set


def _evidence(record: CheckRecord, precision: str) -> bool:
    if record.kind != VALUES or record.margin is None:
        return False
    if precision == DEFAULT_PRECISION:
        return record.attributed_to != "exporter"
    return record.attributed_to != "exporter" or bool(ORDINARY_LABEL.match(record.data_set_label))


def _caught_per_artifact(defects: list[CheckRecord]) -> list[CheckRecord]:
    """Per (control, artifact): its check with the largest margin (the one that catches it)."""
    best: dict[tuple[str, str], CheckRecord] = {}
    for record in defects:
        key = (record.target, record.exporter)
        if key not in best or _margin(record) > _margin(best[key]):
            best[key] = record
    return list(best.values())


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
    def midpoint_scale(self) -> float:
        """The factor on (atol, rtol) that puts the tolerance at the geometric midpoint of the
        worst honest and the smallest defect margin: the evidence's suggestion, not a rule."""
        honest = max(self.honest_margin, 1e-300)
        return float((honest * self.defect_margin) ** 0.5)

    @property
    def well_placed(self) -> bool:
        near_miss = self.failing_margin is not None and self.failing_margin < NEAR_MISS
        if self.precision != DEFAULT_PRECISION:  # the failures listed are disagreeing targets,
            near_miss = False  # many times the others' error: not a sign of a tight tolerance
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
    """The run calibrate opens: the honest targets (plus the modes that compute in the
    precision, when available), then the precision's value-perturbing controls."""
    from conformance.targets import get_target

    modes = [
        m
        for m in HONEST_MODES.get(precision, ())
        if m not in honest and get_target(m).unavailable_reason() is None
    ]
    controls = DEFECTS_BY_PRECISION.get(precision, VALUE_DEFECTS)
    return RunRequest(pack_dir, run_dir, [*honest, *modes, *controls], precision=precision)


def _consensus(honest: list[CheckRecord]) -> tuple[list[CheckRecord], list[CheckRecord]]:
    """Per check (artifact, data set): the honest target with the median margin stands for the
    honest error; a target OUTLIER times above it disagrees with the others (a runtime finding,
    not evidence). Returns (the median records, the outliers)."""
    slots: dict[tuple[str, str], list[CheckRecord]] = {}
    for record in honest:
        slots.setdefault((record.exporter, record.data_set_label), []).append(record)
    medians, outliers = [], []
    for group in slots.values():
        ranked = sorted(group, key=_margin)
        median = ranked[(len(ranked) - 1) // 2]
        medians.append(median)
        floor = max(OUTLIER * _margin(median), 1.0)  # a disagreement that still passes is none
        outliers += [r for r in ranked if _margin(r) > floor]
    return medians, outliers


def calibration_row(
    model: str, records: list[CheckRecord], precision: str = DEFAULT_PRECISION
) -> CalibrationRow | None:
    judged = [r for r in records if r.model == model and _evidence(r, precision)]
    honest = [r for r in judged if not r.target.startswith(NEGATIVE_CONTROL_PREFIX)]
    if precision == DEFAULT_PRECISION:
        passing = [r for r in honest if r.verdict == PASSED]
        failing = [r for r in honest if r.verdict != PASSED]
    elif ARTIFACT_PRECISION.get(precision) == DEFAULT_PRECISION:  # a mode of the target (bf16)
        modes = HONEST_MODES.get(precision, ())
        passing = [r for r in honest if r.target in modes]  # the error is the mode's own
        failing = [r for r in honest if r.target not in modes and r.verdict != PASSED]
    else:
        passing, failing = _consensus(honest)
    controls = DEFECTS_BY_PRECISION.get(precision, VALUE_DEFECTS)
    defects = [r for r in judged if r.target in controls]
    if precision != DEFAULT_PRECISION:
        defects = _caught_per_artifact(defects)
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
        "| closest honest failure | smallest defect margin | where | placed | midpoint x |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
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
            f"| {r.defect_margin:.3g} | {r.defect_where} | {'yes' if r.well_placed else 'NO'} "
            f"| {r.midpoint_scale:.3g} |"
        )
    return "\n".join(lines)
