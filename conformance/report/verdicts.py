"""Per target: is it conformant for each profile, and what the counts behind that are.

The ``core`` profile is defined in spec/profiles.json (SPEC.md section 9): every model, exported
artifact and test data set at the fp32 tolerances, judged on the normative (exporter-clean)
checks. The report applies the profile rule (results/profile.py, the one certify applies too) to
the checks of this run, reading them from the results file alone: a target is conformant when no
check on its account did not pass and nothing was skipped except for a missing artifact (read
from the record's skip kind); exporter findings are counted in their own column, never against a
runtime. A run of a selection of the pack says so, since certification needs every check
(``conformance certify``, which also recomputes each verdict rather than reading it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conformance.results.metadata import Selection, TargetDescription, targets_of
from conformance.results.profile import Outcome, ProfileStatus, RuleResult, apply_rule
from conformance.results.records import (
    ADAPTER,
    EXPORTER,
    NOT_PASSED,
    SKIPPED,
    VERDICTS,
    CheckRecord,
    SkipKind,
)

CORE_PROFILE = "core"
FP32 = "fp32"
NEGATIVE_CONTROL_PREFIX = "defect:"


def run_profile(records: list[CheckRecord]) -> str:
    """The profile a run's checks belong to: ``core`` at fp32, else the precision profile of
    the same name (spec/profiles.json: fp16, bf16, int8), read from the records themselves."""
    precisions = {r.precision for r in records}
    if len(precisions) == 1 and FP32 not in precisions:
        return precisions.pop()
    return CORE_PROFILE


CONFORMANT, NOT_CONFORMANT, INCOMPLETE, NOT_RUN = (
    ProfileStatus.CONFORMANT,
    ProfileStatus.NOT_CONFORMANT,
    ProfileStatus.INCOMPLETE,
    ProfileStatus.NOT_RUN,
)


@dataclass(frozen=True)
class ProfileVerdict:
    profile: str
    status: str  # CONFORMANT, NOT_CONFORMANT, INCOMPLETE or NOT_RUN
    why: str

    @property
    def conformant(self) -> bool:
        return self.status == CONFORMANT


@dataclass(frozen=True)
class TargetVerdict:
    target: str
    available: bool
    description: str  # "onnxruntime 1.32.0 on cpu", or why it is unavailable
    negative_control: bool  # a known-defective target: "not conformant" is the expected outcome
    profiles: tuple[ProfileVerdict, ...]
    counts: dict[str, int]  # verdict -> number of checks, every verdict present
    exporter_findings: int  # checks that did not pass on the exporter's account
    skip_reasons: tuple[tuple[str, int], ...]  # (reason, number of checks), most frequent first

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + self.exporter_findings


def partial(selection: Mapping[str, Any] | Selection | None) -> str:
    """Why the run is not the whole core profile ('' when it is)."""
    if not isinstance(selection, Selection):
        selection = Selection.from_dict(selection)
    chosen = [
        f"{kind} {', '.join(names)}"
        for kind, names in (("models", selection.models), ("exporters", selection.exporters))
        if names
    ]
    return f" (on a selection of the pack: {'; '.join(chosen)})" if chosen else ""


def exporter_finding(record: CheckRecord) -> bool:
    return record.verdict in NOT_PASSED and record.attributed_to == EXPORTER


def core_verdict(
    info: Mapping[str, Any] | TargetDescription | None,
    records: list[CheckRecord],
    selection: Mapping[str, Any] | Selection | None = None,
    profile: str = CORE_PROFILE,
) -> ProfileVerdict:
    """The profile rule (results/profile.py) over the checks this run recorded for one target."""
    if isinstance(info, Mapping):
        info = TargetDescription.from_dict("", info) if info else None
    if info is not None and not info.available:
        return ProfileVerdict(profile, NOT_RUN, info.describe())
    rule = apply_rule(Outcome.of_record(r) for r in records)
    if rule.status is NOT_RUN:
        return ProfileVerdict(profile, NOT_RUN, "no checks in this run")
    if rule.status is NOT_CONFORMANT:
        return ProfileVerdict(profile, NOT_CONFORMANT, why_not_conformant(rule, records))
    if rule.status is INCOMPLETE:
        return ProfileVerdict(
            profile, INCOMPLETE, f"{len(rule.not_assessed)} checks skipped, so not assessed"
        )
    return ProfileVerdict(
        profile, CONFORMANT, "every check on the runtime's account passed" + partial(selection)
    )


def why_not_conformant(rule: RuleResult, records: list[CheckRecord]) -> str:
    """The failing checks by kind: the runtime's findings, and apart from them the adapter's
    contract errors (the harness around the runtime broke, not the runtime's numbers)."""
    adapter = {r.check_id for r in records if r.attributed_to == ADAPTER}
    kinds = Counter(o.verdict for o in rule.failing if o.check_id not in adapter)
    parts = []
    if kinds:
        parts.append(", ".join(f"{n} {v}" for v, n in kinds.items()) + " on the runtime's account")
    broken = sum(1 for o in rule.failing if o.check_id in adapter)
    if broken:
        parts.append(
            f"{broken} adapter error{'s' if broken > 1 else ''} "
            "(the adapter broke the target contract; fix the adapter)"
        )
    return "; ".join(parts)


def skip_reason(record: CheckRecord) -> str:
    return record.problems[0] if record.problems else "no reason given"


def target_was_unavailable(record: CheckRecord) -> bool:
    return record.verdict == SKIPPED and record.skip is SkipKind.TARGET_UNAVAILABLE


def target_verdict(
    name: str,
    info: Mapping[str, Any] | TargetDescription | None,
    records: list[CheckRecord],
    selection: Mapping[str, Any] | Selection | None = None,
    profile: str = CORE_PROFILE,
) -> TargetVerdict:
    """Counts per verdict are the target's own checks: an exporter finding is counted in its
    own column only, never in a target's failed or error columns."""
    if isinstance(info, Mapping):
        info = TargetDescription.from_dict(name, info) if info else None
    counts = Counter(r.verdict for r in records if not exporter_finding(r))
    reasons = Counter(skip_reason(r)[:300] for r in records if r.verdict == SKIPPED)
    return TargetVerdict(
        target=name,
        available=info.available if info is not None else bool(records),
        description=info.describe() if info is not None else "not described in the results file",
        negative_control=name.startswith(NEGATIVE_CONTROL_PREFIX),
        profiles=(core_verdict(info, records, selection, profile),),
        counts={v: counts.get(v, 0) for v in VERDICTS},
        exporter_findings=sum(1 for r in records if exporter_finding(r)),
        skip_reasons=tuple(reasons.most_common()),
    )


def target_names(document: Mapping[str, Any], records: list[CheckRecord]) -> list[str]:
    """The results file's targets in its order, then any target that only the checks name."""
    names = list(document.get("targets", {}))
    names += [t for t in dict.fromkeys(r.target for r in records) if t not in names]
    return names


def target_verdicts(document: Mapping[str, Any], records: list[CheckRecord]) -> list[TargetVerdict]:
    targets = targets_of(document)
    selection = Selection.from_dict((document.get("run") or {}).get("selection"))
    profile = run_profile(records)
    return [
        target_verdict(
            name, targets.get(name), [r for r in records if r.target == name], selection, profile
        )
        for name in target_names(document, records)
    ]
