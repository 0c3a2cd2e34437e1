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

    def min_passing(self, tolerance: Tolerance) -> Tolerance:
        """The smallest tolerance of the same atol:rtol shape that would have passed."""
        return Tolerance(atol=tolerance.atol * self.margin, rtol=tolerance.rtol * self.margin)

    def as_dict(self) -> dict:
        """JSON-ready: infinities (NaN/Inf in the output) become null."""
        data = {k: (v if not isinstance(v, float) or np.isfinite(v) else None) for k, v in asdict(self).items()}
        data["worst_index"] = list(self.worst_index)
        return data


def error_stats(actual: np.ndarray, golden: np.ndarray, tolerance: Tolerance) -> ErrorStats:
    """Compare in float64. Shapes must already match (the caller checks them first)."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # inf errors are expected
        return _error_stats(actual, golden, tolerance)


def _error_stats(actual: np.ndarray, golden: np.ndarray, tolerance: Tolerance) -> ErrorStats:
    actual = np.asarray(actual, dtype=np.float64)
    golden = np.asarray(golden, dtype=np.float64)
    error = np.abs(actual - golden)
    error = np.where(np.isnan(error) & ~(np.isnan(actual) & np.isnan(golden)), np.inf, error)
    error = np.nan_to_num(error, nan=0.0)  # NaN where the golden has NaN too: agreement
    allowed = tolerance.atol + tolerance.rtol * np.abs(golden)
    ratio = error / allowed
    nonzero = np.abs(golden) > 0
    golden_norm = float(np.linalg.norm(golden[np.isfinite(golden)]))
    worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape) if ratio.size else ()
    return ErrorStats(
        max_abs=float(error.max()) if error.size else 0.0,
        max_rel=float((error[nonzero] / np.abs(golden[nonzero])).max()) if nonzero.any() else 0.0,
        rel_l2=float(np.linalg.norm(np.where(np.isfinite(error), error, np.inf)))
        / (golden_norm if golden_norm > 0 else 1.0),
        margin=float(ratio.max()) if ratio.size else 0.0,
        worst_index=tuple(int(i) for i in worst),
    )
