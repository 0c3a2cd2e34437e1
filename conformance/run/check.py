"""One check: run one test data set of one artifact on one target and judge it.

Beyond the values (compare.judge), a check asks two more questions of the target:
determinism (the same input twice gives identical outputs) and batch invariance (each
sample of a batch gives what it gives alone).
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any

import numpy as np

from conformance.compare.judge import Expected, Judgement, judge
from conformance.compare.tolerance import Tolerance
from conformance.isolation import ChildCrashed, ChildTimedOut, IsolatedTarget
from conformance.results.records import (
    ADAPTER,
    CRASHED,
    ERROR,
    EXPORTER,
    FAILED,
    PASSED,
    SKIPPED,
    TARGET,
    TIMED_OUT,
    CheckRecord,
    SkipKind,
)
from conformance.run.plan import CheckPlan
from conformance.targets.interface import AdapterError, Outputs, TargetError

MAX_PROBLEM_CHARS = 20_000  # a runtime's whole message (IREE's run to ~2,000), bounded for sanity

# Runtimes stamp their log lines with the wall clock (ORT: "2026-12-01 07:59:52.242144478 [E:...");
# the record keeps the message, not the moment, so a re-run's record is the same record.
_LOG_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.,]\d+)? ?", re.MULTILINE)


def skipped(plan: CheckPlan, kind: SkipKind, reason: str) -> CheckRecord:
    """A check that did not run: its kind is data, the reason is for people."""
    return CheckRecord(
        model=plan.model.name,
        exporter=plan.artifact.exporter,
        data_set=plan.data_set.index,
        data_set_label=plan.data_set.label,
        target=plan.target,
        verdict=SKIPPED,
        problems=(reason,),
        skip=kind,
    )


def _record(
    plan: CheckPlan, verdict: str, started: float, adapter: bool = False, **fields: Any
) -> CheckRecord:
    attributed = None
    if verdict not in (PASSED, SKIPPED):
        attributed = ADAPTER if adapter else TARGET if plan.normative else EXPORTER
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
) -> dict[str, Any]:
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
    runner: IsolatedTarget, feeds: dict[str, np.ndarray], batched: Outputs, tolerance: Tolerance
) -> dict[str, Any]:
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


def _values_fields(judgement: Judgement, tolerance: Tolerance) -> dict[str, Any]:
    return {
        "margin": judgement.margin,
        "tolerance": {"atol": tolerance.atol, "rtol": tolerance.rtol},
        "outputs": {o.name: o.stats.as_dict() if o.stats else None for o in judgement.outputs},
    }


def run_check(runner: IsolatedTarget, plan: CheckPlan, deterministic: bool = True) -> CheckRecord:
    """Run and judge one check; the child's stderr during it goes into the record."""
    record = _run_check(runner, plan, deterministic)
    take = getattr(runner, "take_stderr", None)  # contract B (isolation.py)
    stderr = _LOG_TIMESTAMP.sub("", take()) if callable(take) else ""
    return dataclasses.replace(record, stderr=stderr) if stderr else record


def _run_check(runner: IsolatedTarget, plan: CheckPlan, deterministic: bool) -> CheckRecord:
    started = time.perf_counter()
    if not plan.runnable:
        reason = "; ".join(f["message"] for f in plan.artifact.findings) or "artifact missing"
        return dataclasses.replace(
            skipped(plan, SkipKind.NO_RUNNABLE_ARTIFACT, f"no runnable artifact: {reason[:500]}"),
            duration_s=round(time.perf_counter() - started, 6),
        )
    tolerance = plan.tolerance
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
    except AdapterError as error:  # before TargetError: the adapter's bug, not the runtime's
        message = f"adapter error: {stage}: {str(error)[:MAX_PROBLEM_CHARS]}"
        return _record(plan, ERROR, started, adapter=True, problems=(message,))
    except TargetError as error:
        message = f"{stage} failed: {str(error)[:MAX_PROBLEM_CHARS]}"
        return _record(plan, ERROR, started, problems=(message,))
    problems: list[str] = []
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
