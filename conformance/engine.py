"""Plan the checks of a run and execute them, one isolated child process per target.

The same functions serve `conformance run` and the pytest plugin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any

from conformance.checks import CheckPlan, run_check
from conformance.isolation import IsolatedTarget
from conformance.pack.load import Artifact, Pack, PackModel
from conformance.results.document import ResultsWriter
from conformance.results.records import SKIPPED, CheckRecord
from conformance.spec import load_json
from conformance.targets import Target, get_target, parse_target_name
from conformance.targets.native import DATA_FROM_EXPORTER


def check_timeout_s() -> float:
    return float(load_json("spec.json")["check_timeout_s"])


NATIVE = "native"  # the exporter column of live mode's eager torch / tf checks


def native_artifact(model: PackModel, target: str) -> Artifact | None:
    """A native target runs the model itself; it borrows the test data (in its framework's
    layout) of one exported artifact, and no exporter finding applies to it."""
    source = DATA_FROM_EXPORTER.get(parse_target_name(target)[0].split(":")[0])
    if source is None:
        return None
    borrowed = next(a for a in model.artifacts if a.exporter == source)
    record = {
        **borrowed.record,
        "exporter": NATIVE,
        "valid_onnx": True,
        "fidelity": [],
        "findings": [],
    }
    return Artifact(model.name, NATIVE, borrowed.directory, record)


def artifacts_for(model: PackModel, target: str, exporters: set[str]) -> list[Artifact]:
    native = native_artifact(model, target)
    if native is not None:
        return [native] if not exporters or NATIVE in exporters else []
    return [a for a in model.artifacts if not exporters or a.exporter in exporters]


def plan_checks(
    pack: Pack, targets: Iterable[str], models: Iterable[str] = (), exporters: Iterable[str] = ()
) -> list[CheckPlan]:
    models, exporters = set(models), set(exporters)
    return [
        CheckPlan(model, artifact, data_set, target)
        for target in targets
        for model in pack.models
        if not models or model.name in models
        for artifact in artifacts_for(model, target, exporters)
        for data_set in model.data_sets
    ]


def describe_targets(targets: list[Target]) -> dict[str, Any]:
    """The results file's "targets" section: what each target is, or why it is unavailable."""
    described = {}
    for target in targets:
        reason = target.unavailable_reason()
        if reason:
            described[target.name] = {"available": False, "reason": reason}
        else:
            described[target.name] = {"available": True, **asdict(target.describe())}
    return described


def skipped(plan: CheckPlan, reason: str) -> CheckRecord:
    return CheckRecord(
        model=plan.model.name,
        exporter=plan.artifact.exporter,
        data_set=plan.data_set.index,
        data_set_label=plan.data_set.label,
        target=plan.target,
        verdict=SKIPPED,
        problems=(reason,),
    )


def execute(
    plans: list[CheckPlan],
    writer: ResultsWriter,
    timeout_s: float | None = None,
    on_record: Callable[[CheckRecord], None] = lambda record: None,
) -> None:
    """Run every plan not already in the results (resume), writing each record as it comes."""
    timeout_s = timeout_s or check_timeout_s()
    runners: dict[str, IsolatedTarget] = {}
    try:
        for plan in plans:
            if writer.has(plan.check_id):
                continue
            info = writer.document["targets"].get(plan.target, {})
            if not info.get("available", False):
                record = skipped(plan, f"target unavailable: {info.get('reason', 'unknown')}")
            else:
                runner = runners.setdefault(plan.target, IsolatedTarget(plan.target, timeout_s))
                record = run_check(runner, plan, deterministic=info.get("deterministic", True))
            writer.add(record)
            on_record(record)
    finally:
        for runner in runners.values():
            runner.close()


def resolve_targets(names: Iterable[str]) -> list[Target]:
    return [get_target(name) for name in names]
