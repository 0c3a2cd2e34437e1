"""Per target: is it conformant for each profile, and what the counts behind that are.

The ``core`` profile is defined in spec/profiles.json (SPEC.md section 9): every model, exported
artifact and test data set at the fp32 tolerances, judged on the normative (exporter-clean)
checks. The report applies that rule to the checks of this run, reading them from the results
file alone: a target is conformant when no check attributed to it did not pass and nothing was
skipped except for a missing artifact; exporter findings are shown, never counted against a
runtime. A run of a selection of the pack says so, since certification needs every check
(``conformance certify``, which also recomputes each verdict rather than reading it).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from conformance.results.records import NOT_PASSED, SKIPPED, VERDICTS, CheckRecord

CORE_PROFILE = "core"
# Prefixes of the skip reasons the engine writes.
ARTIFACT_ABSENT = "no runnable artifact"
TARGET_UNAVAILABLE = "target unavailable"
NEGATIVE_CONTROL_PREFIX = "defect:"

CONFORMANT, NOT_CONFORMANT, INCOMPLETE, NOT_RUN = (
    "conformant",
    "not conformant",
    "incomplete",
    "not run",
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
        return sum(self.counts.values())


def describe(info: dict[str, Any]) -> str:
    if not info:
        return "not described in the results file"
    if not info.get("available", False):
        return f"unavailable: {info.get('reason', 'no reason given')}"
    return f"{info.get('runtime', '?')} {info.get('version', '?')} on {info.get('device', '?')}"


def partial(selection: dict[str, Any] | None) -> str:
    """Why the run is not the whole core profile ('' when it is)."""
    chosen = [f"{kind} {', '.join(names)}" for kind, names in (selection or {}).items() if names]
    return f" (on a selection of the pack: {'; '.join(chosen)})" if chosen else ""


def core_verdict(
    info: dict[str, Any], records: list[CheckRecord], selection: dict[str, Any] | None = None
) -> ProfileVerdict:
    if info and not info.get("available", True):
        return ProfileVerdict(CORE_PROFILE, NOT_RUN, describe(info))
    if not records:
        return ProfileVerdict(CORE_PROFILE, NOT_RUN, "no checks in this run")
    against = [r for r in records if r.verdict in NOT_PASSED and r.attributed_to != "exporter"]
    if against:
        kinds = Counter(r.verdict for r in against)
        return ProfileVerdict(
            CORE_PROFILE,
            NOT_CONFORMANT,
            ", ".join(f"{n} {v}" for v, n in kinds.items()) + " on the runtime's account",
        )
    not_run = [
        r
        for r in records
        if r.verdict == SKIPPED and not skip_reason(r).startswith(ARTIFACT_ABSENT)
    ]
    if not_run:
        return ProfileVerdict(
            CORE_PROFILE, INCOMPLETE, f"{len(not_run)} checks skipped, so not assessed"
        )
    return ProfileVerdict(
        CORE_PROFILE, CONFORMANT, "every check on the runtime's account passed" + partial(selection)
    )


def skip_reason(record: CheckRecord) -> str:
    return record.problems[0] if record.problems else "no reason given"


def target_was_unavailable(record: CheckRecord) -> bool:
    return record.verdict == SKIPPED and skip_reason(record).startswith(TARGET_UNAVAILABLE)


def target_verdict(
    name: str,
    info: dict[str, Any],
    records: list[CheckRecord],
    selection: dict[str, Any] | None = None,
) -> TargetVerdict:
    counts = Counter(r.verdict for r in records)
    reasons = Counter(skip_reason(r)[:300] for r in records if r.verdict == SKIPPED)
    return TargetVerdict(
        target=name,
        available=bool(info.get("available", bool(records))),
        description=describe(info),
        negative_control=name.startswith(NEGATIVE_CONTROL_PREFIX),
        profiles=(core_verdict(info, records, selection),),
        counts={v: counts.get(v, 0) for v in VERDICTS},
        exporter_findings=sum(
            1 for r in records if r.verdict in NOT_PASSED and r.attributed_to == "exporter"
        ),
        skip_reasons=tuple(reasons.most_common()),
    )


def target_names(document: dict[str, Any], records: list[CheckRecord]) -> list[str]:
    """The results file's targets in its order, then any target that only the checks name."""
    names = list(document.get("targets", {}))
    names += [t for t in dict.fromkeys(r.target for r in records) if t not in names]
    return names


def target_verdicts(document: dict[str, Any], records: list[CheckRecord]) -> list[TargetVerdict]:
    targets = document.get("targets", {})
    selection = document.get("run", {}).get("selection")
    return [
        target_verdict(
            name, targets.get(name, {}), [r for r in records if r.target == name], selection
        )
        for name in target_names(document, records)
    ]
