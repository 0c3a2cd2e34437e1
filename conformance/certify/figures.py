"""Do one output's recorded error figures agree with each other, the tolerance and the golden?

The figures are what conformance.compare.stats writes: margin
(worst |err| / (atol + rtol |golden|)),
the minimum passing tolerance (margin x tolerance), the worst elements with their indices, a
histogram of element ratios, max abs and relative L2 error. Each relation below holds exactly (up
to float rounding) for honest figures; editing one figure breaks at least one of them, and an
expected value that is not the golden at its index shows the record belongs to another check.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from conformance.certify.interface import Reason
from conformance.compare.stats import RATIO_BIN_EDGES
from conformance.compare.tolerance import Tolerance

REL = 1e-9  # the figures are recomputed with the same float64 operations; only rounding may differ
HISTOGRAM_EDGES = (*RATIO_BIN_EDGES[:-1], 1e301)  # as compare.stats bins them

Problem = tuple[Reason, str]


def close(a: Any, b: float) -> bool:
    return isinstance(a, (int, float)) and math.isclose(float(a), b, rel_tol=REL, abs_tol=1e-300)


def element_problems(
    element: Any, golden: np.ndarray, tolerance: Tolerance, margin: float
) -> list[Problem]:
    if not isinstance(element, dict):
        return [(Reason.FIGURES_INCONSISTENT, "a worst element is not an object")]
    index = element.get("index")
    if (
        not isinstance(index, list)
        or len(index) != golden.ndim
        or not all(type(i) is int and 0 <= i < n for i, n in zip(index, golden.shape))
    ):
        return [
            (
                Reason.GOLDEN_MISMATCH,
                f"worst element index {index} is not an index of the golden {list(golden.shape)}",
            )
        ]
    want = float(golden[tuple(index)])
    expected, actual = element.get("expected"), element.get("actual")
    if not close(expected, want):
        return [
            (
                Reason.GOLDEN_MISMATCH,
                f"expected value {expected} at {index} is not the golden's {want!r}",
            )
        ]
    if not isinstance(
        actual, (int, float)
    ):  # null is a NaN/Inf output, which a finite margin excludes
        return [
            (
                Reason.FIGURES_INCONSISTENT,
                f"actual value at {index} is {actual!r} under a finite margin",
            )
        ]
    error = abs(float(actual) - want)
    ratio = error / (tolerance.atol + tolerance.rtol * abs(want))
    problems = []
    if not close(element.get("abs_error"), error):
        problems.append(
            (
                Reason.FIGURES_INCONSISTENT,
                f"abs_error at {index} is not |actual - expected| = {error:.6g}",
            )
        )
    if not close(element.get("ratio"), ratio):
        problems.append(
            (
                Reason.FIGURES_INCONSISTENT,
                f"ratio at {index} is not abs_error / allowed = {ratio:.6g}",
            )
        )
    if ratio > margin * (1 + REL) + 1e-300:
        problems.append(
            (
                Reason.FIGURES_INCONSISTENT,
                f"element {index} has ratio {ratio:.6g} above the margin {margin:.6g}",
            )
        )
    return problems


def histogram_problems(histogram: Any, size: int, margin: float) -> list[Problem]:
    if not isinstance(histogram, list) or len(histogram) != len(HISTOGRAM_EDGES) - 1:
        return [(Reason.FIGURES_INCONSISTENT, "ratio histogram has the wrong number of bins")]
    if sum(histogram) != size:
        return [
            (
                Reason.FIGURES_INCONSISTENT,
                f"ratio histogram counts {sum(histogram)} elements, the output has {size}",
            )
        ]
    if size == 0:
        return []
    top = min(int(np.searchsorted(HISTOGRAM_EDGES, margin, side="right")) - 1, len(histogram) - 1)
    if histogram[top] < 1 or any(histogram[top + 1 :]):
        return [
            (
                Reason.FIGURES_INCONSISTENT,
                f"ratio histogram {histogram} does not top out in the bin of margin {margin:.6g}",
            )
        ]
    return []


def bound_problems(
    stats: dict[str, Any], golden: np.ndarray, tolerance: Tolerance, margin: float
) -> list[Problem]:
    """max abs lies between the worst elements' errors and margin x the largest allowed error;
    relative L2 lies between max abs and sqrt(n) max abs (over the golden's norm)."""
    max_abs, rel_l2 = stats.get("max_abs"), stats.get("rel_l2")
    if not isinstance(max_abs, (int, float)) or not isinstance(rel_l2, (int, float)):
        return [(Reason.FIGURES_INCONSISTENT, "max_abs or rel_l2 missing for a finite margin")]
    errors = [e.get("abs_error") for e in stats.get("worst_elements", []) if isinstance(e, dict)]
    low = max((float(e) for e in errors if isinstance(e, (int, float))), default=0.0)
    high = (
        margin * (tolerance.atol + tolerance.rtol * float(np.max(np.abs(golden))))
        if golden.size
        else 0.0
    )
    problems = []
    max_rel = stats.get("max_rel")
    rel_low = max(
        (
            float(e["abs_error"]) / abs(float(e["expected"]))
            for e in stats.get("worst_elements", [])
            if isinstance(e, dict)
            and isinstance(e.get("abs_error"), (int, float))
            and isinstance(e.get("expected"), (int, float))
            and e["expected"] != 0
        ),
        default=0.0,
    )
    if not isinstance(max_rel, (int, float)) or max_rel < rel_low * (1 - REL):
        problems.append(
            (
                Reason.FIGURES_INCONSISTENT,
                f"max_rel {max_rel!r} below a worst element's relative error {rel_low:.6g}",
            )
        )
    if not low * (1 - REL) <= max_abs <= high * (1 + REL) + 1e-300:
        problems.append(
            (Reason.FIGURES_INCONSISTENT, f"max_abs {max_abs:.6g} outside [{low:.6g}, {high:.6g}]")
        )
    norm = float(np.linalg.norm(golden)) or 1.0
    if (
        not max_abs / norm * (1 - REL)
        <= rel_l2
        <= math.sqrt(max(golden.size, 1)) * max_abs / norm * (1 + REL) + 1e-300
    ):
        problems.append(
            (
                Reason.FIGURES_INCONSISTENT,
                f"rel_l2 {rel_l2:.6g} inconsistent with max_abs {max_abs:.6g}",
            )
        )
    return problems


def stats_findings(stats: Any, golden: np.ndarray, tolerance: Tolerance) -> list[Problem]:
    if not isinstance(stats, dict):
        return [(Reason.FIGURES_INCONSISTENT, "error figures are not an object")]
    margin = stats.get("margin")
    if margin is None:  # NaN/Inf in the output: only "not passed" follows, which the caller derives
        return []
    if not isinstance(margin, (int, float)) or margin < 0:
        return [(Reason.FIGURES_INCONSISTENT, f"margin {margin!r} is not a non-negative number")]
    margin = float(margin)
    problems: list[Problem] = []
    for name, scale in (("min_passing_atol", tolerance.atol), ("min_passing_rtol", tolerance.rtol)):
        if not close(stats.get(name), margin * scale):
            problems.append(
                (Reason.FIGURES_INCONSISTENT, f"{name} {stats.get(name)} is not margin x {scale:g}")
            )
    worst = stats.get("worst_elements") or []
    if golden.size and not worst:
        problems.append((Reason.FIGURES_INCONSISTENT, "no worst elements recorded"))
    for element in worst:
        problems += element_problems(element, golden, tolerance, margin)
    if worst and isinstance(worst[0], dict):
        if not close(worst[0].get("ratio"), margin):
            problems.append(
                (
                    Reason.FIGURES_INCONSISTENT,
                    f"the worst element's ratio is not the margin {margin:.6g}",
                )
            )
        if stats.get("worst_index") != worst[0].get("index"):
            problems.append(
                (Reason.FIGURES_INCONSISTENT, "worst_index is not the worst element's index")
            )
    problems += histogram_problems(stats.get("ratio_histogram"), int(golden.size), margin)
    problems += bound_problems(stats, golden, tolerance, margin)
    return problems
