"""Judging one operator case: an honest category, never a bare pass/fail.

Values are judged by the ONNX backend runner's rule (``|got - expected| <= atol + rtol *
|expected|``, rtol 1e-3, atol 1e-7 unless the case's data.json says otherwise), stricter than
the runner in two ways that are harness traps: shapes must be equal (numpy's assert_allclose
lets a 0-d scalar pass for a shape-(1,) output), and outputs are matched by name, not position.
A bfloat16 output is judged at rtol max(rtol, 2**-6), two bfloat16 ulps, as the runner's own
``assert_similar_outputs`` does (rtol 1e-3 is below one bfloat16 ulp: it would ask for bits).
Every failed-values case also carries the minimum tolerance that would pass it, so a reader
sees how close it is. Random ops are judged by properties of their draws.

A runtime's refusal is classified from its own message (not-implemented, unsupported-dtype,
load-refused, run-error); the message is kept.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PASSED = "passed"
FAILED_VALUES = "failed-values"
FAILED_STRUCTURE = "failed-structure"
NOT_IMPLEMENTED = "not-implemented"
UNSUPPORTED_DTYPE = "unsupported-dtype"
LOAD_REFUSED = "load-refused"
RUN_ERROR = "run-error"
CRASHED = "crashed"
TIMED_OUT = "timed-out"
ADAPTER_ERROR = "adapter-error"  # the adapter broke the target contract (not the runtime)
NOT_TESTABLE = "not-testable-here"
CATEGORIES = (
    PASSED,
    FAILED_VALUES,
    FAILED_STRUCTURE,
    NOT_IMPLEMENTED,
    UNSUPPORTED_DTYPE,
    LOAD_REFUSED,
    RUN_ERROR,
    CRASHED,
    TIMED_OUT,
    ADAPTER_ERROR,
    NOT_TESTABLE,
)
# A failure of the runtime (counted against it); not-testable-here is neither pass nor failure.
FAILURES = tuple(c for c in CATEGORIES if c not in (PASSED, NOT_TESTABLE))

_DTYPE = re.compile(
    r"(unsupported|not supported|unknown|invalid|unexpected|unhandled|cannot handle)"
    r"[^.\n]{0,40}(data ?type|dtype|element ?type|elem_type|datum ?type|tensor type|precision)"
    r"|(data ?type|dtype|element ?type|datum ?type|elem_type)[^.\n]{0,60}"
    r"(unsupported|not supported|is not implemented|not implemented|are not supported)"
    r"|type \S+ is not supported|unsupported type|not support(ed)? (for )?type"
    r"|Unable to convert (an? )?(numpy )?(array|object)",
    re.IGNORECASE,
)
_NOT_IMPLEMENTED = re.compile(
    r"not[ _]implemented|unimplemented|could not find an implementation"
    r"|no (op|operator|kernel|implementation|schema)s? (is )?(registered|found|available)"
    r"|unsupported (op|operator|operation|node)|(op|operator|operation)s? [^\n]{0,80}"
    r"(is|are) not supported|no conversion rule|does not support the following onnx operations"
    r"|not (yet )?supported|unknown (op|operator)|no (op|operator) named|translator not found"
    r"|no implementation|unrecognized (op|operator)|not support|is not a registered function/op",
    re.IGNORECASE,
)


def classify(stage: str, message: str) -> str:
    """A runtime's refusal, from its own message: the dtype or the op is not supported, or
    the model was refused at load, or the run failed."""
    if _DTYPE.search(message):
        return UNSUPPORTED_DTYPE
    if _NOT_IMPLEMENTED.search(message):
        return NOT_IMPLEMENTED
    return LOAD_REFUSED if stage == "load" else RUN_ERROR


@dataclass(frozen=True)
class Figures:
    """The values judgement of one case (the worst over its outputs and data sets)."""

    max_abs: float = 0.0
    max_rel: float = 0.0
    min_rtol: float = 0.0  # the smallest rtol that passes, at the rule's atol (inf: none)
    min_atol: float = 0.0  # the smallest atol that passes, at the rule's rtol

    def worst(self, other: Figures) -> Figures:
        return Figures(
            max(self.max_abs, other.max_abs),
            max(self.max_rel, other.max_rel),
            max(self.min_rtol, other.min_rtol),
            max(self.min_atol, other.min_atol),
        )

    def as_dict(self) -> dict[str, float | None]:
        def finite(x: float) -> float | None:
            return float(f"{x:.6g}") if math.isfinite(x) else None

        return {
            "max_abs": finite(self.max_abs),
            "max_rel": finite(self.max_rel),
            "min_rtol": finite(self.min_rtol),
            "min_atol": finite(self.min_atol),
        }


@dataclass(frozen=True)
class Verdict:
    category: str
    problems: tuple[str, ...] = ()
    figures: Figures | None = None
    judged_by: str = "values"  # or "properties" (random ops)


@dataclass
class _Compared:
    problems: list[str] = field(default_factory=list)
    structure: bool = False
    figures: Figures = field(default_factory=Figures)


def _as_float(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.bool_:
        return array.astype(np.float64)
    try:
        return array.astype(np.float64)
    except (TypeError, ValueError):
        return array.astype(np.float32).astype(np.float64)


def _values(name: str, got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> _Compared:
    out = _Compared()
    if want.dtype == object or want.dtype.kind in "SU":
        if not np.array_equal(got.astype(object), want.astype(object)):
            out.problems.append(f"{name}: strings differ")
            out.figures = Figures(math.inf, math.inf, math.inf, math.inf)
        return out
    a, e = _as_float(got), _as_float(want)
    nan_a, nan_e = np.isnan(a), np.isnan(e)
    if not np.array_equal(nan_a, nan_e):
        count = int(np.count_nonzero(nan_a != nan_e))
        out.problems.append(f"{name}: NaN where not expected (or missing) at {count} element(s)")
        out.figures = Figures(math.inf, math.inf, math.inf, math.inf)
        return out
    same = (a == e) | (nan_a & nan_e)  # equal infinities and matching NaN count as equal
    with np.errstate(all="ignore"):
        diff = np.where(same, 0.0, np.abs(a - e))
        diff = np.where(np.isnan(diff), math.inf, diff)
        mag = np.abs(np.where(np.isfinite(e), e, 0.0))
        rel = np.where(diff == 0, 0.0, diff / np.where(mag > 0, mag, math.nan))
        rel = np.where(np.isnan(rel), math.inf, rel)
        bound = atol + rtol * mag
        over = diff > bound
        need_rtol = np.where(diff > atol, (diff - atol) / np.where(mag > 0, mag, math.nan), 0.0)
        need_rtol = np.where(np.isnan(need_rtol), math.inf, need_rtol)
        need_atol = np.maximum(diff - rtol * mag, 0.0)
    size = diff.size
    out.figures = Figures(
        float(diff.max()) if size else 0.0,
        float(rel.max()) if size else 0.0,
        float(need_rtol.max()) if size else 0.0,
        float(need_atol.max()) if size else 0.0,
    )
    if np.any(over):
        count = int(np.count_nonzero(over))
        worst = np.unravel_index(int(np.argmax(np.where(over, diff, -1.0))), diff.shape)
        out.problems.append(
            f"{name}: {count} of {size} element(s) outside rtol {rtol:g} atol {atol:g}; "
            f"max abs {out.figures.max_abs:.3g}, max rel {out.figures.max_rel:.3g} "
            f"(at {tuple(int(i) for i in worst)}: got {float(a[worst]):.9g}, "
            f"expected {float(e[worst]):.9g})"
        )
    return out


BFLOAT16_RTOL = 2.0**-6  # two bfloat16 ulps: onnx.backend.test.runner's rtol for bfloat16


def output_rtol(want: np.ndarray, rtol: float) -> float:
    """The rule's rtol for one expected output: at least two ulps for bfloat16, as the ONNX
    runner's assert_similar_outputs has it (onnx 1.23.2), the rule's rtol otherwise."""
    return max(rtol, BFLOAT16_RTOL) if want.dtype.name == "bfloat16" else rtol


def raw_bits_viewed(have: np.ndarray, want: np.ndarray) -> np.ndarray:
    """A runtime whose Python API hands a 1-byte float type (float8) back as its raw uint8
    bits: those bits viewed as the expected type (the values are then judged as usual)."""
    exotic = want.dtype.kind == "V" or type(want.dtype).__module__.startswith("ml_dtypes")
    if exotic and have.dtype == np.uint8 and want.dtype.itemsize == 1 and have.shape == want.shape:
        return have.view(want.dtype)
    return have


def compare(
    got: Sequence[tuple[str, np.ndarray]],
    expected: Sequence[tuple[str, np.ndarray]],
    rtol: float,
    atol: float,
) -> Verdict:
    """Outputs by name: every expected output present, same shape (0-d stays 0-d), same dtype,
    values within the rule."""
    by_name = {name: np.asarray(array) for name, array in got}
    problems: list[str] = []
    structure = False
    figures = Figures()
    if len(got) != len(expected):
        structure = True
        problems.append(f"{len(got)} output(s), expected {len(expected)}")
    for name, want in expected:
        if name not in by_name:
            structure = True
            problems.append(f"output {name!r} missing (got {sorted(by_name)})")
            continue
        have = raw_bits_viewed(by_name[name], want)
        if have.shape != want.shape:
            structure = True
            problems.append(f"{name}: shape {list(have.shape)}, expected {list(want.shape)}")
            continue
        if have.dtype != want.dtype and not (want.dtype == object and have.dtype.kind in "OUS"):
            structure = True
            problems.append(f"{name}: dtype {have.dtype}, expected {want.dtype}")
            continue
        compared = _values(name, have, want, output_rtol(want, rtol), atol)
        figures = figures.worst(compared.figures)
        problems.extend(compared.problems)
    if structure:
        return Verdict(FAILED_STRUCTURE, tuple(problems))
    if problems:
        return Verdict(FAILED_VALUES, tuple(problems), figures)
    return Verdict(PASSED, (), figures)


# ---- random ops: properties, not values ---------------------------------------------------
def _structure(
    got: Sequence[tuple[str, np.ndarray]], expected: Sequence[tuple[str, np.ndarray]]
) -> list[str]:
    by_name = {name: np.asarray(a) for name, a in got}
    problems = []
    for name, want in expected:
        have = by_name.get(name)
        if have is None:
            problems.append(f"output {name!r} missing (got {sorted(by_name)})")
        elif have.shape != want.shape:
            problems.append(f"{name}: shape {list(have.shape)}, expected {list(want.shape)}")
        elif have.dtype != want.dtype:
            problems.append(f"{name}: dtype {have.dtype}, expected {want.dtype}")
    return problems


def _bernoulli(p: np.ndarray, y: np.ndarray) -> list[str]:
    y64 = y.astype(np.float64)
    if not np.all((y64 == 0) | (y64 == 1)):
        return ["Bernoulli draws must be 0 or 1"]
    p64 = np.clip(p.astype(np.float64), 0.0, 1.0)
    if np.any((p64 == 0) & (y64 != 0)) or np.any((p64 == 1) & (y64 != 1)):
        return ["a draw contradicts a probability of exactly 0 or 1"]
    n = p64.size
    sigma = math.sqrt(float(np.sum(p64 * (1 - p64)))) if n else 0.0
    gap = abs(float(np.sum(y64)) - float(np.sum(p64)))
    if gap > 5 * sigma + 1e-9:
        return [f"sum of draws {np.sum(y64):g} is {gap:g} from its mean {np.sum(p64):g} (5 sigma)"]
    return []


def _dropout(
    x: np.ndarray, ratio: float, y: np.ndarray, mask: np.ndarray | None, rtol: float, atol: float
) -> list[str]:
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    scale = 1.0 / (1.0 - ratio) if ratio < 1 else 0.0
    kept = np.abs(y64 - x64 * scale) <= atol + rtol * np.abs(x64 * scale)
    dropped = y64 == 0
    if not np.all(kept | dropped):
        return ["an output element is neither 0 nor x / (1 - ratio)"]
    if mask is not None:
        if mask.dtype != np.bool_:
            return [f"mask dtype {mask.dtype}, expected bool"]
        if not np.all(np.where(mask, kept, dropped)):
            return ["the output does not follow the mask"]
        keep = mask.astype(np.float64)
    else:
        keep = (~dropped | (x64 == 0)).astype(np.float64)
    if ratio == 0 and not np.all(keep == 1):
        return ["ratio 0 dropped elements"]
    n = keep.size
    if n and 0 < ratio < 1:
        sigma = math.sqrt(n * ratio * (1 - ratio))
        gap = abs((n - float(keep.sum())) - n * ratio)
        if gap > 5 * sigma + 1:
            return [f"{n - keep.sum():g} of {n} dropped; ratio {ratio:g} expects {n * ratio:g}"]
    return []


def properties(
    op: str,
    feeds: Mapping[str, np.ndarray],
    got: Sequence[tuple[str, np.ndarray]],
    expected: Sequence[tuple[str, np.ndarray]],
    rtol: float,
    atol: float,
) -> Verdict:
    """A random op's outputs: shape and dtype as expected, draws that the distribution allows
    (Bernoulli 0/1 with a mean within 5 sigma; Dropout's kept elements scaled by 1/(1-ratio),
    dropped ones 0, following the mask, a drop rate within 5 sigma)."""
    problems = _structure(got, expected)
    if problems:
        return Verdict(FAILED_STRUCTURE, tuple(problems), judged_by="properties")
    outputs = [np.asarray(a) for _, a in got]
    by_name = {name: np.asarray(a) for name, a in got}
    ordered = [by_name[name] for name, _ in expected]
    values = list(feeds.values())
    if op == "Bernoulli":
        problems = _bernoulli(values[0], ordered[0])
    elif op == "Dropout":
        ratio = float(np.asarray(values[1])) if len(values) > 1 else 0.5
        mask = ordered[1] if len(ordered) > 1 else None
        problems = _dropout(values[0], ratio, ordered[0], mask, rtol, atol)
    elif op == "Multinomial":
        classes = values[0].shape[-1]
        draws = ordered[0]
        if np.any((draws < 0) | (draws >= classes)):
            problems = [f"a drawn class is outside [0, {classes})"]
    else:
        floats = [a for a in outputs if a.dtype.kind == "f"]
        if any(not np.all(np.isfinite(a)) for a in floats):
            problems = ["a draw is not finite"]
    category = FAILED_VALUES if problems else PASSED
    return Verdict(category, tuple(problems), judged_by="properties")


def rule_of(rtol: float, atol: float) -> dict[str, Any]:
    from conformance.ops.cases import RULE_ATOL, RULE_RTOL

    source = "onnx-runner" if (rtol, atol) == (RULE_RTOL, RULE_ATOL) else "data.json"
    return {"rtol": rtol, "atol": atol, "source": source}


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = [
    "CATEGORIES",
    "FAILURES",
    "Figures",
    "Verdict",
    "classify",
    "compare",
    "properties",
]
