"""Run pack artifacts on targets and judge every test data set against its golden.

A target that refuses an artifact costs the checks of that artifact (verdict "error",
with the runtime's own message), never the run.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from conformance.compare.tolerance import tolerance_for
from conformance.pack.load import Artifact, Pack, PackModel
from conformance.results.records import ERROR, FAILED, PASSED, SKIPPED, CheckRecord
from conformance.compare.judge import judge
from conformance.targets import Target
from conformance.targets.interface import TargetError, TargetUnavailable


def exporter_at_fault(artifact: Artifact, data_set: int) -> bool:
    """The artifact already fails this data set on the reference evaluator (recorded at build)."""
    if not artifact.record.get("valid_onnx", False):
        return True
    return any(f["test_data_set"] == data_set and not f["passed"] for f in artifact.record.get("fidelity", []))


def _record(model: PackModel, artifact: Artifact, data_set, target: Target, **fields) -> CheckRecord:
    verdict = fields["verdict"]
    attributed = None
    if verdict in (FAILED, ERROR):
        attributed = "exporter" if exporter_at_fault(artifact, data_set.index) else "target"
    return CheckRecord(model=model.name, exporter=artifact.exporter, data_set=data_set.index,
                       data_set_label=data_set.label, target=target.name, attributed_to=attributed, **fields)


def check_artifact(model: PackModel, artifact: Artifact, target: Target) -> Iterator[CheckRecord]:
    """Every test data set of one artifact on one target."""
    if not artifact.exists or "outputs" not in artifact.record:
        reason = "; ".join(f["message"] for f in artifact.findings) or "artifact missing"
        for data_set in model.data_sets:
            yield _record(model, artifact, data_set, target, verdict=SKIPPED, problems=(f"no artifact: {reason}",))
        return
    tolerance = tolerance_for("fp32", model.record["tolerance_class"])
    try:
        session = target.load(artifact.path)
    except TargetUnavailable as error:
        for data_set in model.data_sets:
            yield _record(model, artifact, data_set, target, verdict=SKIPPED, problems=(str(error),))
        return
    except TargetError as error:
        for data_set in model.data_sets:
            yield _record(model, artifact, data_set, target, verdict=ERROR, problems=(f"load failed: {error}",))
        return
    try:
        for data_set in model.data_sets:
            started = time.perf_counter()
            try:
                outputs = session.run(dict(artifact.inputs(data_set.index)))
            except TargetError as error:
                yield _record(model, artifact, data_set, target, verdict=ERROR, problems=(f"run failed: {error}",),
                              duration_s=time.perf_counter() - started)
                continue
            judgement = judge(outputs, model.expected(artifact, data_set.index), tolerance)
            yield _record(
                model, artifact, data_set, target,
                verdict=PASSED if judgement.passed else FAILED,
                problems=tuple(judgement.all_problems), margin=judgement.margin,
                outputs={o.name: o.stats.as_dict() if o.stats else None for o in judgement.outputs},
                tolerance={"atol": tolerance.atol, "rtol": tolerance.rtol},
                duration_s=time.perf_counter() - started,
            )
    finally:
        session.close()


def run_pack(pack: Pack, targets: list[Target], models: list[str] | None = None,
             on_record: Callable[[CheckRecord], None] = lambda r: None) -> list[CheckRecord]:
    records = []
    for model in pack.models:
        if models and model.name not in models:
            continue
        for artifact in model.artifacts:
            for target in targets:
                for record in check_artifact(model, artifact, target):
                    on_record(record)
                    records.append(record)
    return records
