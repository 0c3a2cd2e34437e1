"""Latency statistics from raw per-call data: percentiles, validity flags, a histogram.

A plain module (no pytest): the CLI, the pytest glue and pytest-benchmark's JSON hook all use it.
Percentiles are numpy's default (``method="linear"``). A percentile is *valid* only when at least
MLPerf's early-stopping minimum of queries was measured for it (64 for p90, 662 for p99 at 99%
confidence); otherwise it is still reported, flagged as an estimate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypedDict

import numpy as np
import numpy.typing as npt

from conformance.results.records import PERCENTILES

# the percentile list is the results contract's (a record's latency_ms and valid keys); a
# name's level is its number: "p99.9" -> 99.9
PERCENTILE_LEVELS: dict[str, float] = {name: float(name[1:]) for name in PERCENTILES}
HISTOGRAM_BINS = 24
Values = Sequence[float] | npt.NDArray[np.float64]


class HistogramMs(TypedDict):
    edges_ms: list[float]
    counts: list[int]


def percentiles(values: Values) -> dict[str, float]:
    """p50 ... p99.9 of the values, in their own unit."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        raise ValueError("no data: a percentile needs at least one measured call")
    levels = list(PERCENTILE_LEVELS.values())
    return {name: float(v) for name, v in zip(PERCENTILE_LEVELS, np.percentile(data, levels))}


def validity(queries: int, min_queries: Mapping[str, int]) -> dict[str, bool]:
    """Percentile name -> whether ``queries`` is enough for an honest estimate of it."""
    return {name: queries >= min_queries[name] for name in PERCENTILE_LEVELS}


def latency_summary_ms(latencies_s: Values) -> dict[str, float]:
    """The record's ``latency_ms``: percentiles, mean, min, max, in milliseconds."""
    data_ms = np.asarray(latencies_s, dtype=np.float64) * 1e3
    return {
        **percentiles(data_ms),
        "mean": float(data_ms.mean()),
        "min": float(data_ms.min()),
        "max": float(data_ms.max()),
    }


def histogram_ms(latencies_s: Values, bins: int = HISTOGRAM_BINS) -> HistogramMs:
    """Geometric bins from min to max: latency tails span decades, linear bins would hide them."""
    data_ms = np.asarray(latencies_s, dtype=np.float64) * 1e3
    low, high = float(data_ms.min()), float(data_ms.max())
    if high <= low or low <= 0:
        edges = np.array([low, high if high > low else low + 1e-6])
    else:
        edges = np.geomspace(low, high, bins + 1)
    counts, edges = np.histogram(data_ms, bins=edges)
    return {"edges_ms": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def samples_per_s(batch: int, latencies_s: Values) -> float:
    """Offline throughput: every sample of every timed query over the total time spent in calls."""
    total_s = float(np.sum(latencies_s))
    return batch * len(latencies_s) / total_s if total_s > 0 else 0.0


def spread(values: Values) -> float:
    """(max - min) / median: how far repeated runs of one figure disagree."""
    data = np.asarray(values, dtype=np.float64)
    return float((data.max() - data.min()) / np.median(data))
