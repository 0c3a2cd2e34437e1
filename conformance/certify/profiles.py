"""Certification profiles (spec/profiles.json): what each requires, and its verdict from check outcomes.

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
from conformance.checks import exporter_at_fault
from conformance.pack.load import Artifact, Pack, PackModel, TestDataSet
from conformance.results.records import check_id
from conformance.spec import load_json

PROFILES_JSON = "profiles.json"
EVERY = "*"
EXAMPLES = 6  # failing checks named in a "not certified" reason


@dataclass(frozen=True)
class CheckRequirement:
    models: tuple[str, ...] | None  # None: every model of the pack
    exporters: tuple[str, ...] | None  # None: every exported artifact
    precision: str


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


@dataclass(frozen=True)
class RequiredCheck:
    check_id: str
    model: PackModel
    artifact: Artifact
    data_set: TestDataSet
    normative: bool  # exporter-clean: counted for or against the runtime


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
        return Profile(
            name=name,
            title=str(data["title"]),
            summary=str(data["summary"]),
            checks=CheckRequirement(
                _names(checks.get("models")),
                _names(checks.get("exporters")),
                str(checks.get("precision", "fp32")),
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
    return "outputs" in artifact.record and artifact.exists


def required_checks(pack: Pack, profile: Profile, target: str) -> list[RequiredCheck]:
    """Every check the profile requires of ``target``, in pack order (none for a benchmarks-only profile)."""
    need = profile.checks
    if need is None:
        return []
    return [
        RequiredCheck(
            check_id(model.name, artifact.exporter, data_set.label, target),
            model,
            artifact,
            data_set,
            normative=not exporter_at_fault(artifact, data_set.index),
        )
        for model in models_of(pack, need.models)
        for artifact in model.artifacts
        if runnable(artifact) and (need.exporters is None or artifact.exporter in need.exporters)
        for data_set in model.data_sets
    ]


def _examples(ids: list[str]) -> str:
    shown = ", ".join(ids[:EXAMPLES])
    return shown + (f" and {len(ids) - EXAMPLES} more" if len(ids) > EXAMPLES else "")


def checks_outcome(
    profile: Profile, required: list[RequiredCheck], outcomes: Mapping[str, CheckOutcome]
) -> ProfileOutcome:
    """Certified when every normative required check is present and passes (recomputed)."""
    normative = [r for r in required if r.normative]
    missing = [r.check_id for r in required if r.check_id not in outcomes]
    failing = [r for r in normative if r.check_id in outcomes and not outcomes[r.check_id].passed]
    passed = sum(1 for r in normative if r.check_id in outcomes and outcomes[r.check_id].passed)
    reasons = []
    if missing:
        reasons.append(f"{len(missing)} required checks missing: {_examples(missing)}")
    if failing:
        by_artifact = Counter(f"{r.model.name}/{r.artifact.exporter}" for r in failing)
        groups = [f"{name} ({n})" for name, n in by_artifact.most_common()]
        kinds = Counter(outcomes[r.check_id].verdict for r in failing)
        reasons.append(
            f"{len(failing)} of {len(normative)} normative checks did not pass on the runtime's account "
            f"({', '.join(f'{n} {v}' for v, n in kinds.most_common())}): {_examples(groups)}"
        )
    status = NOT_CERTIFIED if reasons else CERTIFIED
    return ProfileOutcome(
        profile.name, status, tuple(reasons), required=len(normative), passed=passed
    )
