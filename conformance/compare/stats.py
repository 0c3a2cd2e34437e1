"""Error statistics of one output against its golden, and the verdict they imply."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from conformance.compare.tolerance import Tolerance


@dataclass(frozen=True)
class ErrorStats:
    max_abs: float
    max_rel: float  # relative to |golden|, over elements where golden is non-zero
    rel_l2: float  # ||actual - golden|| / ||golden||
    margin: float  # worst |err| / (atol + rtol |golden|); pass when <= 1; inf on NaN
    worst_index: tuple[int, ...]
    min_passing_atol: float  # the smallest tolerance of the same atol:rtol shape that passes
    min_passing_rtol: float
    worst_elements: tuple[dict, ...] = ()  # index, expected, actual, abs_error, ratio; worst first
    ratio_histogram: tuple[
        int, ...
    ] = ()  # element counts of |err| / allowed per RATIO_BIN_EDGES bin

    def as_dict(self) -> dict:
        """JSON-ready: infinities (NaN/Inf in the output) become null."""
        data = {k: _finite_or_none(v) for k, v in asdict(self).items()}
        data["worst_index"] = list(self.worst_index)
        data["worst_elements"] = [
            {k: _finite_or_none(v) for k, v in e.items()} for e in self.worst_elements
        ]
        data["ratio_histogram"] = list(self.ratio_histogram)
        return data


# Bins of |err| / allowed: the last two bins are failures (> 1).
RATIO_BIN_EDGES = (0.0, 1e-3, 1e-2, 0.1, 0.5, 1.0, 10.0, float("inf"))
WORST_ELEMENTS = 5


def _finite_or_none(value):
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def error_stats(actual: np.ndarray, golden: np.ndarray, tolerance: Tolerance) -> ErrorStats:
    """Compare in float64. Shapes must already match (the caller checks them first)."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # inf errors are expected
        return _error_stats(actual, golden, tolerance)


def margin_and_max_abs(
    actual: np.ndarray, golden: np.ndarray, tolerance: Tolerance
) -> tuple[float, float]:
    """``error_stats(...).margin`` and ``.max_abs`` alone (localisation asks them of every
    node's output twice: the full statistics, norms and sorts, cost it most of its time)."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        _, _, error, ratio = _errors(actual, golden, tolerance)
        if not ratio.size:
            return 0.0, 0.0
        return float(ratio.max()), float(error.max())


def _errors(
    actual: np.ndarray, golden: np.ndarray, tolerance: Tolerance
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """actual and golden in float64, |error| (inf where only one is NaN) and |error| / allowed."""
    actual = np.asarray(actual, dtype=np.float64)
    golden = np.asarray(golden, dtype=np.float64)
    error = np.abs(actual - golden)
    error = np.where(np.isnan(error) & ~(np.isnan(actual) & np.isnan(golden)), np.inf, error)
    # NaN where the golden has NaN too: agreement; inf stays inf (an overflowed output)
    error = np.nan_to_num(error, nan=0.0, posinf=np.inf)
    allowed = tolerance.atol + tolerance.rtol * np.abs(golden)
    return actual, golden, error, error / allowed


def _error_stats(actual: np.ndarray, golden: np.ndarray, tolerance: Tolerance) -> ErrorStats:
    actual, golden, error, ratio = _errors(actual, golden, tolerance)
    nonzero = np.abs(golden) > 0
    golden_norm = float(np.linalg.norm(golden[np.isfinite(golden)]))
    worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape) if ratio.size else ()
    margin = float(ratio.max()) if ratio.size else 0.0
    return ErrorStats(
        max_abs=float(error.max()) if error.size else 0.0,
        max_rel=float((error[nonzero] / np.abs(golden[nonzero])).max()) if nonzero.any() else 0.0,
        rel_l2=float(np.linalg.norm(np.where(np.isfinite(error), error, np.inf)))
        / (golden_norm if golden_norm > 0 else 1.0),
        margin=margin,
        worst_index=tuple(int(i) for i in worst),
        min_passing_atol=tolerance.atol * margin,
        min_passing_rtol=tolerance.rtol * margin,
        worst_elements=worst_elements(actual, golden, error, ratio),
        ratio_histogram=tuple(
            int(c)
            for c in np.histogram(np.minimum(ratio, 1e300), bins=RATIO_BIN_EDGES[:-1] + (1e301,))[0]
        ),
    )


def _worst_flat(ratio: np.ndarray, count: int) -> np.ndarray:
    """Flat indices of the ``count`` largest ratios, largest first, ties by index (NaN last):
    what a stable full sort gives, from a partition (linear) where the top is not all ties."""
    flat = -ratio.ravel()
    if flat.size > 4 * count:
        part = np.argpartition(flat, count - 1)[:count]
        threshold = flat[part].max()
        candidates = np.flatnonzero(flat <= threshold)  # NaN never qualifies
        if count <= candidates.size <= 16 * count:
            order = np.argsort(flat[candidates], kind="stable")[:count]
            return candidates[order]
    return np.argsort(flat, kind="stable")[:count]


def worst_elements(actual, golden, error, ratio) -> tuple[dict, ...]:
    flat = _worst_flat(ratio, WORST_ELEMENTS)
    return tuple(
        {
            "index": [int(i) for i in np.unravel_index(k, ratio.shape)],
            "expected": float(golden.flat[k]),
            "actual": float(actual.flat[k]),
            "abs_error": float(error.flat[k]),
            "ratio": float(ratio.flat[k]),
        }
        for k in flat
    )
