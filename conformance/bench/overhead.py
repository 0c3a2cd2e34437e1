"""Measurement overhead of the timing engine, rerunnable: ``python -m conformance.bench.overhead``.

overhead = the SingleStream p50 the suite reports (pytest-benchmark pedantic, one call per round,
rotating inputs through its untimed setup) / the p50 of a bare loop of the same ``session.run``
over the same inputs, timed with ``time.perf_counter_ns``. Both run in one process on one loaded
session (loaded under the rules' thread setting), in alternating blocks, so drift on a busy
machine hits both alike. 1.0 means the engine adds nothing; the aim is at most 1.03.

A bare loop that drops each call's outputs at once frees them inside its timed region; the suite
(pytest-benchmark's runner holds ``result``) frees them outside. That loop is reported too, as a
second, slightly slower reference.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from conformance.bench import registry, scenarios
from conformance.bench.cases import BenchCase, plan_cases
from conformance.bench.records import SingleStreamFigures
from conformance.bench.rules import BenchRules, load_rules
from conformance.bench.worker import CaseBench
from conformance.pack.load import Pack
from conformance.spec import PACK_DIR


def bare_loop_s(run, pool: list, queries: int, keep_result: bool = True) -> list[float]:
    """perf_counter_ns around each call. ``keep_result``: the outputs are freed after the second
    clock read, as pytest-benchmark's runner does (it holds ``result``); without it, freeing the
    output arrays falls inside the timed region (about 0.3 us for mlp here)."""
    latencies = []
    result = None
    for index in range(queries):
        feeds = pool[index % len(pool)]
        if keep_result:
            result = None
            start = time.perf_counter_ns()
            result = run(feeds)
            end = time.perf_counter_ns()
        else:
            start = time.perf_counter_ns()
            run(feeds)
            end = time.perf_counter_ns()
        latencies.append((end - start) * 1e-9)
    del result
    return latencies


def _suite_block(
    bench: CaseBench, case: BenchCase, rules: BenchRules
) -> tuple[float, list[float], str]:
    """One SingleStream series as the suite measures and records it: its p50 (ms), raw, engine."""
    single = registry.get("SingleStream")
    series = scenarios.timed_series(bench.session, bench.pool, rules.single_stream)
    raw = scenarios.SingleStreamRaw(series, None, "runtime: not measured here")
    figures = single.record(single.base(case, rules, bench.environment), raw, rules, Path()).figures
    assert isinstance(figures, SingleStreamFigures), "the series had timed calls"
    return figures.latency_ms["p50"], list(series.latencies_s), series.engine


def measure(
    model: str = "mlp",
    target: str = "ort:cpu",
    exporter: str = "torch-script",
    mode: str = "dev",
    blocks: int = 6,
) -> dict[str, Any]:
    """Alternating blocks: the suite's SingleStream, a bare loop, a bare loop that drops results."""
    rules = load_rules(mode)
    case = plan_cases(Pack(PACK_DIR), [target], [model], [exporter], rules)[0]
    bench = CaseBench(case, rules, "overhead measurement (one process)")
    series: dict[str, list[float]] = {"suite": [], "bare": [], "bare_dropping_results": []}
    suite_block_p50_ms, bare_block_p50_ms = [], []
    try:
        for _ in range(blocks):
            block_p50_ms, latencies, engine = _suite_block(bench, case, rules)
            suite_block_p50_ms.append(block_p50_ms)
            series["suite"] += latencies
            bare = bare_loop_s(bench.session.run, bench.pool, len(latencies))
            bare_block_p50_ms.append(float(np.median(bare)) * 1e3)
            series["bare"] += bare
            series["bare_dropping_results"] += bare_loop_s(
                bench.session.run, bench.pool, len(latencies), False
            )
    finally:
        bench.close()
    p50_ms = {name: float(np.median(values)) * 1e3 for name, values in series.items()}
    return {
        "model": model,
        "exporter": exporter,
        "target": target,
        "mode": mode,
        "blocks": blocks,
        "suite_p50_ms": p50_ms["suite"],
        "bare_p50_ms": p50_ms["bare"],
        "bare_dropping_results_p50_ms": p50_ms["bare_dropping_results"],
        "overhead_ratio": p50_ms["suite"] / p50_ms["bare"],
        "ratio_vs_bare_dropping_results": p50_ms["suite"] / p50_ms["bare_dropping_results"],
        "per_block_ratio": [s / b for s, b in zip(suite_block_p50_ms, bare_block_p50_ms)],
        "queries_each": len(series["suite"]),
        "timer": engine,
        "threads": bench.environment.threads,
        "load_avg_1m": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--target", default="ort:cpu")
    parser.add_argument("--exporter", default="torch-script")
    parser.add_argument("--mode", default="dev", choices=("dev", "cert"))
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    result = measure(args.model, args.target, args.exporter, args.mode, args.blocks)
    print(
        f"{result['model']}/{result['exporter']} on {result['target']}, batch 1, "
        f"{result['mode']} rules "
        f"(threads: {result['threads']}), {result['blocks']} blocks of each, "
        f"{result['queries_each']} queries each; load average {result['load_avg_1m']:.2f}"
    )
    print(f"suite p50 {result['suite_p50_ms'] * 1e3:.3f} us ({result['timer']})")
    print(
        f"bare  p50 {result['bare_p50_ms'] * 1e3:.3f} us "
        "(perf_counter_ns loop, outputs freed after the clock)"
    )
    print(
        f"bare  p50 {result['bare_dropping_results_p50_ms'] * 1e3:.3f} us "
        "(perf_counter_ns loop, outputs freed inside the timed region)"
    )
    print(
        f"overhead ratio {result['overhead_ratio']:.4f} (per block: "
        + ", ".join(f"{r:.3f}" for r in result["per_block_ratio"])
        + f"); against the result-dropping loop {result['ratio_vs_bare_dropping_results']:.4f}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
