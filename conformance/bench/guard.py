"""The caching guard, after MLPerf TEST04: repeating one sample must not be markedly faster.

Two signs of a target that answers from a cache instead of running the model:

- timing: blocks of rotated-input queries alternate with blocks that issue one sample (the same
  buffer) again and again, so drift on a busy machine hits both alike; flagged when
  rotated p50 / repeated p50 exceeds the rules' ``threshold_ratio``.
- outputs: each distinct input is issued twice in a row (x0 x0 x1 x1 ...). An honest target gives
  the same answer both times; one that returns an earlier call's result (the ``defect:stale``
  negative control) gives the first call of each pair the previous input's answer. Distinct
  inputs with identical outputs are flagged too (a cache keyed on something other than content).

Timing alone cannot catch ``defect:stale``: it runs the model on every call, so it is not faster.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from conformance.bench.inputs import Feeds
from conformance.bench.rules import GuardRules
from conformance.bench.timing import time_calls, warm_up
from conformance.targets.interface import Session

# far above run-to-run noise of an honest target, far below sample-to-sample differences
RTOL, ATOL = 1e-4, 1e-5
DISTINCT_SAMPLES = 4
MIN_BLOCK_QUERIES = 8


@dataclass(frozen=True)
class GuardRaw:
    """The guard's raw data: interleaved rotated and repeated blocks, and the output check."""

    rotating_s: tuple[float, ...]
    repeated_s: tuple[float, ...]
    engine: str
    output_problems: tuple[str, ...]


@dataclass(frozen=True)
class GuardVerdict:
    """The record's ``caching_guard`` section."""

    flagged: bool
    ratio: float | None  # None: repeating was infinitely faster (JSON has no infinity)
    rotating_p50_ms: float
    repeated_p50_ms: float
    threshold_ratio: float
    timing_flagged: bool
    outputs_flagged: bool
    problems: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "problems": list(self.problems)}


def _agree(first: list, second: list) -> bool:
    return len(first) == len(second) and all(
        a.shape == b.shape and np.allclose(a, b, rtol=RTOL, atol=ATOL, equal_nan=True)
        for (_, a), (_, b) in zip(first, second)
    )


def _identical(first: list, second: list) -> bool:
    return all(np.array_equal(a, b) for (_, a), (_, b) in zip(first, second))


def output_problems(session: Session, pool: list[Feeds]) -> list[str]:
    """Issue x0 x0 x1 x1 ...: the answers of each pair must agree and differ between samples."""
    problems: list[str] = []
    answers = []
    for index, feeds in enumerate(pool[:DISTINCT_SAMPLES]):
        first, second = session.run(feeds), session.run(feeds)
        if not _agree(first, second):
            problems.append(
                f"input {index} issued twice in a row gave two different results: "
                "the first answer depends on the previous call (a stale or cached result)"
            )
        answers.append(second)
    for index in range(1, len(answers)):
        if _identical(answers[index - 1], answers[index]):
            problems.append(f"distinct inputs {index - 1} and {index} gave bit-identical outputs")
    return problems


def measure(session: Session, pool: list[Feeds], rules: GuardRules) -> GuardRaw:
    """Raw data for the guard: interleaved rotated and repeated blocks, and the output check."""
    estimate_s = max(warm_up(session.run, pool, rules.warmup_queries), 1e-7)
    affordable = int(rules.max_duration_s / (2 * rules.blocks * estimate_s))
    per_block = min(rules.queries_per_block, max(MIN_BLOCK_QUERIES, affordable))
    rotating: list[float] = []
    repeated: list[float] = []
    engine = ""
    for block in range(rules.blocks):
        order = ("rotating", "repeated") if block % 2 == 0 else ("repeated", "rotating")
        for kind in order:
            feeds = pool if kind == "rotating" else [pool[0]]
            series = time_calls(
                session.run, feeds, per_block, name=f"CachingGuard[{kind}]", start_at=block
            )
            (rotating if kind == "rotating" else repeated).extend(series.latencies_s)
            engine = series.engine
    return GuardRaw(tuple(rotating), tuple(repeated), engine, tuple(output_problems(session, pool)))


def judge(raw: GuardRaw, threshold_ratio: float) -> GuardVerdict:
    """Flagged when repeating is more than ``threshold_ratio`` faster, or the outputs tell."""
    rotating_p50_ms = float(np.median(raw.rotating_s)) * 1e3
    repeated_p50_ms = float(np.median(raw.repeated_s)) * 1e3
    ratio = rotating_p50_ms / repeated_p50_ms if repeated_p50_ms > 0 else float("inf")
    timing_flagged = ratio > threshold_ratio
    problems = list(raw.output_problems)
    if timing_flagged:
        problems.insert(
            0,
            f"repeating one sample is {ratio:.2f}x faster than rotating inputs "
            f"(threshold {threshold_ratio:g}x)",
        )
    return GuardVerdict(
        flagged=timing_flagged or bool(raw.output_problems),
        ratio=ratio if np.isfinite(ratio) else None,
        rotating_p50_ms=rotating_p50_ms,
        repeated_p50_ms=repeated_p50_ms,
        threshold_ratio=threshold_ratio,
        timing_flagged=timing_flagged,
        outputs_flagged=bool(raw.output_problems),
        problems=tuple(problems),
    )
