"""The ``ops`` profile for other entry points (``conformance run --profile ops``, pytest): one
plan per (case, target), run one at a time through the session, judged against the known list.

    profile = OpsProfile.open(session, case_set)          # the session's targets
    for plan in profile.plans(ops=("Softmax",)):          # ids "ops-<case>-<target>"
        record = profile.run(plan)                        # in the target's isolated child
        status, why = profile.outcome(record)             # PASS / FAIL / XFAIL / FIXED / SKIP
    section, lines, regressed = profile.finish()          # scores + known movement, flushed
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.ops import judge
from conformance.ops import known as known_lists
from conformance.ops.cases import Case, CaseSet
from conformance.ops.execute import (
    STDERR_KEPT,
    OpRecord,
    OpsRun,
    case_id,
    records_of,
    run_case,
)
from conformance.run.session import RunSession

PASS, FAIL, XFAIL, FIXED, SKIP = "pass", "fail", "xfail", "fixed", "skip"


@dataclass(frozen=True)
class OpPlan:
    case: Case
    target: str

    @property
    def id(self) -> str:
        """e.g. ``ops-test_softmax_large_number-ort:cpu``."""
        return case_id(self.case.name, self.target)


@dataclass
class OpsProfile:
    session: RunSession
    case_set: CaseSet
    known_dir: Path = known_lists.KNOWN_DIR
    run_state: OpsRun = field(init=False)
    _known: dict[str, known_lists.KnownList | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.run_state = OpsRun(self.session, self.case_set)

    @classmethod
    def open(
        cls, session: RunSession, case_set: CaseSet, known_dir: Path = known_lists.KNOWN_DIR
    ) -> OpsProfile:
        return cls(session, case_set, known_dir)

    @property
    def targets(self) -> list[str]:
        return [n for n, t in self.session.targets.items() if t.available]

    def plans(
        self, ops: Sequence[str] = (), globs: Sequence[str] = (), sets: Sequence[str] = ()
    ) -> list[OpPlan]:
        """Target by target, case by case (CaseSetError when a selection names nothing)."""
        cases = self.case_set.select(ops, globs, sets)
        return [OpPlan(case, target) for target in self.targets for case in cases]

    def run(self, plan: OpPlan) -> OpRecord:
        """Run one plan in its target's isolated child and add its record to the results."""
        import dataclasses

        runner = self.session.runner(plan.target)
        record = run_case(runner, plan.case, plan.target)
        stderr = runner.take_stderr()
        if stderr and record.category != judge.PASSED:
            record = dataclasses.replace(record, stderr=stderr[-STDERR_KEPT:])
        self.run_state.add(record)
        return record

    def known(self, target: str) -> known_lists.KnownList | None:
        if target not in self._known:
            version = self.session.target(target).version or ""
            self._known[target] = known_lists.find_known(target, version, self.known_dir)
        return self._known[target]

    def outcome(self, record: OpRecord) -> tuple[str, str]:
        """What a test framework makes of a record: a failure on the known list is an expected
        failure, a listed case that passes is FIXED (take it off the list), an unlisted failure
        FAIL, a case not testable here SKIP."""
        listed = self.known(record.target)
        entry = listed.cases.get(record.case) if listed is not None else None
        reason = record.problems[0] if record.problems else ""
        if record.category == judge.NOT_TESTABLE:
            return SKIP, reason
        if record.category == judge.PASSED:
            return (FIXED, "on the known list, now passes") if entry else (PASS, "")
        if entry is not None:
            return XFAIL, f"known: {record.category}: {reason}"
        return FAIL, f"{record.category}: {reason}"

    def finish(self, whole: bool = False) -> tuple[dict[str, Any], list[str], bool]:
        """Scores and known movement into the results' ops section; the file is flushed."""
        from conformance.ops.command import summarise, untested_ops

        targets = self.targets
        versions = {t: self.session.target(t).version or "" for t in targets}
        untested = untested_ops(self.case_set) if whole else []
        records = records_of(self.session.document)  # pytest-xdist: the workers' merged too
        section, lines, regressed = summarise(records, targets, versions, self.known_dir, untested)
        self.run_state.section.update(section)
        self.run_state.flush()
        return section, lines, regressed
