"""The ops profile of a certification: the operator cases of one target and the op table they
give (per op type: all / some / none / not-testable / untested; cases per category), recomputed
by the verifier from the bundle's own case records.

The op table is measured, not judged: a profile with ``ops`` is certified when every case of
its selection (of the case set the spec pins) has exactly one record on the target, each
record's category agrees with its figures, and the table the bundle claims (``ops.json`` and
the results' ops section) is the one those records give. The headline is the op types whose
every case passes, never "any case passes". Everything here reads untrusted data: the section is
schema-checked first, every record is checked against the pinned case set where this verifier's
onnx generates it, and nothing is executed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from conformance.certify import schemas
from conformance.certify.interface import (
    CERTIFIED,
    NOT_CERTIFIED,
    CertifyUsageError,
    Finding,
    ProfileOutcome,
    Reason,
)
from conformance.ops import scoring
from conformance.ops.records import OpRecord
from conformance.untrusted import printable

OPS_SECTION_SCHEMA = "ops-section"  # spec/ops/ops-section.schema.json (schemas.OPS_SECTION)
PASSED = "passed"
VALUES = "values"
SLACK = 1e-5  # figures are recorded to 6 significant digits
SHOWN = 6


@dataclass(frozen=True)
class OpsRequirement:
    case_set: str = "pinned"  # the case set spec/ops/case-sets.json pins for the spec version


@dataclass(frozen=True)
class OpsSelection:
    """Which cases of the case set a certification ran (empty: every case)."""

    ops: tuple[str, ...] = ()
    cases: tuple[str, ...] = ()  # name globs
    sets: tuple[str, ...] = ()

    @property
    def whole(self) -> bool:
        return not (self.ops or self.cases or self.sets)

    def as_dict(self) -> dict[str, list[str]]:
        return {"ops": list(self.ops), "cases": list(self.cases), "sets": list(self.sets)}

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> OpsSelection:
        """From a results ops section (untrusted: ValueError when malformed)."""
        data = section.get("selection", {})
        if not isinstance(data, dict):
            raise ValueError("ops.selection is not an object")
        parts = []
        for key in ("ops", "cases", "sets"):
            value = data.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"ops.selection.{key} is not a list of names")
            parts.append(tuple(value))
        return cls(*parts)

    def describe(self) -> str:
        if self.whole:
            return "every case"
        shown = [f"--op {o}" for o in self.ops] + [f"--case {c}" for c in self.cases]
        return " ".join(shown + [f"--set {s}" for s in self.sets])


def pinned_case_set(spec_version: str) -> dict[str, Any] | None:
    from conformance.ops.command import pinned_case_set as pinned

    return pinned(spec_version)


def table_member(section: Mapping[str, Any], target: str) -> dict[str, Any]:
    """ops.json of a bundle: the op table of ``target`` from the results' ops section, with the
    case set and the selection it was measured on. The verifier rebuilds it from the records."""
    table = scoring.recompute({**section, "targets": [target]})
    found = section.get("case_set")
    case_set: dict[str, Any] = found if isinstance(found, dict) else {}
    return {
        "target": target,
        "case_set": {k: case_set.get(k) for k in ("name", "onnx_version", "digest")},
        "selection": OpsSelection.from_section(section).as_dict(),
        "cases": sum(table["categories"][target].values()),
        "coverage": coverage(table["headline"][target]),
        **{key: table[key] for key in scoring.TABLE_KEYS},
    }


def coverage(headline: Mapping[str, int]) -> dict[str, int]:
    """The scoreboard's op coverage: op types whose every case passes, op types tested (a case
    ran), op types in the table (not-testable and untested included)."""
    tested = sum(headline.get(s, 0) for s in (scoring.ALL, scoring.SOME, scoring.NONE))
    total = tested + sum(headline.get(s, 0) for s in (scoring.NOT_TESTABLE, scoring.UNTESTED))
    return {"all_passing": headline.get(scoring.ALL, 0), "tested": tested, "total": total}


# ---- certify: run the cases -----------------------------------------------------------------
def run_ops(
    session: Any, target: str, selection: OpsSelection, spec_version: str, progress: Callable
) -> None:
    """Every selected case of the pinned case set on ``target`` (its isolated child), into the
    session's results document (its ops section, with the selection and the op table)."""
    from conformance.ops.cases import CaseSetError, load_case_set
    from conformance.ops.command import summarise, untested_ops
    from conformance.ops.execute import run_cases
    from conformance.ops.known import KNOWN_DIR

    pinned = pinned_case_set(spec_version)
    try:
        case_set = load_case_set()
        cases = case_set.select(selection.ops, selection.cases, selection.sets)
    except CaseSetError as error:
        raise CertifyUsageError(str(error)) from error
    if pinned is None or pinned.get("digest") != case_set.digest:
        raise CertifyUsageError(
            f"this onnx generates case set {case_set.name}; spec {spec_version} pins "
            f"{(pinned or {}).get('name', 'none')}: the ops profile certifies on the pinned set "
            f"only (install onnx {(pinned or {}).get('onnx_version', '?')})"
        )
    progress(f"ops: {len(cases)} cases of {case_set.name} ({selection.describe()}) on {target}")
    run = run_cases(session, case_set, cases, [target])
    version = session.target(target).version or ""
    untested = untested_ops(case_set) if selection.whole else []
    section, _, _ = summarise(run.records, [target], {target: version}, KNOWN_DIR, untested)
    run.section.update(section)
    run.section["case_set"]["pinned"] = True
    run.section["selection"] = selection.as_dict()
    run.flush()


# ---- verify: recompute ------------------------------------------------------------------------
@dataclass(frozen=True)
class OpsJudged:
    findings: tuple[Finding, ...]
    outcome: ProfileOutcome
    table: dict[str, Any] | None  # ops.json as the records give it (None: not recomputable)
    notes: tuple[str, ...] = ()


def _figures_pass(record: OpRecord) -> bool | None:
    """Whether the recorded figures pass the recorded rule (None: no figures to say)."""
    figures = record.figures
    if not isinstance(figures, dict):
        return None
    need = figures.get("min_rtol")
    rtol = float(record.rule.get("rtol", 0.0))
    need_f = math.inf if need is None else float(need)
    return need_f <= rtol * (1 + SLACK) + 1e-300


def record_findings(record: OpRecord, case: Any | None) -> list[Finding]:
    """One record against its figures and (where known) the case set's case."""
    found = []
    if (
        record.category == PASSED
        and record.judged_by == VALUES
        and _figures_pass(record) is not True
    ):
        found.append(
            Finding(
                Reason.VERDICT_MISMATCH,
                f"recorded passed, but its figures {record.figures} do not pass rtol "
                f"{record.rule.get('rtol')}",
                record.id,
            )
        )
    if case is not None:
        from conformance.ops.judge import rule_of

        expected = (case.set, case.op, case.domain, case.digest, rule_of(case.rtol, case.atol))
        actual = (record.set, record.op, record.domain, record.case_digest, dict(record.rule))
        if actual != expected:
            found.append(
                Finding(
                    Reason.STRUCTURE_MISMATCH,
                    f"set/op/domain/digest/rule {actual[:3]} are not the pinned case's "
                    f"{expected[:3]} (or its digest or rule differ)",
                    record.id,
                )
            )
    return found


def local_case_set(digest: str) -> Any | None:
    """This verifier's case set when it is the one the bundle was measured on (None: not)."""
    from conformance.ops.cases import CaseSetError, load_case_set

    try:
        case_set = load_case_set()
    except (CaseSetError, OSError):
        return None
    return case_set if case_set.digest == digest else None


def _examples(names: list[str]) -> str:
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def judge_ops(
    profile: str, document: Mapping[str, Any], target: str, spec_version: str
) -> OpsJudged:
    """The ops profile's outcome for ``target``, recomputed from the results' ops section."""
    found: list[Finding] = []
    notes: list[str] = []

    def refused(reason: Reason, message: str, subject: str = "results.json") -> OpsJudged:
        found.append(Finding(reason, message, subject))
        outcome = ProfileOutcome(profile, NOT_CERTIFIED, (message,), 0, 0)
        return OpsJudged(tuple(found), outcome, None, tuple(notes))

    section = document.get("ops")
    if not isinstance(section, dict):
        return refused(Reason.MISSING_CHECK, f"profile {profile!r} needs an ops section")
    problems = schemas.errors(schemas.OPS_SECTION, section)
    if problems:
        for problem in problems:
            found.append(Finding(Reason.SCHEMA_INVALID, f"ops: {problem}", "results.json"))
        return refused(Reason.SCHEMA_INVALID, "the ops section breaks its schema")
    try:
        selection = OpsSelection.from_section(section)
    except ValueError as error:
        return refused(Reason.SCHEMA_INVALID, str(error))
    pinned = pinned_case_set(spec_version) or {}
    digest = section["case_set"]["digest"]
    if digest != pinned.get("digest"):
        return refused(
            Reason.CASE_SET_NOT_PINNED,
            f"case set {str(section['case_set'].get('name'))[:80]!r} is not the one spec "
            f"{spec_version} pins ({pinned.get('name', 'none')})",
        )
    records = [OpRecord.from_dict(c) for c in section["cases"]]
    foreign = sorted({r.target for r in records if r.target != target})
    if foreign:
        found.append(Finding(Reason.TARGET_MISMATCH, f"ops cases of other targets {foreign}"))
    mine = [r for r in records if r.target == target]
    counts = Counter(r.case for r in mine)
    found += [
        Finding(Reason.DUPLICATE_CHECK, f"{n} records", f"ops-{name}")
        for name, n in counts.items()
        if n > 1
    ]
    case_set = local_case_set(digest)
    by_name: dict[str, Any] = case_set.by_name() if case_set is not None else {}
    missing: list[str] = []
    untested: list[str] = []
    if case_set is None:
        notes.append(
            "ops cases not checked against the case set: this verifier's onnx does not generate "
            "the pinned one (the table is still recomputed from the records)"
        )
        untested = list(section.get("untested", []))
    else:
        from conformance.ops.cases import CaseSetError
        from conformance.ops.command import untested_ops

        try:
            wanted = {
                c.name for c in case_set.select(selection.ops, selection.cases, selection.sets)
            }
        except CaseSetError as error:
            return refused(Reason.SCHEMA_INVALID, f"ops.selection: {error}")
        missing = sorted(wanted - set(counts))
        extra = sorted(set(counts) - wanted)
        if missing:
            found.append(
                Finding(
                    Reason.MISSING_CHECK,
                    f"{len(missing)} cases of the selection have no record: {_examples(missing)}",
                    "results.json",
                )
            )
        found += [
            Finding(Reason.UNKNOWN_CHECK, "not a case of the selection", f"ops-{name}")
            for name in extra
        ]
        if selection.whole:
            untested = [scoring.op_key(d, o) for d, o in untested_ops(case_set)]
    for record in mine:
        found += record_findings(record, by_name.get(record.case))
    table = table_member(
        {**section, "cases": [r.as_dict() for r in mine], "untested": untested}, target
    )
    expected = {k: table[k] for k in scoring.TABLE_KEYS}
    recorded = {k: section.get(k) for k in scoring.TABLE_KEYS}
    if recorded != expected:
        found.append(
            Finding(
                Reason.OP_TABLE_MISMATCH,
                "the ops section's table is not the one its case records give: "
                + table_difference(recorded, expected),
                "results.json",
            )
        )
    passed = sum(1 for r in mine if r.category == PASSED)
    reasons = (f"{len(missing)} selected cases not recorded",) if missing else ()
    outcome = ProfileOutcome(
        profile,
        NOT_CERTIFIED if reasons else CERTIFIED,
        reasons,
        required=len(mine) + len(missing),
        passed=passed,
    )
    return OpsJudged(tuple(found), outcome, table, tuple(notes))


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, inner in value.items():
        out.update(_flat(inner, f"{prefix}/{key}" if prefix else str(key)))
    return out


def table_difference(claimed: Any, recomputed: Mapping[str, Any]) -> str:
    """The first few places where a claimed table differs from the recomputed one."""
    if not isinstance(claimed, dict):
        return "the claimed table is not an object"
    mine, theirs = _flat(dict(recomputed)), _flat(claimed)
    keys = sorted({*mine, *theirs}, key=str)
    diffs = [
        f"{printable(k, 100)}: claimed {printable(repr(theirs.get(k)), 80)}, the records give "
        f"{printable(repr(mine.get(k)), 80)}"
        for k in keys
        if mine.get(k) != theirs.get(k)
    ]
    more = f" and {len(diffs) - 3} more" if len(diffs) > 3 else ""
    return "; ".join(diffs[:3]) + more
