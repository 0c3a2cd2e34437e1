"""`verify --rerun N`: re-execute a random sample of the bundle's checks here and compare.

After MLPerf's TEST01 audit (a random sample of a submission's outputs is logged again and
compared): offline verification proves the figures are consistent, re-execution proves a runtime
gives them. It runs the verifier's own pack artifacts on the same target name, where that target
is available here; nothing from the bundle is executed. A verdict that differs, or a passing
margin that moved by more than RERUN_MARGIN_SLACK (in units of the tolerance), is a finding.

The target name comes from the bundle, so it is untrusted: it is parsed without importing
anything, and only a built-in target (or a negative control) is constructed on the bundle's word.
A plug-in target (an installed entry point or ``backend:<module>:<Class>``) is code this machine
would import because a bundle says so: it runs only when the bundle's signature was checked
against a trusted key (``--public-key``) **and** the verifier named that plug-in
(``--allow-plugin NAME``). Otherwise the rerun is refused (RERUN_REFUSED) before any import; a
malformed or unknown target or option is BAD_TARGET, never a traceback.
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
from conformance.isolation import IsolatedTarget
from conformance.results.records import PASSED
from conformance.run.check import run_check
from conformance.run.plan import DEFAULT_PRECISION
from conformance.run.session import check_timeout_s
from conformance.targets import BUILTIN_TARGETS, DEFECT_TARGETS, TargetError, get_target
from conformance.targets.interface import parse_target_name
from conformance.untrusted import printable

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


def plugin_base(target: str) -> str | None:
    """The base name when ``target`` is a plug-in (anything but a built-in or a negative
    control), else None; parsed only, nothing imported. TargetError for a malformed name."""
    base = parse_target_name(target).base
    return None if base in BUILTIN_TARGETS or base in DEFECT_TARGETS else base


def refusal(target: str, trusted: bool, allowed: tuple[str, ...]) -> Finding | None:
    """Why the bundle's target must not be constructed here, decided before any import."""
    shown = printable(target, 200)
    try:
        plugin = plugin_base(target)
    except TargetError as error:
        return Finding(Reason.BAD_TARGET, printable(error, 300), shown)
    except Exception as error:  # untrusted input: a verdict, never a traceback
        return Finding(Reason.BAD_TARGET, f"{type(error).__name__}: {printable(error, 300)}", shown)
    if plugin is None:
        return None
    if not trusted:
        return Finding(
            Reason.RERUN_REFUSED,
            f"{printable(plugin, 200)} is a plug-in: re-executing it imports code on the bundle's "
            "word, so it needs a bundle signed by a trusted key (--public-key) and "
            f"--allow-plugin {printable(plugin, 200)}",
            shown,
        )
    if plugin not in allowed:
        return Finding(
            Reason.RERUN_REFUSED,
            f"{printable(plugin, 200)} is a plug-in: name it with --allow-plugin "
            f"{printable(plugin, 200)} to re-execute it",
            shown,
        )
    return None


def available_here(
    target: str, recorded: Mapping[str, Any]
) -> tuple[bool, list[str], list[Finding]]:
    shown = printable(target, 200)
    try:
        adapter = get_target(target)
        reason = adapter.unavailable_reason()
        version = None if reason else adapter.describe().version
    except TargetError as error:
        return False, [], [Finding(Reason.BAD_TARGET, printable(error, 300), shown)]
    except Exception as error:  # an adapter's own failure on a bundle's name: a verdict
        message = f"{type(error).__name__}: {printable(error, 300)}"
        return False, [], [Finding(Reason.BAD_TARGET, message, shown)]
    if reason:
        return False, [f"rerun skipped: {shown} is not available here ({printable(reason)})"], []
    if recorded.get("version") not in (None, version):
        return (
            True,
            [
                f"rerun: {shown} here is version {printable(version)}, the bundle's is "
                f"{printable(recorded.get('version'), 80)}"
            ],
            [],
        )
    return True, [], []


def rerun_sample(
    document: Mapping[str, Any],
    context: SpecContext,
    target: str,
    outcomes: Mapping[str, CheckOutcome],
    count: int,
    seed: int | None = None,
    trusted: bool = False,
    allowed_plugins: tuple[str, ...] = (),
    precision: str = DEFAULT_PRECISION,
) -> tuple[list[Finding], list[str]]:
    """``trusted``: the bundle's signature was checked against a trusted key; ``precision``:
    the claimed profiles' (the checks are planned, and run, at it)."""
    refused = refusal(target, trusted, allowed_plugins)
    if refused is not None:
        return [refused], []
    recorded = (document.get("targets") or {}).get(target, {})
    recorded = recorded if isinstance(recorded, Mapping) else {}
    usable, notes, problems = available_here(target, recorded)
    if problems or not usable or not outcomes:
        return problems, notes
    seed = secrets.randbelow(2**32) if seed is None else seed
    sample = random.Random(seed).sample(sorted(outcomes), min(count, len(outcomes)))
    index = index_pack(context.pack, target, precision)
    options = recorded.get("options")
    found = []
    runner = IsolatedTarget(target, check_timeout_s())
    try:
        for cid in sample:
            where = index[cid]
            record = run_check(
                runner,
                where,  # the pack's plan of that check: its precision and kind too
                deterministic=bool(recorded.get("deterministic", True)),
                options=options if isinstance(options, Mapping) else None,
            )
            why = compare(outcomes[cid], record.verdict, record.margin)
            if why:
                found.append(Finding(Reason.RERUN_MISMATCH, why, cid))
    finally:
        runner.close()
    notes.append(
        f"rerun: {len(sample)} checks re-executed on {printable(target, 200)} here (seed {seed}); "
        f"{len(sample) - len(found)} agree with the bundle"
    )
    return found, notes
