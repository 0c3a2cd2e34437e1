"""The timing engine: pytest-benchmark, one call per round, so its raw data is per-call latency.

In a pytest run the item's own ``benchmark`` fixture times the series (``pedantic`` with
``rounds=N, iterations=1``), so ``--benchmark-json``, ``--benchmark-autosave`` and
``--benchmark-compare`` see it. Everywhere else (the CLI's child processes, the caching guard's
blocks) a standalone ``pytest_benchmark.fixture.BenchmarkFixture`` is built and driven the same
way: pytest-benchmark times the call, we only read ``stats.data``. Inputs rotate through
``pedantic``'s ``setup``, which runs outside the timed region.

BenchmarkFixture's constructor is not pytest-benchmark's public API (5.3 added ``precision`` and
``confidence``): ``FIXTURE_PARAMETERS`` is the one this module builds, pyproject.toml pins
pytest-benchmark to the releases that have it, and tests/test_bench.py fails when it changes. A
fixture that cannot be built anyway (pytest-benchmark missing, or installed outside the pin) makes
the engine fall back to ``time.perf_counter_ns`` around the same single call, and
``TimedSeries.engine`` says so in every record.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from conformance.bench.rules import SeriesRules

Feeds = Any  # what one call takes: a feeds dict, or a prepared binding (conformance.bench.bound)
Call = Callable[[Feeds], Any]


@dataclass(frozen=True)
class TimedSeries:
    latencies_s: list[float]  # one entry per call, in call order
    wall_s: float  # from the first to the last timed call, setup included
    engine: str


class _Node:
    """What BenchmarkFixture reads from a pytest node: a name and an id."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.nodeid = name


class _QuietLogger:
    def debug(self, *args: Any, **kwargs: Any) -> None: ...
    def info(self, *args: Any, **kwargs: Any) -> None: ...
    def warning(self, *args: Any, **kwargs: Any) -> None: ...


def _engine_name(kind: str) -> str:
    try:
        version = metadata.version("pytest-benchmark")
    except metadata.PackageNotFoundError:
        version = "?"
    return (
        f"pytest-benchmark {version} {kind}: pedantic(rounds=N, iterations=1), "
        "timer time.perf_counter"
    )


# BenchmarkFixture.__init__'s parameters (after self) in pytest-benchmark 5.3
FIXTURE_PARAMETERS = (
    "node",
    "disable_gc",
    "timer",
    "min_rounds",
    "min_time",
    "max_time",
    "precision",
    "confidence",
    "warmup",
    "warmup_iterations",
    "calibration_precision",
    "add_stats",
    "logger",
    "warner",
    "disabled",
    "cprofile",
    "cprofile_loops",
    "cprofile_dump",
    "group",
)


def fixture_arguments(name: str) -> dict[str, Any]:
    """The keyword arguments of a standalone BenchmarkFixture: one call per round, no warm-up,
    no calibration, no profiling, nothing reported to a pytest session."""
    from pytest_benchmark.timers import default_timer
    from pytest_benchmark.utils import NameWrapper

    return {
        "node": _Node(name),
        "disable_gc": False,
        "timer": NameWrapper(default_timer),
        "min_rounds": 1,
        "min_time": 5e-6,
        "max_time": 1.0,
        "precision": None,
        "confidence": None,
        "warmup": False,
        "warmup_iterations": 0,
        "calibration_precision": 10,
        "add_stats": lambda stats: None,
        "logger": _QuietLogger(),
        "warner": lambda warning: None,
        "disabled": False,
        "cprofile": False,
        "cprofile_loops": None,
        "cprofile_dump": None,
        "group": None,
    }


def standalone_fixture(name: str) -> Any:
    """A pytest-benchmark BenchmarkFixture outside pytest; None when it cannot be built."""
    try:
        from pytest_benchmark.fixture import BenchmarkFixture
    except ImportError:
        return None
    try:
        return BenchmarkFixture(**fixture_arguments(name))
    except TypeError:  # another constructor than FIXTURE_PARAMETERS: outside the pinned range
        return None


def _perf_counter_loop(call: Call, setup: Callable[[], Feeds], rounds: int) -> list[float]:
    """``setup()`` (untimed) gives each call's argument."""
    latencies = []
    for _ in range(rounds):
        feeds = setup()
        start = time.perf_counter_ns()
        call(feeds)
        latencies.append((time.perf_counter_ns() - start) * 1e-9)
    return latencies


def time_calls(
    call: Call,
    feeds: Sequence[Feeds],
    rounds: int,
    benchmark: Any = None,
    name: str = "series",
    start_at: int = 0,
    prepare: Callable[[Feeds], None] | None = None,
) -> TimedSeries:
    """Time ``rounds`` calls of ``call(feeds[i])``, rotating i, one call per pytest-benchmark round.

    ``benchmark``: a pytest ``benchmark`` fixture; None builds a standalone one. ``prepare``
    (e.g. binding the input to the runtime) runs before each call, in the untimed setup.
    """
    rotation = itertools.islice(itertools.cycle(feeds), start_at % len(feeds), None)

    def setup() -> tuple[tuple[Feeds], dict]:
        item = next(rotation)
        if prepare is not None:
            prepare(item)
        return (item,), {}

    fixture = benchmark if benchmark is not None else standalone_fixture(name)
    started = time.perf_counter()
    if fixture is None:
        latencies = _perf_counter_loop(call, lambda: setup()[0][0], rounds)
        return TimedSeries(
            latencies, time.perf_counter() - started, "time.perf_counter_ns fallback"
        )
    fixture.pedantic(call, setup=setup, rounds=rounds, iterations=1, warmup_rounds=0)
    wall_s = time.perf_counter() - started
    if fixture.stats is None:  # --benchmark-disable: pytest-benchmark ran the call once, untimed
        return TimedSeries([], wall_s, "pytest-benchmark disabled")
    kind = "pytest fixture" if benchmark is not None else "BenchmarkFixture outside pytest"
    return TimedSeries(list(fixture.stats.stats.data), wall_s, _engine_name(kind))


def warm_up(
    call: Call,
    feeds: Sequence[Feeds],
    queries: int,
    prepare: Callable[[Feeds], None] | None = None,
) -> float:
    """Run the warm-up queries (rotating) and return the median per-call estimate in seconds."""
    rotation = itertools.cycle(feeds)

    def setup() -> Feeds:
        item = next(rotation)
        if prepare is not None:
            prepare(item)
        return item

    latencies = _perf_counter_loop(call, setup, max(1, queries))
    latencies.sort()
    return latencies[len(latencies) // 2]


def planned_rounds(estimate_s: float, rules: SeriesRules) -> int:
    """max(min_queries, enough for min_duration_s), cut by max_duration_s; at least 3 calls."""
    estimate_s = max(estimate_s, 1e-7)
    wanted = max(rules.min_queries, math.ceil(1.05 * rules.min_duration_s / estimate_s))
    allowed = max(3, math.floor(rules.max_duration_s / estimate_s))
    return min(wanted, allowed)
