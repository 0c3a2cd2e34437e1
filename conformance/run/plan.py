"""The check space: which checks a run (or a profile) holds, one plan per check.

A check is one test data set of one artifact on one target at one precision. Whether it can run
(``runnable``) and whether it counts for or against the runtime (``normative``: the pack records
the artifact as exporter-clean for that data set) are properties of the artifact, read here once;
the run, the pytest plugin, certify, verify and the report all take them from a plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from conformance.compare.tolerance import Tolerance, tolerance_for
from conformance.pack.load import Artifact, Pack, PackModel, TestDataSet
from conformance.results.records import check_id
from conformance.targets import Target, get_target

DEFAULT_PRECISION = "fp32"
NATIVE = "native"  # the exporter column of live mode's eager torch / tf checks


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

    @property
    def check_id(self) -> str:
        return check_id(self.model.name, self.artifact.exporter, self.data_set.label, self.target)

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


def artifacts_for(model: PackModel, borrows: str | None, exporters: set[str]) -> list[Artifact]:
    if borrows is not None:
        return [native_artifact(model, borrows)] if not exporters or NATIVE in exporters else []
    return [a for a in model.artifacts if not exporters or a.exporter in exporters]


def _borrowing(targets: Iterable[str | Target]) -> dict[str, str | None]:
    named = {}
    for target in targets:
        adapter = get_target(target) if isinstance(target, str) else target
        named[adapter.name] = adapter.borrowed_test_data
    return named


def plan_checks(
    pack: Pack,
    targets: Iterable[str | Target] | Mapping[str, object],
    models: Iterable[str] = (),
    exporters: Iterable[str] = (),
    precision: str = DEFAULT_PRECISION,
) -> list[CheckPlan]:
    """Every check of ``targets`` (names or adapters) on the selection, in run order: target,
    model, artifact, data set. An empty selection is the whole pack."""
    models, exporters = set(models), set(exporters)
    return [
        CheckPlan(model, artifact, data_set, target, precision)
        for target, borrows in _borrowing(targets).items()
        for model in pack.models
        if not models or model.name in models
        for artifact in artifacts_for(model, borrows, exporters)
        for data_set in model.data_sets
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
    wanted_exporters = None if exporters is None else set(exporters)
    return [
        CheckPlan(model, artifact, data_set, target, precision)
        for model in pack.models
        if wanted_models is None or model.name in wanted_models
        for artifact in model.artifacts
        if artifact.runnable and (wanted_exporters is None or artifact.exporter in wanted_exporters)
        for data_set in model.data_sets
    ]
