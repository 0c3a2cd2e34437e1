"""One check: run one test data set of one artifact on one target and judge it.

Beyond the values (compare.judge), a check asks two more questions of the target:
determinism (the same input twice gives identical outputs) and batch invariance (each
sample of a batch gives what it gives alone).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from conformance.compare.judge import Expected, Judgement, judge
from conformance.compare.tolerance import Tolerance, tolerance_for
from conformance.isolation import ChildCrashed, ChildTimedOut, IsolatedTarget
from conformance.pack.load import Artifact, PackModel, TestDataSet
from conformance.results.records import (
    CRASHED,
    ERROR,
    FAILED,
    PASSED,
    SKIPPED,
    TIMED_OUT,
    CheckRecord,
    check_id,
)
from conformance.targets.interface import Outputs, TargetError


@dataclass(frozen=True)
class CheckPlan:
    model: PackModel
    artifact: Artifact
    data_set: TestDataSet
    target: str

    @property
    def check_id(self) -> str:
        return check_id(self.model.name, self.artifact.exporter, self.data_set.label, self.target)


def exporter_at_fault(artifact: Artifact, data_set: int) -> bool:
    """The pack records this artifact as invalid, or as failing this data set on the reference evaluator."""
    if not artifact.exists or not artifact.record.get("valid_onnx", False):
        return True
    return any(
        f["test_data_set"] == data_set and not f["passed"]
        for f in artifact.record.get("fidelity", [])
    )


def _record(plan: CheckPlan, verdict: str, started: float, **fields) -> CheckRecord:
    attributed = None
    if verdict not in (PASSED, SKIPPED):
        attributed = (
            "exporter" if exporter_at_fault(plan.artifact, plan.data_set.index) else "target"
        )
    return CheckRecord(
        model=plan.model.name,
        exporter=plan.artifact.exporter,
        data_set=plan.data_set.index,
        data_set_label=plan.data_set.label,
        target=plan.target,
        verdict=verdict,
        attributed_to=attributed,
        duration_s=round(time.perf_counter() - started, 6),
        **fields,
    )


def determinism(
    first: Outputs,
    second: Outputs,
    expected: list[Expected],
    tolerance: Tolerance,
    declared_deterministic: bool,
) -> dict:
    if declared_deterministic:
        identical = len(first) == len(second) and all(
            a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
            for (_, a), (_, b) in zip(first, second)
        )
        return {"checked": True, "mode": "identical", "passed": bool(identical)}
    repeat = judge(second, expected, tolerance)
    return {
        "checked": True,
        "mode": "within-tolerance",
        "passed": repeat.passed,
        "margin": repeat.margin,
    }


def batch_invariance(
    runner: IsolatedTarget, feeds: dict, batched: Outputs, tolerance: Tolerance
) -> dict:
    """Run each sample alone; the batched output's row i must match it within the tolerance."""
    worst = 0.0
    batch = next(iter(feeds.values())).shape[0]
    for i in range(batch):
        single = runner.run({name: array[i : i + 1] for name, array in feeds.items()})
        alone = [
            Expected(name, str(array.dtype), np.asarray(array, dtype=np.float64))
            for name, array in single
        ]
        rows = [(name, np.asarray(array)[i : i + 1]) for name, array in batched]
        judgement = judge(rows, alone, tolerance)
        if not judgement.passed:
            return {
                "checked": True,
                "passed": False,
                "sample": i,
                "margin": judgement.margin,
                "problems": judgement.all_problems[:3],
            }
        worst = max(worst, judgement.margin)
    return {"checked": True, "passed": True, "margin": worst}


def _values_fields(judgement: Judgement, tolerance: Tolerance) -> dict:
    return {
        "margin": judgement.margin,
        "tolerance": {"atol": tolerance.atol, "rtol": tolerance.rtol},
        "outputs": {o.name: o.stats.as_dict() if o.stats else None for o in judgement.outputs},
    }


def run_check(runner: IsolatedTarget, plan: CheckPlan, deterministic: bool = True) -> CheckRecord:
    started = time.perf_counter()
    if "outputs" not in plan.artifact.record or not plan.artifact.exists:
        reason = "; ".join(f["message"] for f in plan.artifact.findings) or "artifact missing"
        return _record(plan, SKIPPED, started, problems=(f"no runnable artifact: {reason[:500]}",))
    tolerance = tolerance_for("fp32", plan.model.name, plan.model.record["tolerance_class"])
    expected = plan.model.expected(plan.artifact, plan.data_set.index)
    feeds = dict(plan.artifact.inputs(plan.data_set.index))
    stage = "load"
    try:
        runner.load(plan.artifact.path)
        stage = "run"
        outputs = runner.run(feeds)
        judgement = judge(outputs, expected, tolerance)
        if not judgement.passed:  # the values already fail: further runs add nothing
            return _record(
                plan,
                FAILED,
                started,
                problems=tuple(judgement.all_problems),
                **_values_fields(judgement, tolerance),
            )
        stage = "determinism run"
        repeat = determinism(outputs, runner.run(feeds), expected, tolerance, deterministic)
        stage = "batch-invariance run"
        invariance = (
            batch_invariance(runner, feeds, outputs, tolerance)
            if plan.data_set.batch > 1
            else {"checked": False}
        )
    except ChildCrashed as error:
        return _record(plan, CRASHED, started, problems=(f"{stage}: {error}",))
    except ChildTimedOut as error:
        return _record(plan, TIMED_OUT, started, problems=(f"{stage}: {error}",))
    except TargetError as error:
        return _record(plan, ERROR, started, problems=(f"{stage} failed: {str(error)[:2000]}",))
    problems = []
    if not repeat["passed"]:
        problems.append("nondeterministic: a second run of the same input gave different outputs")
    if invariance.get("checked") and not invariance["passed"]:
        problems.append(
            f"batch invariance: sample {invariance['sample']} differs from its batch-1 result "
            f"(margin {invariance['margin']:.3g})"
        )
    return _record(
        plan,
        FAILED if problems else PASSED,
        started,
        problems=tuple(problems),
        determinism=repeat,
        batch_invariance=invariance,
        **_values_fields(judgement, tolerance),
    )
