"""The check space: which checks a run (or a profile) holds, one plan per check.

A check is one test data set of one artifact on one target at one precision. Whether it can run
(``runnable``) and whether it counts for or against the runtime (``normative``: the pack records
the artifact as exporter-clean for that data set) are properties of the artifact, read here once;
the run, the pytest plugin, certify, verify and the report all take them from a plan.

Precision selects the artifacts (ARTIFACT_PRECISION): a fp16 or int8 run holds the pack's fp16 or
int8 artifacts, a fp32 or bf16 run its fp32 ones (bf16 is a mode of the target, such as
``openvino:cpu:precision=bf16``, not of the file). A model with a task (a classifier with a
held-out split) gets one more check per artifact and target: its task accuracy (kind ACCURACY).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from conformance.compare.tolerance import Tolerance, tolerance_for
from conformance.pack import layout
from conformance.pack.hashing import PackError
from conformance.pack.load import Artifact, Pack, PackModel, TestDataSet
from conformance.results.accuracy import ACCURACY, predictions_of
from conformance.results.records import FP32, VALUES, check_id
from conformance.spec import load_json
from conformance.targets import Target, get_target

DEFAULT_PRECISION = FP32
NATIVE = "native"  # the exporter column of live mode's eager torch / tf checks
# The precision of the artifacts a run at each precision holds.
ARTIFACT_PRECISION = {
    "fp32": "fp32",
    "bf16": "fp32",
    "tf32": "fp32",
    "fp16": "fp16",
    "int8": "int8",
}
PRECISIONS = tuple(ARTIFACT_PRECISION)


def check_precision_error(precision: str) -> str | None:
    """Why ``precision`` is not one a run can judge at (one line), or None."""
    if precision in ARTIFACT_PRECISION:
        return None
    return f"precision {precision!r} is not one of {', '.join(PRECISIONS)}"


def check_profiles() -> dict[str, str]:
    """Every profile of spec/profiles.json that holds checks, with the precision it judges at
    (``conformance run --profile NAME``, ``pytest --conformance --profile NAME``)."""
    profiles = load_json("profiles.json")["profiles"]
    return {
        name: str(profile["checks"].get("precision", FP32))
        for name, profile in profiles.items()
        if isinstance(profile.get("checks"), dict)
    }


def artifact_precision(artifact: Artifact) -> str:
    """The precision the pack records for an artifact (absent: fp32)."""
    return artifact.precision


def named(artifact: Artifact, exporters: Iterable[str]) -> bool:
    """An exporter name selects its own artifact and the artifacts derived from it."""
    return bool({artifact.exporter, artifact.derived_from} & set(exporters))


def task_of(model: PackModel) -> dict[str, Any] | None:
    return model.task


def runnable(artifact: Artifact) -> bool:
    return artifact.runnable


def exporter_at_fault(artifact: Artifact, data_set: int) -> bool:
    return artifact.exporter_at_fault(data_set)


@dataclass(frozen=True)
class CheckPlan:
    model: PackModel
    artifact: Artifact
    data_set: TestDataSet
    target: str
    precision: str = DEFAULT_PRECISION
    tolerance_override: Tolerance | None = None  # a caller's own rule (compare); None: the spec's
    kind: str = VALUES  # VALUES: one data set against its golden; ACCURACY: the task's accuracy

    @property
    def label(self) -> str:
        """The data set part of the check id: the data set's label, or "accuracy"."""
        return ACCURACY if self.kind == ACCURACY else self.data_set.label

    @property
    def check_id(self) -> str:
        return check_id(self.model.name, self.artifact.exporter, self.label, self.target)

    # ---- a task's accuracy (kind ACCURACY): what it is judged against, from the pack --------
    @property
    def task(self) -> dict[str, Any]:
        task = task_of(self.model)
        if task is None:
            raise PackError(f"{self.model.name}: model.json has no task")
        return task

    @property
    def fp32_accuracy(self) -> float:
        return float(self.task["fp32_accuracy"])

    def task_output(self) -> tuple[int, dict[str, Any]]:
        """The artifact's output the task reads: its position and its record."""
        wanted = self.task["output"]
        for position, out in enumerate(self.artifact.record["outputs"]):
            if wanted in (out["spec_name"], out["name"]):
                return position, out
        raise PackError(f"{self.model.name}/{self.artifact.exporter}: no task output {wanted!r}")

    def labels(self) -> np.ndarray:
        """One label per held-out sample (the pack's labels.npz)."""
        return self.model.labels(self.data_set.index)

    def golden_predictions(self) -> np.ndarray:
        """The float64 golden's class per held-out sample."""
        _, out = self.task_output()
        key = layout.golden_key(self.data_set.index, "output", out["spec_name"])
        if key not in self.model.golden:
            raise PackError(f"{self.model.golden_path}: has no array {key!r}")
        return predictions_of(self.model.golden[key])

    def predictions(self, actual: np.ndarray) -> np.ndarray:
        """A target's class per sample, from its task output (in the artifact's layout)."""
        _, out = self.task_output()
        spec_layout = np.transpose(np.asarray(actual), np.argsort(out["transpose"]))
        return predictions_of(spec_layout)

    @property
    def tolerance(self) -> Tolerance:
        """The rule this check is judged by: the spec's for its model and precision."""
        if self.tolerance_override is not None:
            return self.tolerance_override
        return tolerance_for(self.precision, self.model.name, self.model.record["tolerance_class"])

    @property
    def runnable(self) -> bool:
        return self.artifact.runnable

    @property
    def normative(self) -> bool:
        """Counted for or against the runtime (the artifact is exporter-clean for this data set)."""
        return not self.artifact.exporter_at_fault(self.data_set.index)


def native_artifact(model: PackModel, borrowed_from: str) -> Artifact:
    """A native target runs the model itself; it borrows the test data (in its framework's
    layout) of one exported artifact, and no exporter finding applies to it."""
    borrowed = next(a for a in model.artifacts if a.exporter == borrowed_from)
    record = {
        **borrowed.record,
        "exporter": NATIVE,
        "valid_onnx": True,
        "fidelity": [],
        "findings": [],
    }
    return Artifact(model.name, NATIVE, borrowed.directory, record)


def artifacts_for(
    model: PackModel, borrows: str | None, exporters: set[str], precision: str = DEFAULT_PRECISION
) -> list[Artifact]:
    if borrows is not None:
        if ARTIFACT_PRECISION[precision] != FP32:  # an eager framework model has no int8/fp16 file
            return []
        return [native_artifact(model, borrows)] if not exporters or NATIVE in exporters else []
    wanted = ARTIFACT_PRECISION[precision]
    return [
        a
        for a in model.artifacts
        if artifact_precision(a) == wanted and (not exporters or named(a, exporters))
    ]


def held_out(model: PackModel) -> TestDataSet | None:
    """The test data set holding a task's whole held-out split (None: the model has no task)."""
    task = task_of(model)
    if task is None:
        return None
    index = task.get("held_out_data_set")
    return next((d for d in model.data_sets if d.index == index), None)


def artifact_plans(
    model: PackModel, artifact: Artifact, target: str, precision: str
) -> list[CheckPlan]:
    """One artifact's checks on one target: each data set, then the task's accuracy."""
    plans = [
        CheckPlan(model, artifact, data_set, target, precision) for data_set in model.data_sets
    ]
    split = held_out(model)
    if split is not None:
        plans.append(CheckPlan(model, artifact, split, target, precision, kind=ACCURACY))
    return plans


def _borrowing(targets: Iterable[str | Target]) -> dict[str, str | None]:
    borrowing = {}
    for target in targets:
        adapter = get_target(target) if isinstance(target, str) else target
        borrowing[adapter.name] = adapter.borrowed_test_data
    return borrowing


def plan_checks(
    pack: Pack,
    targets: Iterable[str | Target] | Mapping[str, object],
    models: Iterable[str] = (),
    exporters: Iterable[str] = (),
    precision: str = DEFAULT_PRECISION,
) -> list[CheckPlan]:
    """Every check of ``targets`` (names or adapters) on the selection, in run order: target,
    model, artifact, data set (then the accuracy of a model with a task). An empty selection is
    the whole pack; only the artifacts of ``precision`` (ARTIFACT_PRECISION) are planned."""
    models, exporters = set(models), set(exporters)
    return [
        plan
        for target, borrows in _borrowing(targets).items()
        for model in pack.models
        if not models or model.name in models
        for artifact in artifacts_for(model, borrows, exporters, precision)
        for plan in artifact_plans(model, artifact, target, precision)
    ]


def runnable_checks(
    pack: Pack,
    target: str,
    models: Iterable[str] | None = None,
    exporters: Iterable[str] | None = None,
    precision: str = DEFAULT_PRECISION,
) -> list[CheckPlan]:
    """The runnable checks of one target on a selection (None: all), for the profile rule:
    what a profile requires and what a verifier can recompute."""
    wanted_models = None if models is None else set(models)
    wanted = ARTIFACT_PRECISION[precision]
    return [
        plan
        for model in pack.models
        if wanted_models is None or model.name in wanted_models
        for artifact in model.artifacts
        if artifact.runnable and artifact_precision(artifact) == wanted
        if exporters is None or named(artifact, exporters)
        for plan in artifact_plans(model, artifact, target, precision)
    ]
