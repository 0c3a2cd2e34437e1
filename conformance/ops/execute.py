"""Running operator cases: one more caller of the run session.

The session opens the run (targets, run folder, results document); each case runs in the
session's isolated child process of its target (``IsolatedTarget``: a crash or a hang costs one
case, the child is replaced for the next). Records go into the results document's ``ops``
section, next to the pack's ``checks``; the file is flushed every 30 s and at the end,
not after every case (a flush writes the whole document); ``run_cases`` leaves the last write
to the caller's ``session.finish`` (it flushes itself only when interrupted).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conformance.isolation import ChildCrashed, ChildTimedOut, IsolatedTarget
from conformance.ops import judge
from conformance.ops.cases import Case, CaseSet
from conformance.ops.records import RECORD_KIND, OpRecord, case_id, records_of
from conformance.run.session import RunSession
from conformance.targets.interface import AdapterError, TargetError

FLUSH_EVERY_S = 30.0  # a flush re-encodes the whole document (~0.1 s per 1,000 cases)
STDERR_KEPT = 4000  # of a case that did not pass; a passing case keeps none
MESSAGE_KEPT = 4000
MISSING = "inputs missing: "  # the target contract's message (targets.interface.Session.run)


def _record(
    case: Case, target: str, verdict: judge.Verdict, started: float, **extra: Any
) -> OpRecord:
    return OpRecord(
        case=case.name,
        set=case.set,
        op=case.op,
        domain=case.domain,
        target=target,
        category=verdict.category,
        rule=judge.rule_of(case.rtol, case.atol),
        problems=verdict.problems,
        figures=verdict.figures.as_dict() if verdict.figures is not None else None,
        judged_by=verdict.judged_by,
        case_digest=case.digest,
        duration_s=round(time.perf_counter() - started, 6),
        expected_rounded_from=case.expected_rounded_from,
        **extra,
    )


def _error(
    case: Case, target: str, category: str, stage: str, message: str, started: float
) -> OpRecord:
    from conformance.findings import informative_part

    message = message[:MESSAGE_KEPT]
    first = informative_part(message, 300) if message.strip() else category
    verdict = judge.Verdict(category, (f"{stage}: {first}",))
    return _record(case, target, verdict, started, message=message, stage=stage)


def run_case(runner: IsolatedTarget, case: Case, target: str) -> OpRecord:
    """Load the case's model in the target's child, run every data set, judge the outputs."""
    started = time.perf_counter()
    untestable = case.untestable_reason()
    if untestable:
        return _record(case, target, judge.Verdict(judge.NOT_TESTABLE, (untestable,)), started)
    stage, cache = "load", ""
    verdict = judge.Verdict(judge.PASSED, (), judge.Figures())
    try:
        runner.load(case.model_path)
        cache = str(getattr(runner, "load_facts", {}).get("compile_cache", ""))
        stage = "run"
        for index in range(case.data_sets):
            feeds = case.feeds(index)
            expected = case.expected(index)
            outputs = _run_with_defaults(runner, case, feeds)
            if case.nondeterministic:
                this = judge.properties(case.op, feeds, outputs, expected, case.rtol, case.atol)
            else:
                this = judge.compare(outputs, expected, case.rtol, case.atol)
            verdict = _worse(verdict, this)
    except ChildCrashed as error:
        return _error(case, target, judge.CRASHED, stage, str(error), started)
    except ChildTimedOut as error:
        return _error(case, target, judge.TIMED_OUT, stage, str(error), started)
    except AdapterError as error:
        return _error(case, target, judge.ADAPTER_ERROR, stage, str(error), started)
    except TargetError as error:
        message = str(error)
        exotic = case.exotic_values()
        if stage == "run" and exotic:
            # the model loaded; the value could not be handed over: the target's API cannot
            # carry that element type (never a pass, never the runtime's failure)
            verdict = judge.Verdict(
                judge.NOT_TESTABLE,
                (f"{', '.join(exotic)}: the target API did not carry it ({message[:200]})",),
            )
            return _record(
                case, target, verdict, started, message=message[:MESSAGE_KEPT], stage=stage
            )
        return _error(case, target, judge.classify(stage, message), stage, message, started)
    return _record(case, target, verdict, started, compile_cache=cache)


def _run_with_defaults(
    runner: IsolatedTarget, case: Case, feeds: dict[str, np.ndarray]
) -> list[tuple[str, np.ndarray]]:
    """Run; an adapter that demands a graph input which has an initializer (IR < 4 models list
    their weights as inputs: feeding them is optional in ONNX) gets the initializer's value,
    which is exactly what the model computes without the feed."""
    try:
        return runner.run(feeds)
    except TargetError as error:
        if not str(error).startswith(MISSING):
            raise
        defaults = initializer_values(case)
        missing = [n.strip() for n in str(error)[len(MISSING) :].split(",")]
        if not missing or not all(name in defaults for name in missing):
            raise
        return runner.run({**feeds, **{name: defaults[name] for name in missing}})


def initializer_values(case: Case) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(case.model_path))
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _worse(a: judge.Verdict, b: judge.Verdict) -> judge.Verdict:
    order = judge.CATEGORIES
    if a.category == b.category:
        figures = (
            a.figures.worst(b.figures) if a.figures is not None and b.figures is not None else None
        )
        return judge.Verdict(a.category, a.problems + b.problems, figures, b.judged_by)
    rank = {judge.PASSED: 0, judge.FAILED_VALUES: 1, judge.FAILED_STRUCTURE: 2}
    return a if rank.get(a.category, len(order)) > rank.get(b.category, len(order)) else b


@dataclass
class OpsRun:
    """The ops section of a results document, kept in memory and flushed with the document."""

    session: RunSession
    case_set: CaseSet
    records: list[OpRecord] = field(default_factory=list)
    _last_flush: float = 0.0

    def __post_init__(self) -> None:
        section = self.session.document.setdefault("ops", {})
        section["case_set"] = self.case_set.identity()
        section["rule"] = judge.rule_of(*_rule())
        section.setdefault("cases", [])

    @property
    def section(self) -> dict[str, Any]:
        return self.session.document["ops"]

    def add(self, record: OpRecord) -> None:
        self.records.append(record)
        self.section["cases"].append(record.as_dict())
        now = time.monotonic()
        if now - self._last_flush >= FLUSH_EVERY_S:
            self.session.writer.flush()
            self._last_flush = now

    def flush(self) -> None:
        self.session.writer.flush()
        self._last_flush = time.monotonic()


def _rule() -> tuple[float, float]:
    from conformance.ops.cases import RULE_ATOL, RULE_RTOL

    return RULE_RTOL, RULE_ATOL


def runner_of(session: RunSession, target: str) -> IsolatedTarget:
    """The session's isolated child of a target (the pack checks use the same one)."""
    return session.runner(target)


def run_cases(
    session: RunSession,
    case_set: CaseSet,
    cases: Sequence[Case],
    targets: Sequence[str] | None = None,
    on_record: Callable[[OpRecord], None] = lambda record: None,
) -> OpsRun:
    """Every case on every target (default: the session's targets), target by target, each
    in its isolated child; an unavailable target runs nothing (its description says why)."""
    run = OpsRun(session, case_set)
    names = list(session.targets) if targets is None else list(targets)
    try:
        for target in names:
            if not session.target(target).available:
                continue  # the targets section says why; no case is counted for it
            for case in cases:
                runner = runner_of(session, target)
                record = run_case(runner, case, target)
                stderr = runner.take_stderr()
                if stderr and record.category != judge.PASSED:
                    record = _with_stderr(record, stderr[-STDERR_KEPT:])
                run.add(record)
                on_record(record)
            session.close_runners()  # one target's child at a time
    except BaseException:
        run.flush()  # an interrupted run keeps its cases (the caller finishes the document)
        raise
    finally:
        session.close_runners()
    return run


def _with_stderr(record: OpRecord, stderr: str) -> OpRecord:
    import dataclasses

    return dataclasses.replace(record, stderr=stderr)


__all__ = [
    "RECORD_KIND",
    "OpRecord",
    "OpsRun",
    "case_id",
    "records_of",
    "run_case",
    "run_cases",
]
