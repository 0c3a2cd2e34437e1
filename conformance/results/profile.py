"""The profile rule: from the outcomes of a profile's checks to one status. The one copy.

The report (report/verdicts.py) applies it to the verdicts a results file records; certify and
verify (certify/profiles.py) apply it to verdicts they recompute from the recorded figures and
the pack. Both ask the same question of each check: did it pass, does it count (normative: the
artifact is exporter-clean for that data set, so the check is for or against the runtime), and,
for a skip, whether it was assessed at all.

One word for the outcome everywhere: a target is **conformant** to a profile. A certification
bundle's claim "certified" is this rule's "conformant", recomputed from the bundle and verified;
it is the same outcome, named for what the bundle asserts.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from conformance.results.records import EXPORTER, PASSED, SKIPPED, CheckRecord, SkipKind


class ProfileStatus(enum.StrEnum):
    CONFORMANT = "conformant"  # every required, normative check present and passed
    NOT_CONFORMANT = "not conformant"  # a normative check did not pass
    INCOMPLETE = "incomplete"  # nothing failed, but a required check is missing or not assessed
    NOT_RUN = "not run"  # no check of the profile in these results


@dataclass(frozen=True)
class Outcome:
    """One check as the rule sees it."""

    check_id: str
    passed: bool
    normative: bool  # counted for or against the runtime
    verdict: str = ""  # as recorded (for the reasons; ``passed`` is what counts)
    skip: SkipKind | None = None  # for a skipped check: why

    @property
    def assessed(self) -> bool:
        """False for a skip that leaves the runtime unassessed (target unavailable, unknown)."""
        return self.verdict != SKIPPED or (self.skip is not None and self.skip.assessed)

    @classmethod
    def of_record(cls, record: CheckRecord) -> Outcome:
        """A recorded check: an exporter finding does not count against the runtime."""
        return cls(
            record.check_id,
            record.verdict == PASSED,
            record.attributed_to != EXPORTER,
            record.verdict,
            record.skip,
        )


@dataclass(frozen=True)
class RuleResult:
    status: ProfileStatus
    failing: tuple[Outcome, ...]  # normative, assessed, not passed: against the runtime
    not_assessed: tuple[Outcome, ...]  # normative, skipped without an assessment
    missing: tuple[str, ...]  # required check ids with no outcome
    required: int  # normative checks present
    passed: int  # normative checks that passed

    @property
    def conformant(self) -> bool:
        return self.status is ProfileStatus.CONFORMANT


def apply_rule(outcomes: Iterable[Outcome], required: Sequence[str] | None = None) -> RuleResult:
    """The status of a profile over ``outcomes``. ``required``: the check ids the profile needs
    (in order); None takes the outcomes as the whole profile (a run judged on what it holds).
    A skip whose kind is assessed (the exporter produced no runnable artifact) is neither for
    nor against the runtime."""
    by_id = {o.check_id: o for o in outcomes}
    if required is None:
        required = list(by_id)
    missing = tuple(cid for cid in required if cid not in by_id)
    present = [by_id[cid] for cid in required if cid in by_id]
    normative = [o for o in present if o.normative]
    not_assessed = tuple(o for o in normative if not o.assessed)
    failing = tuple(o for o in normative if o.assessed and not o.passed and o.verdict != SKIPPED)
    passed = sum(1 for o in normative if o.passed)
    if not present and not missing:
        status = ProfileStatus.NOT_RUN
    elif failing:
        status = ProfileStatus.NOT_CONFORMANT
    elif missing or not_assessed:
        status = ProfileStatus.INCOMPLETE
    else:
        status = ProfileStatus.CONFORMANT
    return RuleResult(status, failing, not_assessed, missing, len(normative), passed)
