"""Profile outcomes for one target, recomputed from a results document: certify computes its claims
with this, and verify recomputes them with this, so the two cannot drift apart."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conformance.certify.context import SpecContext
from conformance.certify.interface import (
    CERTIFIED,
    NOT_CERTIFIED,
    AccuracyOutcome,
    CheckOutcome,
    Finding,
    ProfileOutcome,
    Reason,
)
from conformance.certify.ops import OpsJudged, judge_ops
from conformance.certify.perf import judge_benchmarks
from conformance.certify.profiles import Profile, checks_outcome, models_of, required_checks
from conformance.certify.recompute import accuracy_outcomes, recompute_checks


@dataclass(frozen=True)
class Judged:
    findings: tuple[Finding, ...]
    outcomes: tuple[ProfileOutcome, ...]
    check_map: Mapping[str, CheckOutcome]
    op_table: dict[str, Any] | None = None  # profile ops: the table the case records give
    notes: tuple[str, ...] = ()
    accuracy: tuple[AccuracyOutcome, ...] = ()  # every accuracy record, recomputed

    @property
    def checks(self) -> tuple[CheckOutcome, ...]:
        return tuple(self.check_map.values())


def combine(name: str, parts: list[ProfileOutcome]) -> ProfileOutcome:
    reasons = tuple(r for p in parts for r in p.reasons)
    return ProfileOutcome(
        name,
        NOT_CERTIFIED if reasons else CERTIFIED,
        reasons,
        sum(p.required for p in parts),
        sum(p.passed for p in parts),
    )


def tier_outcome(profile: Profile, accuracy: tuple[AccuracyOutcome, ...]) -> list[ProfileOutcome]:
    """A profile that asks for the 99.9 tier: every accuracy record at it (99 is the verdict of
    each accuracy check already, counted with the other checks)."""
    need = profile.checks.accuracy_tier if profile.checks else None
    if need != "99.9":
        return []
    short = [a.record_id for a in accuracy if a.tier != "99.9"]
    if not short:
        return []
    return [
        ProfileOutcome(
            profile.name,
            NOT_CERTIFIED,
            (f"{len(short)} accuracy checks below tier 99.9: {', '.join(short[:6])}",),
        )
    ]


def judge_profile(
    profile: Profile,
    document: Mapping[str, Any],
    context: SpecContext,
    target: str,
    outcomes: Mapping[str, CheckOutcome],
    ops: OpsJudged | None = None,
    accuracy: tuple[AccuracyOutcome, ...] = (),
) -> tuple[list[Finding], ProfileOutcome]:
    found: list[Finding] = []
    parts = []
    if profile.ops is not None and ops is not None:
        parts.append(ops.outcome)
    if profile.checks is not None:
        required = required_checks(context.pack, profile, target)
        found += [
            Finding(Reason.MISSING_CHECK, f"required by profile {profile.name!r}", r.check_id)
            for r in required
            if r.check_id not in outcomes
        ]
        parts.append(checks_outcome(profile, required, outcomes))
        parts += tier_outcome(profile, accuracy)
    if profile.benchmarks is not None:
        models = [m.name for m in models_of(context.pack, profile.benchmarks.models)]
        bench_found, outcome = judge_benchmarks(
            profile, list(document.get("benchmarks", [])), target, models
        )
        found += bench_found
        parts.append(outcome)
    return found, combine(profile.name, parts)


def judge_profiles(
    document: Mapping[str, Any], context: SpecContext, target: str, names: tuple[str, ...]
) -> Judged:
    found: list[Finding] = [
        Finding(Reason.UNKNOWN_PROFILE, "not a profile of this spec", n)
        for n in names
        if n not in context.profiles
    ]
    profiles = [context.profiles[n] for n in names if n in context.profiles]
    precision = next((p.checks.precision for p in profiles if p.checks), "fp32")
    recomputed, outcomes = recompute_checks(document, context.pack, target, precision)
    accuracy = accuracy_outcomes(document, context.pack, target, precision)
    found += recomputed
    foreign = sorted(
        {str(b.get("target")) for b in document.get("benchmarks", []) if b.get("target") != target}
    )
    if foreign:
        found.append(
            Finding(
                Reason.TARGET_MISMATCH, f"benchmarks of other targets {foreign}", "results.json"
            )
        )
    ops = None
    if any(p.ops for p in profiles):
        name = next(p.name for p in profiles if p.ops)
        ops = judge_ops(name, document, target, context.spec_version)
        found += ops.findings
    results = []
    for profile in profiles:
        profile_found, outcome = judge_profile(
            profile, document, context, target, outcomes, ops, accuracy
        )
        found += profile_found
        results.append(outcome)
    return Judged(
        tuple(found),
        tuple(results),
        outcomes,
        ops.table if ops else None,
        ops.notes if ops else (),
        accuracy,
    )
