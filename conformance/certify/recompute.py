"""Recompute every check's verdict from its recorded error figures, the spec's tolerances and the
pack's goldens. A stored verdict is never trusted.

What offline recomputation can prove: the tolerance is the spec's for that model; the figures of
each output agree with each other (margin, minimum passing tolerance, worst elements, histogram,
max abs and relative L2 bounds); every worst element's expected value is the golden at its index
(so the record belongs to this model, artifact and data set); the verdict and its attribution
follow from all that. What it cannot prove is that the runtime produced the recorded outputs:
that is what the signature (who vouches) and ``verify --rerun`` (re-execution) are for.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from conformance.certify.accuracy import recompute_accuracy
from conformance.certify.figures import stats_findings
from conformance.certify.interface import AccuracyOutcome, CheckOutcome, Finding, Reason
from conformance.certify.profiles import RequiredCheck
from conformance.compare.tolerance import tolerance_for
from conformance.pack.load import Pack
from conformance.results.accuracy import ACCURACY
from conformance.results.records import ADAPTER, EXPORTER, NOT_PASSED, PASSED, TARGET
from conformance.run.check import in_force_precision, narrower_than_run
from conformance.run.plan import DEFAULT_PRECISION, runnable_checks

ANSWERED = ("passed", "failed")  # verdicts that carry figures


def index_pack(
    pack: Pack, target: str, precision: str = DEFAULT_PRECISION
) -> dict[str, RequiredCheck]:
    """check id -> what the pack says about it, for every runnable check of ``target`` at
    ``precision`` (the plan of the whole pack: conformance.run.plan)."""
    return {plan.check_id: plan for plan in runnable_checks(pack, target, precision=precision)}


def _float(value: Any) -> float:
    """A recorded margin: null means infinite (NaN/Inf outputs, or values not comparable)."""
    return math.inf if value is None else float(value)


def values_findings(
    record: dict[str, Any], where: RequiredCheck, precision: str
) -> tuple[list[Finding], float]:
    """The figures of every output against each other and the goldens; returns the recomputed
    margin."""
    cid = record["id"]
    tolerance = tolerance_for(precision, where.model.name, where.model.record["tolerance_class"])
    found = []
    if record.get("tolerance") != {"atol": tolerance.atol, "rtol": tolerance.rtol}:
        found.append(
            Finding(
                Reason.TOLERANCE_MISMATCH,
                f"recorded tolerance {record.get('tolerance')} is not the "
                f"spec's {precision} tolerance atol {tolerance.atol:g}, rtol {tolerance.rtol:g}",
                cid,
            )
        )
    goldens = {e.name: e.golden for e in where.model.expected(where.artifact, where.data_set.index)}
    outputs = record.get("outputs") or {}
    unknown = [name for name in outputs if name not in goldens]
    if unknown:
        found.append(
            Finding(
                Reason.STRUCTURE_MISMATCH,
                f"outputs {unknown} are not the artifact's outputs {list(goldens)}",
                cid,
            )
        )
    margins = []
    for name, stats in outputs.items():
        if stats is None or name not in goldens:
            margins.append(math.inf)
            continue
        found += [
            Finding(reason, f"output {name!r}: {message}", cid)
            for reason, message in stats_findings(stats, np.asarray(goldens[name]), tolerance)
        ]
        margins.append(_float(stats.get("margin")))
    margin = max(margins, default=math.inf)
    if len(outputs) < len(goldens):
        margin = math.inf  # an output is missing: values not comparable
    recorded = _float(record.get("margin"))
    if outputs and not _same(recorded, max(margins, default=math.inf)):
        found.append(
            Finding(
                Reason.FIGURES_INCONSISTENT,
                f"check margin {record.get('margin')} is not the largest "
                f"output margin {max(margins, default=math.inf):.6g}",
                cid,
            )
        )
    return found, margin


def _same(a: float, b: float) -> bool:
    return (math.isinf(a) and math.isinf(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-300)


def side_checks_pass(
    record: dict[str, Any], where: RequiredCheck, deterministic: bool
) -> list[str]:
    """Why determinism or batch invariance does not pass, as recorded (empty: both pass)."""
    why = []
    repeat = record.get("determinism") or {}
    if not (repeat.get("checked") and repeat.get("passed") is True):
        why.append("determinism not checked or not passed")
    elif deterministic and repeat.get("mode") != "identical":
        why.append("the target declares itself deterministic but was held only to the tolerance")
    elif repeat.get("mode") == "within-tolerance" and _float(repeat.get("margin")) > 1:
        why.append(f"determinism margin {repeat.get('margin')} > 1")
    invariance = record.get("batch_invariance") or {}
    if where.data_set.batch > 1:
        if not (invariance.get("checked") and invariance.get("passed") is True):
            why.append("batch invariance not checked or not passed")
        elif _float(invariance.get("margin")) > 1:
            why.append(f"batch invariance margin {invariance.get('margin')} > 1")
    return why


def attribution_findings(record: dict[str, Any], where: RequiredCheck) -> list[Finding]:
    if record["verdict"] not in NOT_PASSED:
        return []
    attributed = TARGET if where.normative else EXPORTER
    # an adapter's contract error is on the vendor's side, as a runtime finding is
    allowed = (TARGET, ADAPTER) if where.normative else (EXPORTER,)
    if record.get("attributed_to") in allowed:
        return []
    return [
        Finding(
            Reason.ATTRIBUTION_MISMATCH,
            f"attributed to {record.get('attributed_to')!r}, but the "
            f"pack makes it the {attributed}'s",
            record["id"],
        )
    ]


def narrower_findings(
    record: dict[str, Any], where: RequiredCheck, in_force: str | None
) -> tuple[list[Finding], bool]:
    """A target whose description says it computes in a narrower precision than the check is
    judged at cannot pass it (no silent widening: conformance.run.check); True when so."""
    narrower = narrower_than_run(where, in_force)
    if narrower is None:
        return [], False
    if record["verdict"] == PASSED:
        return [
            Finding(Reason.VERDICT_MISMATCH, f"recorded passed, but {narrower}", record["id"])
        ], True
    return [], True


def recompute_check(
    record: dict[str, Any],
    where: RequiredCheck,
    deterministic: bool,
    precision: str = DEFAULT_PRECISION,
    in_force: str | None = None,
) -> tuple[list[Finding], CheckOutcome]:
    """``in_force``: the precision the target's recorded description says it computes in."""
    cid = record["id"]
    verdict = record["verdict"]
    narrow_found, narrower = narrower_findings(record, where, in_force)
    if where.kind == ACCURACY:
        accuracy_found, outcome, _ = recompute_accuracy(record, where, precision)
        if narrower:
            outcome = dataclasses.replace(outcome, passed=False)
        return accuracy_found + narrow_found + attribution_findings(record, where), outcome
    found: list[Finding] = list(narrow_found)
    margin = math.inf
    if verdict in ANSWERED or record.get("outputs"):
        values_found, margin = values_findings(record, where, precision)
        found += values_found
    why_not = (
        []
        if margin <= 1
        else [f"margin {margin:.3g} > 1" if math.isfinite(margin) else "values not comparable"]
    )
    if verdict not in ANSWERED:
        why_not.append(f"verdict {verdict}")
    why_not += [f"problem recorded: {p[:120]}" for p in record.get("problems", [])[:1]]
    why_not += side_checks_pass(record, where, deterministic) if verdict in ANSWERED else []
    passed = not why_not and not narrower
    if verdict == PASSED and why_not:
        found.append(
            Finding(Reason.VERDICT_MISMATCH, "recorded passed, but " + "; ".join(why_not), cid)
        )
    if verdict == "failed" and passed:
        found.append(
            Finding(
                Reason.VERDICT_MISMATCH, "recorded failed, but every recorded figure passes", cid
            )
        )
    found += attribution_findings(record, where)
    outcome = CheckOutcome(
        cid,
        where.model.name,
        where.artifact.exporter,
        where.data_set.label,
        passed,
        where.normative,
        margin if math.isfinite(margin) else None,
        verdict,
    )
    return found, outcome


def identity_findings(record: dict[str, Any], where: RequiredCheck) -> list[Finding]:
    """The record's fields must name the check its id names."""
    expected = (
        where.model.name,
        where.artifact.exporter,
        where.data_set.index,
        where.label,  # the data set's label, or "accuracy" for a task's accuracy check
    )
    actual = (
        record.get("model"),
        record.get("exporter"),
        record.get("data_set"),
        record.get("data_set_label"),
    )
    if actual != expected:
        return [
            Finding(
                Reason.STRUCTURE_MISMATCH,
                f"fields {actual} do not match the check id",
                record["id"],
            )
        ]
    return []


def accuracy_outcomes(
    document: Mapping[str, Any], pack: Pack, target: str, precision: str = DEFAULT_PRECISION
) -> tuple[AccuracyOutcome, ...]:
    """Every accuracy record of ``target``, recomputed (in results order; duplicates and
    records that are not the pack's checks are findings of recompute_checks)."""
    index = index_pack(pack, target, precision)
    out = []
    for record in document["checks"]:
        where = index.get(str(record.get("id"))) if isinstance(record, dict) else None
        if where is None or where.kind != ACCURACY or record.get("target") != target:
            continue
        if not isinstance(record.get("verdict"), str):
            continue
        out.append(recompute_accuracy(record, where, precision)[2])
    return tuple(out)


def recompute_checks(
    document: Mapping[str, Any], pack: Pack, target: str, precision: str = DEFAULT_PRECISION
) -> tuple[list[Finding], dict[str, CheckOutcome]]:
    """Every check of the results for ``target``: findings, and check id -> recomputed outcome."""
    index = index_pack(pack, target, precision)
    described = (document.get("targets") or {}).get(target, {})
    described = described if isinstance(described, dict) else {}
    deterministic = bool(described.get("deterministic", True))
    options = described.get("options")
    in_force = in_force_precision(options if isinstance(options, dict) else None)
    found: list[Finding] = []
    outcomes: dict[str, CheckOutcome] = {}
    # a record without these is already a schema finding; the rest are still recomputed
    records = [
        c
        for c in document["checks"]
        if all(isinstance(c.get(k), str) for k in ("id", "target", "verdict"))
    ]
    counts = Counter(c["id"] for c in records)
    found += [
        Finding(Reason.DUPLICATE_CHECK, f"{n} records", str(cid))
        for cid, n in counts.items()
        if n > 1
    ]
    foreign = sorted({c["target"] for c in records if c["target"] != target})
    if foreign:
        found.append(
            Finding(
                Reason.TARGET_MISMATCH,
                f"checks of other targets {foreign} in a bundle for {target!r}",
            )
        )
    for record in records:
        if record["target"] != target or counts[record["id"]] > 1:
            continue
        where = index.get(record["id"])
        if where is None:
            found.append(
                Finding(Reason.UNKNOWN_CHECK, "not a check of the pinned pack", record["id"])
            )
            continue
        found += identity_findings(record, where)
        check_found, outcome = recompute_check(record, where, deterministic, precision, in_force)
        found += check_found
        outcomes[record["id"]] = outcome
    return found, outcomes
