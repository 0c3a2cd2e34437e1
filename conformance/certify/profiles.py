"""Certification profiles (spec/profiles.json): what each requires, and its outcome from checks.

A profile names checks (models x artifacts x test data sets at one precision) and/or benchmark
records (models x scenarios in one benchmark mode). Certify runs exactly that; verify derives
the same list from the pack the spec pins, so a bundle cannot choose what it is judged on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conformance.certify.interface import (
    CERTIFIED,
    NOT_CERTIFIED,
    CertifyUsageError,
    CheckOutcome,
    ProfileOutcome,
)
from conformance.certify.ops import OpsRequirement
from conformance.pack.load import Artifact, Pack, PackModel
from conformance.results.profile import Outcome, ProfileStatus, apply_rule
from conformance.run.plan import DEFAULT_PRECISION, CheckPlan, runnable_checks
from conformance.spec import load_json

CONFORMANT, NOT_RUN = ProfileStatus.CONFORMANT, ProfileStatus.NOT_RUN
PROFILES_JSON = "profiles.json"
EVERY = "*"
EXAMPLES = 6  # failing checks named in a "not certified" reason
TIERS = ("99.9", "99")  # accuracy tiers, best first (MLPerf's names); below both: "below 99"


@dataclass(frozen=True)
class CheckRequirement:
    models: tuple[str, ...] | None  # None: every model of the pack
    exporters: tuple[str, ...] | None  # None: every exported artifact
    precision: str
    accuracy_tier: str | None = None  # the lowest accuracy tier certified ("99", "99.9"); None:
    # accuracy records are reported, not required


@dataclass(frozen=True)
class BenchmarkRequirement:
    models: tuple[str, ...] | None
    mode: str
    scenarios: tuple[str, ...]
    valid_percentiles: tuple[str, ...]


@dataclass(frozen=True)
class Profile:
    name: str
    title: str
    summary: str
    checks: CheckRequirement | None = None
    benchmarks: BenchmarkRequirement | None = None
    ops: OpsRequirement | None = None


# A check a profile requires is a check plan: its id, model, artifact, data set, precision, and
# whether it is normative (exporter-clean: counted for or against the runtime).
RequiredCheck = CheckPlan


def _names(value: Any) -> tuple[str, ...] | None:
    if value in (None, EVERY):
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CertifyUsageError(
            f"{PROFILES_JSON}: expected {EVERY!r} or a list of names, got {value!r}"
        )
    return tuple(value)


def parse_profile(name: str, data: Mapping[str, Any]) -> Profile:
    try:
        checks = data.get("checks")
        benchmarks = data.get("benchmarks")
        ops = data.get("ops")
        tier = checks.get("accuracy_tier") if checks else None
        if tier is not None and tier not in TIERS:
            raise CertifyUsageError(
                f"{PROFILES_JSON}: profile {name!r}: accuracy_tier {tier!r} is not one of "
                f"{', '.join(TIERS)}"
            )
        return Profile(
            name=name,
            title=str(data["title"]),
            summary=str(data["summary"]),
            checks=CheckRequirement(
                _names(checks.get("models")),
                _names(checks.get("exporters")),
                str(checks.get("precision", DEFAULT_PRECISION)),
                tier,
            )
            if checks
            else None,
            benchmarks=BenchmarkRequirement(
                _names(benchmarks.get("models")),
                str(benchmarks["mode"]),
                tuple(benchmarks["scenarios"]),
                tuple(benchmarks["valid_percentiles"]),
            )
            if benchmarks
            else None,
            ops=OpsRequirement(str(ops.get("case_set", "pinned"))) if ops else None,
        )
    except (KeyError, TypeError, AttributeError) as error:
        raise CertifyUsageError(
            f"{PROFILES_JSON}: profile {name!r} is malformed ({error!r})"
        ) from error


def load_profiles(document: Mapping[str, Any] | None = None) -> dict[str, Profile]:
    """Every profile of spec/profiles.json (or of ``document``, a profiles.json-shaped mapping)."""
    document = document if document is not None else load_json(PROFILES_JSON)
    return {name: parse_profile(name, data) for name, data in document["profiles"].items()}


def select(profiles: Mapping[str, Profile], names: tuple[str, ...]) -> tuple[Profile, ...]:
    unknown = [n for n in names if n not in profiles]
    if unknown:
        raise CertifyUsageError(
            f"unknown profile(s) {', '.join(unknown)}; the spec has {', '.join(profiles)}"
        )
    if not names:
        raise CertifyUsageError("name at least one profile (--profile core)")
    return tuple(profiles[n] for n in dict.fromkeys(names))


def models_of(pack: Pack, wanted: tuple[str, ...] | None) -> list[PackModel]:
    return [m for m in pack.models if wanted is None or m.name in wanted]


def runnable(artifact: Artifact) -> bool:
    return artifact.runnable


def required_checks(pack: Pack, profile: Profile, target: str) -> list[RequiredCheck]:
    """Every check the profile requires of ``target``, in pack order (none for a benchmarks-only
    profile): the runnable checks of its selection, at its precision."""
    need = profile.checks
    if need is None:
        return []
    return runnable_checks(pack, target, need.models, need.exporters, need.precision)


def _examples(ids: list[str]) -> str:
    shown = ", ".join(ids[:EXAMPLES])
    return shown + (f" and {len(ids) - EXAMPLES} more" if len(ids) > EXAMPLES else "")


def checks_outcome(
    profile: Profile, required: list[RequiredCheck], outcomes: Mapping[str, CheckOutcome]
) -> ProfileOutcome:
    """Certified when the profile rule (results/profile.py) finds the target conformant on the
    recomputed outcomes: every normative required check present and passed."""
    rule = apply_rule(
        (
            Outcome(o.check_id, o.passed, o.normative, o.verdict)
            for o in outcomes.values()
            if o.check_id in {r.check_id for r in required}
        ),
        [r.check_id for r in required],
    )
    normative = [r for r in required if r.normative]
    against = {o.check_id for o in (*rule.failing, *rule.not_assessed)}
    failing = [r for r in normative if r.check_id in against]
    reasons = []
    if rule.missing:
        reasons.append(
            f"{len(rule.missing)} required checks missing: {_examples(list(rule.missing))}"
        )
    if failing:
        by_artifact = Counter(f"{r.model.name}/{r.artifact.exporter}" for r in failing)
        groups = [f"{name} ({n})" for name, n in by_artifact.most_common()]
        kinds = Counter(outcomes[r.check_id].verdict for r in failing)
        reasons.append(
            f"{len(failing)} of {len(normative)} normative checks did not pass on the runtime's "
            f"account ({', '.join(f'{n} {v}' for v, n in kinds.most_common())}): "
            f"{_examples(groups)}"
        )
    # a profile that requires no check of this pack has nothing against it (NOT_RUN)
    status = CERTIFIED if rule.status in (CONFORMANT, NOT_RUN) else NOT_CERTIFIED
    return ProfileOutcome(
        profile.name, status, tuple(reasons), required=len(normative), passed=rule.passed
    )
