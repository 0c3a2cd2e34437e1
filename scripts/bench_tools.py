"""The suite's runtime latency against the runtimes' own benchmark tools, alternating pairs.

    .venv/bin/python scripts/bench_tools.py [--model M ...] [--target T ...] [--pairs 3]
        [--offline-batch 8] [--offline-seconds 2] [--no-offline | --offline-only] [--json OUT.json]

For every pack model (its first default exporter that loads) on ort:cpu, openvino:cpu and
iree:llvm-cpu, in the case's own child process (the tools run as its children: one process
group): ``--pairs`` times, alternating which goes first, the suite's SingleStream under the dev
rules (one thread) and the runtime's own tool on the same artifact, input, threads and precision
(conformance.bench.tools: OpenVINO ``benchmark_app -api sync``, IREE ``iree-benchmark-module``
with the target's thread flag, ORT a bare ``run_with_iobinding`` loop). Prints model x target:
the suite's runtime p50, the tool's p50, their ratio (of the pairs' medians), each pair's ratio
and the end-to-end p50 beside them.

Offline (``--offline-batch`` B): the suite's Offline on openvino:cpu at batch B through its
asynchronous requests against ``benchmark_app -api async -hint throughput`` on the same shape,
both at the runtime's default threads (benchmark_app refuses -nthreads with a hint), alternating.
``--offline-only`` measures only this (openvino:cpu), no SingleStream pairs.

Nothing is asserted: the figures are printed (goals: SingleStream ratio <= 1.10, Offline >= 0.9x
the tool's), with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from conformance.bench import tools
from conformance.bench.cases import BenchCase, plan_groups
from conformance.bench.inputs import batched, sample_pool
from conformance.bench.registry import Measure
from conformance.bench.rules import BenchRules, load_rules
from conformance.bench.runner import open_first
from conformance.bench.scenarios import BatchPart, SingleStreamRaw
from conformance.bench.worker import BenchWorker
from conformance.pack.load import Pack
from conformance.spec import PACK_DIR
from conformance.targets import TargetError

TARGETS = ("ort:cpu", "openvino:cpu", "iree:llvm-cpu")


def _median_ms(latencies_s: tuple[float, ...]) -> float:
    return float(np.median(latencies_s)) * 1e3


def single_stream_pairs(
    worker: BenchWorker, case: BenchCase, pairs: int, folder: Path
) -> dict[str, Any]:
    """``pairs`` alternating (suite, tool) measurements in the case's child."""
    suite_ms, end_to_end_ms, tool_ms, other_ms = [], [], [], []
    figure = None
    for pair in range(pairs):
        order = ("suite", "tool") if pair % 2 == 0 else ("tool", "suite")
        for what in order:
            if what == "suite":
                raw = worker.request("SingleStream", Measure(name="SingleStream"))
                assert isinstance(raw, SingleStreamRaw)
                if raw.runtime is None:
                    raise TargetError(raw.runtime_binding)
                suite_ms.append(_median_ms(raw.runtime.latencies_s))
                end_to_end_ms.append(_median_ms(raw.end_to_end.latencies_s))
            else:
                figure = worker.tool(folder / f"pair{pair}")
                tool_ms.append(figure.p50_ms)
                other_ms += list((figure.other_p50_ms or {}).values())
    assert figure is not None
    suite, tool = float(np.median(suite_ms)), float(np.median(tool_ms))
    return {
        "model": case.model,
        "exporter": case.exporter,
        "target": case.target,
        "suite_runtime_p50_ms": suite,
        "suite_end_to_end_p50_ms": float(np.median(end_to_end_ms)),
        "tool": figure.tool,
        "tool_p50_ms": tool,
        "ratio": suite / tool,
        "pair_ratios": [s / t for s, t in zip(suite_ms, tool_ms)],
        "tool_other_p50_ms": float(np.median(other_ms)) if other_ms else None,
        "tool_command": figure.command,
        "tool_measures": figure.measures,
    }


def offline_pairs(
    case: BenchCase,
    rules: BenchRules,
    batch: int,
    pairs: int,
    folder: Path,
    seconds: float = 2.0,
) -> dict[str, Any]:
    """The suite's Offline at ``batch`` (runtime default threads) against benchmark_app's
    throughput hint, alternating, both from this script's process group, each for about
    ``seconds`` (the dev rules' 0.15 s series is too short to compare with the tool's)."""
    timed = replace(
        rules.offline, batch_sizes=(batch,), min_duration_s=seconds, max_duration_s=2 * seconds
    )
    offline_rules = replace(rules, threads=0, offline=timed)
    worker = BenchWorker(case, offline_rules)
    pool = sample_pool(Path(case.artifact_dir), case.data_set, 8, rules.perturbation, rules.seed)
    feeds = batched(pool, batch, 1)[0]
    suite, tool, api = [], [], {}
    command = ""
    try:
        worker.open()
        for pair in range(pairs):
            order = ("suite", "tool") if pair % 2 == 0 else ("tool", "suite")
            for what in order:
                if what == "suite":
                    raw = worker.request("Offline", Measure(name="Offline"))
                    assert isinstance(raw, tuple) and len(raw) == 1
                    part = raw[0]
                    assert isinstance(part, BatchPart) and part.series is not None
                    series = part.series
                    suite.append(batch * len(series.latencies_s) / series.duration_s)
                    api = dict(part.api or {})
                else:
                    fps, command = tools.benchmark_app_throughput(
                        Path(case.model_path), feeds, folder / f"offline{pair}", seconds=seconds
                    )
                    tool.append(fps)
    finally:
        worker.close()
    ours, theirs = float(np.median(suite)), float(np.median(tool))
    return {
        "model": case.model,
        "exporter": case.exporter,
        "batch": batch,
        "seconds": seconds,
        "suite_samples_per_s": ours,
        "tool_samples_per_s": theirs,
        "ratio": ours / theirs,
        "pair_ratios": [s / t for s, t in zip(suite, tool)],
        "suite_api": api,
        "tool_command": command,
    }


def _print_single(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    print(
        "\nSingleStream, batch 1, dev rules (1 thread), f32: suite runtime p50 vs the runtime's "
        "own tool (median of the pairs); ratio = suite / tool"
    )
    head = f"{'model/exporter':34s} {'target':14s} {'suite us':>9s} {'tool us':>9s} {'ratio':>6s}"
    print(f"{head}  {'pairs':18s} {'e2e us':>8s}  tool (IREE: its usual median of means)")
    for r in rows:
        if "error" in r:
            print(f"{r['model'] + '/' + r['exporter']:34s} {r['target']:14s} {r['error']}")
            continue
        pairs = " ".join(f"{x:.2f}" for x in r["pair_ratios"])
        other = r.get("tool_other_p50_ms")
        inline = f" (median of means {1e3 * other:.1f} us)" if other else ""
        print(
            f"{r['model'] + '/' + r['exporter']:34s} {r['target']:14s} "
            f"{1e3 * r['suite_runtime_p50_ms']:9.1f} {1e3 * r['tool_p50_ms']:9.1f} "
            f"{r['ratio']:6.2f}  {pairs:18s} {1e3 * r['suite_end_to_end_p50_ms']:8.1f}  "
            f"{r['tool']}{inline}"
        )


def _print_offline(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    print(
        "\nOffline on openvino:cpu, runtime default threads: suite (async requests) vs "
        "benchmark_app -api async -hint throughput; ratio = suite / tool"
    )
    head = f"{'model/exporter':34s} {'batch':>5s} {'suite/s':>10s} {'tool/s':>10s} {'ratio':>6s}"
    print(f"{head}  pairs")
    for r in rows:
        if "error" in r:
            print(f"{r['model'] + '/' + r['exporter']:34s} {r['error']}")
            continue
        print(
            f"{r['model'] + '/' + r['exporter']:34s} {r['batch']:5d} "
            f"{r['suite_samples_per_s']:10.0f} {r['tool_samples_per_s']:10.0f} {r['ratio']:6.2f}  "
            + " ".join(f"{x:.2f}" for x in r["pair_ratios"])
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[])
    parser.add_argument("--target", action="append", default=[])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--offline-batch", type=int, default=8)
    parser.add_argument("--no-offline", action="store_true")
    parser.add_argument("--offline-only", action="store_true")
    parser.add_argument("--offline-seconds", type=float, default=2.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rules = load_rules("dev")
    pack = Pack(PACK_DIR)
    folder = Path(tempfile.mkdtemp(prefix="bench-tools-"))
    print(f"load average before: {os.getloadavg()}, cpus {os.cpu_count()}")
    single: list[dict[str, Any]] = []
    offline: list[dict[str, Any]] = []
    targets = ["openvino:cpu"] if args.offline_only else args.target or TARGETS
    for group in plan_groups(pack, targets, args.model, (), rules):
        case, worker, opened = open_first(group, rules, print)
        where = folder / f"{case.model}-{case.exporter}-{case.target.replace(':', '_')}"
        try:
            if isinstance(opened, TargetError):
                raise opened
            if not args.offline_only:
                single.append(single_stream_pairs(worker, case, args.pairs, where))
        except TargetError as error:
            single.append({**_case(case), "error": f"not measured: {str(error)[:100]}"})
        finally:
            worker.close()
        print(f"done {case.key}", flush=True)
        if case.target == "openvino:cpu" and not args.no_offline:
            try:
                offline.append(
                    offline_pairs(
                        case, rules, args.offline_batch, args.pairs, where, args.offline_seconds
                    )
                )
            except TargetError as error:
                offline.append({**_case(case), "error": f"not measured: {str(error)[:100]}"})
    _print_single(single)
    _print_offline(offline)
    print(f"\nload average after: {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps({"single_stream": single, "offline": offline}, indent=1))


def _case(case: BenchCase) -> dict[str, Any]:
    return {"model": case.model, "exporter": case.exporter, "target": case.target}


if __name__ == "__main__":
    main()
