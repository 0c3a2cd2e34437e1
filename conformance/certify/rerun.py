"""`verify --rerun N`: re-execute a random sample of the bundle's checks here and compare.

After MLPerf's TEST01 audit (a random sample of a submission's outputs is logged again and
compared): offline verification proves the figures are consistent, re-execution proves a runtime
gives them. It runs the verifier's own pack artifacts on the same target name, where that target
is available here; nothing from the bundle is executed. A verdict that differs, or a passing
margin that moved by more than RERUN_MARGIN_SLACK (in units of the tolerance), is a finding.
"""

from __future__ import annotations

import math
import random
import secrets
from collections.abc import Mapping
from typing import Any

from conformance.certify.context import SpecContext
from conformance.certify.interface import CheckOutcome, Finding, Reason
from conformance.certify.recompute import index_pack
from conformance.checks import CheckPlan, run_check
from conformance.engine import check_timeout_s
from conformance.isolation import IsolatedTarget
from conformance.results.records import PASSED
from conformance.targets import TargetError, get_target

RERUN_MARGIN_SLACK = (
    0.5  # another machine's rounding moves a margin by far less; a fabricated figure by more
)


def compare(outcome: CheckOutcome, verdict: str, margin: float | None) -> str | None:
    """Why the fresh result disagrees with the recorded one, or None."""
    fresh_pass = verdict == PASSED
    if fresh_pass != outcome.passed:
        return (
            f"recorded {'passed' if outcome.passed else 'not passed'}, re-executed here: {verdict}"
            + (f" (margin {margin:.3g})" if margin is not None and math.isfinite(margin) else "")
        )
    if (
        fresh_pass
        and outcome.margin is not None
        and margin is not None
        and abs(margin - outcome.margin) > RERUN_MARGIN_SLACK
    ):
        return f"recorded margin {outcome.margin:.3g}, re-executed here {margin:.3g}"
    return None


def available_here(target: str, recorded: Mapping[str, Any]) -> tuple[bool, list[str]]:
    try:
        adapter = get_target(target)
    except TargetError as error:
        return False, [f"rerun skipped: {error}"]
    reason = adapter.unavailable_reason()
    if reason:
        return False, [f"rerun skipped: {target} is not available here ({reason})"]
    version = adapter.describe().version
    if recorded.get("version") not in (None, version):
        return True, [
            f"rerun: {target} here is version {version}, the bundle's is {recorded.get('version')}"
        ]
    return True, []


def rerun_sample(
    document: Mapping[str, Any],
    context: SpecContext,
    target: str,
    outcomes: Mapping[str, CheckOutcome],
    count: int,
    seed: int | None = None,
) -> tuple[list[Finding], list[str]]:
    recorded = (document.get("targets") or {}).get(target, {})
    usable, notes = available_here(target, recorded)
    if not usable or not outcomes:
        return [], notes
    seed = secrets.randbelow(2**32) if seed is None else seed
    sample = random.Random(seed).sample(sorted(outcomes), min(count, len(outcomes)))
    index = index_pack(context.pack, target)
    found = []
    runner = IsolatedTarget(target, check_timeout_s())
    try:
        for cid in sample:
            where = index[cid]
            record = run_check(
                runner,
                CheckPlan(where.model, where.artifact, where.data_set, target),
                deterministic=bool(recorded.get("deterministic", True)),
            )
            why = compare(outcomes[cid], record.verdict, record.margin)
            if why:
                found.append(Finding(Reason.RERUN_MISMATCH, why, cid))
    finally:
        runner.close()
    notes.append(
        f"rerun: {len(sample)} checks re-executed on {target} here (seed {seed}); "
        f"{len(sample) - len(found)} agree with the bundle"
    )
    return found, notes
