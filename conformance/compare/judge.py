"""Judge a target's outputs against the golden: structure exactly, values within tolerance."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from conformance.compare.stats import ErrorStats, error_stats
from conformance.compare.tolerance import Tolerance


@dataclass(frozen=True)
class Expected:
    """One output as the artifact declares it, with its float64 golden in the artifact's layout."""

    name: str
    dtype: str
    golden: np.ndarray


@dataclass(frozen=True)
class OutputJudgement:
    name: str
    stats: ErrorStats | None  # None when structure already failed (no comparable values)
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Judgement:
    tolerance: Tolerance
    outputs: tuple[OutputJudgement, ...]
    problems: tuple[str, ...] = field(default=())  # whole-result problems (output count)

    @property
    def passed(self) -> bool:
        return not self.problems and all(not o.problems for o in self.outputs)

    @property
    def all_problems(self) -> list[str]:
        return [*self.problems, *(f"{o.name}: {p}" for o in self.outputs for p in o.problems)]

    @property
    def margin(self) -> float:
        """Worst error over tolerance across outputs (inf when values could not be compared)."""
        margins = [o.stats.margin if o.stats else float("inf") for o in self.outputs]
        return max(margins, default=float("inf"))


def judge_output(
    actual_name: str, actual: np.ndarray, expected: Expected, tolerance: Tolerance
) -> OutputJudgement:
    problems = []
    if actual_name != expected.name:
        problems.append(f"name {actual_name!r} != expected {expected.name!r}")
    if str(actual.dtype) != expected.dtype:
        problems.append(f"dtype {actual.dtype} != expected {expected.dtype}")
    if actual.shape != expected.golden.shape:
        problems.append(f"shape {list(actual.shape)} != expected {list(expected.golden.shape)}")
        return OutputJudgement(expected.name, None, tuple(problems))
    if not np.issubdtype(actual.dtype, np.number) and actual.dtype != np.bool_:
        problems.append(f"non-numeric dtype {actual.dtype}")
        return OutputJudgement(expected.name, None, tuple(problems))
    nonfinite = ~np.isfinite(actual.astype(np.float64)) & np.isfinite(expected.golden)
    if nonfinite.any():
        problems.append(f"{int(nonfinite.sum())} NaN/Inf values where the golden is finite")
    stats = error_stats(actual, expected.golden, tolerance)
    if stats.margin > 1.0:
        problems.append(
            f"values out of tolerance: max abs {stats.max_abs:.3g}, margin {stats.margin:.3g} "
            f"at index {list(stats.worst_index)}"
        )
    return OutputJudgement(expected.name, stats, tuple(problems))


def judge(
    outputs: list[tuple[str, np.ndarray]], expected: list[Expected], tolerance: Tolerance
) -> Judgement:
    problems = []
    if len(outputs) != len(expected):
        problems.append(f"{len(outputs)} outputs, expected {len(expected)}")
    judged = tuple(
        judge_output(name, np.asarray(array), want, tolerance)
        for (name, array), want in zip(outputs, expected)
    )
    return Judgement(tolerance, judged, tuple(problems))
