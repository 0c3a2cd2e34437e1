"""One check: run one test data set of one artifact on one target and judge it.

Beyond the values (compare.judge), a check asks two more questions of the target:
determinism (the same input twice gives identical outputs) and batch invariance (each
sample of a batch gives what it gives alone). An accuracy check (plan kind ACCURACY) runs the
task's held-out split and judges the target's classes against the labels (results/accuracy.py).

A check is judged at the run's precision, never at the target's: a target whose description
says it computes in a narrower precision than the run judges (OpenVINO's in-force bf16 in a fp32
run) fails with that said, whatever its values, so a reduced precision is never silently widened.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from conformance.compare.judge import Expected, Judgement, judge
from conformance.compare.tolerance import Tolerance
from conformance.isolation import ChildCrashed, ChildTimedOut, IsolatedTarget
from conformance.results.accuracy import ACCURACY, accuracy_figures
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

INVARIANCE_SAMPLES = 8  # batch invariance runs at most this many samples alone, spread evenly
MAX_PROBLEM_CHARS = 20_000  # a runtime's whole message (IREE's run to ~2,000), bounded for sanity

# Runtimes stamp their log lines with the wall clock (ORT: "2026-12-01 07:59:52.242144478 [E:...");
# the record keeps the message, not the moment, so a re-run's record is the same record.
_LOG_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.,]\d+)? ?", re.MULTILINE)


# What a target's description says it computes in (OpenVINO's in-force inference precision;
# CUDA's TF32 switch on ORT and torch), and what each run precision allows a target to compute in.
IN_FORCE = {"f32": "fp32", "fp32": "fp32", "bf16": "bf16", "f16": "fp16", "fp16": "fp16"}
TF32_KEYS = ("cuda_use_tf32", "tf32_matmul")
ALLOWED_IN_FORCE = {
    "fp32": {"fp32"},
    "tf32": {"fp32", "tf32"},
    "fp16": {"fp32", "tf32", "fp16"},
    "bf16": {"fp32", "tf32", "bf16"},
}


def in_force_precision(options: Mapping[str, Any] | None) -> str | None:
    """The precision a target's description says is in force (None: it does not say)."""
    options = options or {}
    value = options.get("inference_precision")
    if value is not None:
        return IN_FORCE.get(str(value), str(value))
    if any(str(options.get(key)).lower() in ("1", "true", "on") for key in TF32_KEYS):
        return "tf32"
    return None


def narrower_than_run(plan: CheckPlan, in_force: str | None) -> str | None:
    """Why the target may not be judged at the plan's precision (one line), or None."""
    allowed = ALLOWED_IN_FORCE.get(plan.precision)
    if in_force is None or allowed is None or in_force in allowed:
        return None
    return (
        f"the target computes in {in_force} (its description's inference precision) but this "
        f"run judges {plan.precision}: run it under the {in_force} profile"
    )


def skipped(plan: CheckPlan, kind: SkipKind, reason: str) -> CheckRecord:
    """A check that did not run: its kind is data, the reason is for people."""
    return CheckRecord(
        model=plan.model.name,
        exporter=plan.artifact.exporter,
        data_set=plan.data_set.index,
        data_set_label=plan.label,
        target=plan.target,
        verdict=SKIPPED,
        problems=(reason,),
        skip=kind,
        kind=plan.kind,
        precision=plan.precision,
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
        data_set_label=plan.label,
        target=plan.target,
        verdict=verdict,
        attributed_to=attributed,
        duration_s=round(time.perf_counter() - started, 6),
        kind=plan.kind,
        precision=plan.precision,
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
    """Run each sample alone (of a batch over INVARIANCE_SAMPLES: the first two, the last and
    others spread evenly between); the batched output's row i must match it within the
    tolerance."""
    worst = 0.0
    batch = next(iter(feeds.values())).shape[0]
    spread = np.linspace(0, batch - 1, min(batch, INVARIANCE_SAMPLES)).round().astype(int)
    for i in sorted({*(int(i) for i in spread), *range(min(batch, 2))}):
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


def run_check(
    runner: IsolatedTarget,
    plan: CheckPlan,
    deterministic: bool = True,
    options: Mapping[str, Any] | None = None,
) -> CheckRecord:
    """Run and judge one check; the child's stderr during it goes into the record.
    ``options``: the target description's options (what it says is in force)."""
    started = time.perf_counter()
    if plan.kind == ACCURACY:
        record = _guarded(plan, started, lambda: _run_accuracy(runner, plan, started))
    else:
        record = _run_check(runner, plan, deterministic)
    narrower = narrower_than_run(plan, in_force_precision(options))
    if narrower and record.verdict not in (SKIPPED, ERROR, CRASHED, TIMED_OUT):
        attributed = TARGET if plan.normative else EXPORTER
        problems = (narrower, *record.problems)
        record = dataclasses.replace(
            record, verdict=FAILED, problems=problems, attributed_to=attributed
        )
    cache = (getattr(runner, "load_facts", None) or {}).get("compile_cache")  # contract P5
    if cache is not None and record.verdict != SKIPPED:
        record = dataclasses.replace(record, compile_cache=str(cache))
    take = getattr(runner, "take_stderr", None)  # contract B (isolation.py)
    stderr = _LOG_TIMESTAMP.sub("", take()) if callable(take) else ""
    return dataclasses.replace(record, stderr=stderr) if stderr else record


def _not_runnable(plan: CheckPlan, started: float) -> CheckRecord:
    reason = "; ".join(f["message"] for f in plan.artifact.findings) or "artifact missing"
    return dataclasses.replace(
        skipped(plan, SkipKind.NO_RUNNABLE_ARTIFACT, f"no runnable artifact: {reason[:500]}"),
        duration_s=round(time.perf_counter() - started, 6),
    )


class _Stage:
    """Where a check is (load, run, ...), for the message of a failure there."""

    def __init__(self) -> None:
        self.name = "load"


def _guarded(
    plan: CheckPlan, started: float, body: Callable[[], CheckRecord], stage: _Stage | None = None
) -> CheckRecord:
    """``body``'s record, or the record of the target failing inside it."""
    where = stage or _Stage()
    try:
        return body()
    except ChildCrashed as error:
        return _record(plan, CRASHED, started, problems=(f"{where.name}: {error}",))
    except ChildTimedOut as error:
        return _record(plan, TIMED_OUT, started, problems=(f"{where.name}: {error}",))
    except AdapterError as error:  # before TargetError: the adapter's bug, not the runtime's
        message = f"adapter error: {where.name}: {str(error)[:MAX_PROBLEM_CHARS]}"
        return _record(plan, ERROR, started, adapter=True, problems=(message,))
    except TargetError as error:
        message = f"{where.name} failed: {str(error)[:MAX_PROBLEM_CHARS]}"
        return _record(plan, ERROR, started, problems=(message,))


def _run_accuracy(runner: IsolatedTarget, plan: CheckPlan, started: float) -> CheckRecord:
    """The task's accuracy on the held-out split: the target's class per sample, judged against
    the labels and the golden's own accuracy (results/accuracy.py)."""
    if not plan.runnable:
        return _not_runnable(plan, started)
    labels, golden, position = plan.labels(), plan.golden_predictions(), plan.task_output()[0]
    runner.load(plan.artifact.path)
    outputs = runner.run(dict(plan.artifact.inputs(plan.data_set.index)))
    if len(outputs) <= position:
        problem = f"{len(outputs)} outputs: the task reads output {position}"
        return _record(plan, FAILED, started, problems=(problem,))
    predictions = plan.predictions(outputs[position][1])
    try:
        figures = accuracy_figures(predictions, labels, golden, plan.fp32_accuracy)
    except ValueError as error:  # one prediction per sample is the target's to give
        return _record(plan, FAILED, started, problems=(f"accuracy: {error}",))
    problems: tuple[str, ...] = ()
    if not figures.passed:
        problems = (
            f"accuracy {figures.accuracy:.4f} is {figures.relative:.2%} of the fp32 accuracy "
            f"{figures.fp32_accuracy:.4f} (tier {figures.tier}): at least 99% is required",
        )
    return _record(
        plan,
        PASSED if figures.passed else FAILED,
        started,
        problems=problems,
        margin=figures.margin,
        accuracy=figures,
        predictions=tuple(int(p) for p in predictions),
    )


def _run_check(runner: IsolatedTarget, plan: CheckPlan, deterministic: bool) -> CheckRecord:
    started = time.perf_counter()
    if not plan.runnable:
        return _not_runnable(plan, started)
    tolerance = plan.tolerance
    expected = plan.model.expected(plan.artifact, plan.data_set.index)
    feeds = dict(plan.artifact.inputs(plan.data_set.index))
    stage = _Stage()

    def values() -> CheckRecord:
        runner.load(plan.artifact.path)
        stage.name = "run"
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
        stage.name = "determinism run"
        repeat = determinism(outputs, runner.run(feeds), expected, tolerance, deterministic)
        stage.name = "batch-invariance run"
        invariance = (
            batch_invariance(runner, feeds, outputs, tolerance)
            if plan.data_set.batch > 1
            else {"checked": False}
        )
        return _judged(plan, started, judgement, tolerance, repeat, invariance)

    return _guarded(plan, started, values, stage)


def _judged(
    plan: CheckPlan,
    started: float,
    judgement: Judgement,
    tolerance: Tolerance,
    repeat: dict[str, Any],
    invariance: dict[str, Any],
) -> CheckRecord:
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
