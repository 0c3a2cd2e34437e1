"""The scenarios, run in the process that holds the runtime; they return raw measurements.

- ColdStart: session creation and first inference (wall time, perf_counter_ns), and the
  process's resident memory before the load and its peak during load and first inference
  (the whole process: interpreter and runtime libraries included; ``model_rss_mb`` is the growth).
- SingleStream: batch 1, one query after another, rotating inputs; raw per-call latencies, twice:
  end-to-end through ``session.run`` and runtime latency through the runtime's bound call
  (conformance.bench.bound) where the session has one.
- Offline: the same at each batch size of the sweep, capped by the memory budget, through the
  runtime's asynchronous API where it has one (an ``OfflineRunner``, conformance.bench.offline_api).

Statistics and records are made from the raw data elsewhere (stats.py, records.py), so the
pytest path and the child-process path share every number's definition.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from conformance.bench import bound
from conformance.bench.inputs import Feeds, batched, feeds_nbytes
from conformance.bench.rss import current_rss_mb, peak_rss_mb, reset_peak
from conformance.bench.rules import OfflineRules, SeriesRules
from conformance.bench.timing import planned_rounds, time_calls, warm_up
from conformance.targets import Target
from conformance.targets.interface import Session

MB = 1024 * 1024


@dataclass(frozen=True)
class ColdStart:
    """Session creation and first inference, and the process's resident memory around them."""

    session_create_ms: float
    first_inference_ms: float
    peak_rss_mb: float
    rss_before_load_mb: float
    model_rss_mb: float
    peak_is_since_load: bool


@dataclass(frozen=True)
class Series:
    """One timed series: raw per-call latencies, in call order."""

    latencies_s: tuple[float, ...]
    duration_s: float  # wall time from the first to the last timed call, setup included
    engine: str
    planned_queries: int
    warmup_queries: int


@dataclass(frozen=True)
class SingleStreamRaw:
    """SingleStream's two series: end-to-end (session.run) and runtime (the bound call; None
    where the session has none), and what each one times."""

    end_to_end: Series
    runtime: Series | None
    runtime_binding: str
    end_to_end_binding: str = bound.END_TO_END


@dataclass(frozen=True)
class BatchPart:
    """One Offline batch size: its series, or why it was skipped; ``in_flight``: requests that
    overlapped (an async API; None: one call after another); ``api``: which API, its settings."""

    batch: int
    series: Series | None = None
    skipped: str | None = None
    in_flight: int | None = None
    api: Mapping[str, Any] | None = None


class OfflineRunner(Protocol):
    """How Offline sends its batches (conformance.bench.offline_api)."""

    api: dict[str, Any]
    in_flight: int | None

    def series(
        self, feeds: list[Feeds], rules: SeriesRules, benchmark: Any = None, name: str = ""
    ) -> Series: ...

    def close(self) -> None: ...


def cold_start(target: Target, model_path: Path, first_feeds: Feeds) -> tuple[Session, ColdStart]:
    """Load and run once; the runtime's module was imported beforehand (describe): not counted."""
    peak_reset = reset_peak()
    rss_before_mb = current_rss_mb()
    started = time.perf_counter_ns()
    session = target.load(model_path)
    loaded = time.perf_counter_ns()
    session.run(first_feeds)
    finished = time.perf_counter_ns()
    peak_mb = peak_rss_mb()
    return session, ColdStart(
        session_create_ms=(loaded - started) / 1e6,
        first_inference_ms=(finished - loaded) / 1e6,
        peak_rss_mb=peak_mb,
        rss_before_load_mb=rss_before_mb,
        model_rss_mb=max(0.0, peak_mb - rss_before_mb),
        peak_is_since_load=peak_reset,
    )


def timed_calls(
    call: Callable[[Any], Any],
    items: Sequence[Any],
    rules: SeriesRules,
    benchmark: Any = None,
    name: str = "series",
    prepare: Callable[[Any], None] | None = None,
) -> Series:
    """Warm up, size the series from the warm-up estimate, time ``call(item)`` rotating over
    ``items`` (``prepare(item)`` before each, untimed); raw per-call latencies."""
    estimate_s = warm_up(call, items, rules.warmup_queries, prepare)
    rounds = planned_rounds(estimate_s, rules)
    series = time_calls(
        call, items, rounds, benchmark, name, start_at=rules.warmup_queries, prepare=prepare
    )
    return Series(
        tuple(series.latencies_s), series.wall_s, series.engine, rounds, rules.warmup_queries
    )


def timed_series(
    session: Session,
    feeds: list[Feeds],
    rules: SeriesRules,
    benchmark: Any = None,
    name: str = "series",
) -> Series:
    """End-to-end: ``session.run`` over the rotating feeds."""
    return timed_calls(session.run, feeds, rules, benchmark, name)


def runtime_series(
    session: Session, pool: list[Feeds], rules: SeriesRules, name: str = "runtime"
) -> tuple[Series | None, str]:
    """The runtime latency series (its bound call over the same rotation) and what it times;
    (None, why) for a session without a bound call."""
    calls = bound.bind(session, pool)
    if calls is None:
        return None, bound.not_bound(session)
    try:
        bound.checked(calls, session, pool)
    except bound.BindingMismatch as error:
        return None, f"runtime: not measured ({error})"
    series = timed_calls(calls.call, calls.items, rules, None, name, calls.prepare)
    return series, calls.binding


def single_stream(
    session: Session,
    pool: list[Feeds],
    rules: SeriesRules,
    benchmark: Any = None,
    name: str = "SingleStream",
) -> SingleStreamRaw:
    """Both latencies: end-to-end first (the pytest item's own ``benchmark`` fixture times it),
    then the runtime's bound call (a standalone fixture)."""
    end_to_end = timed_series(session, pool, rules, benchmark, name)
    runtime, binding = runtime_series(session, pool, rules, f"{name}[runtime]")
    return SingleStreamRaw(end_to_end, runtime, binding)


def over_budget(
    session: Session, pool: list[Feeds], batch: int, rules: OfflineRules, baseline_rss_mb: float
) -> str | None:
    """Why this batch size must be skipped, or None: predicted buffers, or RSS past budget."""
    sample_bytes = feeds_nbytes(pool[0]) + sum(a.nbytes for _, a in session.run(pool[0]))
    predicted_mb = rules.rotating_batches * batch * sample_bytes / MB
    if predicted_mb > rules.memory_budget_mb:
        return (
            f"inputs and outputs would take {predicted_mb:.0f} MB "
            f"> budget {rules.memory_budget_mb:g} MB"
        )
    grown_mb = peak_rss_mb() - baseline_rss_mb
    if grown_mb > rules.memory_budget_mb:
        return f"peak RSS already grew {grown_mb:.0f} MB > budget {rules.memory_budget_mb:g} MB"
    return None


def offline_batch(
    session: Session,
    pool: list[Feeds],
    batch: int,
    rules: OfflineRules,
    benchmark: Any = None,
    name: str = "Offline",
    runner: OfflineRunner | None = None,
) -> BatchPart:
    """One batch size through ``runner`` (None: ``session.run``, one call after another)."""
    feeds = batched(pool, batch, rules.rotating_batches)
    if runner is None:
        return BatchPart(batch, timed_series(session, feeds, rules, benchmark, name))
    series = runner.series(feeds, rules, benchmark, name)
    return BatchPart(batch, series, in_flight=runner.in_flight, api=dict(runner.api))


def offline_part(
    session: Session,
    pool: list[Feeds],
    batch: int,
    rules: OfflineRules,
    baseline_rss_mb: float,
    benchmark: Any = None,
    name: str = "Offline",
    runner: OfflineRunner | None = None,
) -> BatchPart:
    """One batch size on its own (a pytest item): measured, or skipped when over budget."""
    reason = over_budget(session, pool, batch, rules, baseline_rss_mb)
    if reason:
        return BatchPart(batch, skipped=reason)
    return offline_batch(session, pool, batch, rules, benchmark, name, runner)


def offline_sweep(
    session: Session,
    pool: list[Feeds],
    rules: OfflineRules,
    baseline_rss_mb: float,
    runner: OfflineRunner | None = None,
) -> tuple[BatchPart, ...]:
    """Every batch size of the rules; once one is over budget, the larger ones are skipped too."""
    results: list[BatchPart] = []
    skipped: str | None = None
    for batch in sorted(rules.batch_sizes):
        skipped = skipped or over_budget(session, pool, batch, rules, baseline_rss_mb)
        if skipped:
            results.append(BatchPart(batch, skipped=skipped))
            continue
        name = f"Offline[batch{batch}]"
        results.append(offline_batch(session, pool, batch, rules, None, name, runner))
    return tuple(results)
