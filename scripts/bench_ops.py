"""Speed figures of `conformance ops`: per-target wall time and pass counts for the whole node set.

    .venv/bin/python scripts/bench_ops.py [--target ort:cpu ...] [--out DIR] [--write-known DIR]

Each target runs every case of the set (node cases, then the on-disk sets) in the run session's
isolated child process, as `conformance ops` does; the wall time is per target, warm (the case
cache is built first, outside the timing) and includes starting the child process and every
case's load. It prints figures and asserts nothing about time. The machine it runs on is stated
with the figures (cores, load average at start and end): on a shared machine they vary.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT = ("ort:cpu", "reference", "tract", "openvino:cpu")


def main() -> int:
    from conformance.ops import judge
    from conformance.ops import known as known_lists
    from conformance.ops.cases import NODE, load_case_set
    from conformance.ops.execute import run_cases
    from conformance.run.session import RunRequest, RunSession
    from conformance.spec import PACK_DIR

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", action="append", dest="targets")
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-ops"))
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--write-known", type=Path, default=None)
    parser.add_argument(
        "--keep-rust-backtrace",
        action="store_true",
        help="keep RUST_BACKTRACE as the environment has it (1 makes each failing tract load "
        "about 100x slower: ~45 ms instead of ~0.4 ms, for the backtrace it captures)",
    )
    parser.add_argument(
        "--lean-ort",
        action="store_true",
        help="also run ORT in this process over onnx's in-memory node cases with the ONNX "
        "runner's own comparison (no isolation, sequences fed as lists: the issue's lean "
        "driver) and print which cases pass there but not in the suite's ort:cpu run, and why",
    )
    args = parser.parse_args()
    if not args.keep_rust_backtrace:
        os.environ["RUST_BACKTRACE"] = "0"  # inherited by the target child processes
    from conformance.ops.command import quiet_runtimes

    quiet_runtimes()  # as conformance ops does: ORT without spin-waiting
    targets = args.targets or list(DEFAULT)

    started = time.perf_counter()
    case_set = load_case_set()
    print(
        f"case set {case_set.name}: {len(case_set.cases)} cases {case_set.counts()} "
        f"(cache ready in {time.perf_counter() - started:.1f} s)"
    )
    print(
        f"machine: {os.cpu_count()} cores, load average at start {os.getloadavg()[0]:.2f} "
        "(shared with other engineers: figures vary); "
        f"RUST_BACKTRACE={os.environ.get('RUST_BACKTRACE', '')!r} for the target processes"
    )
    rows = []
    for target in targets:
        out = args.out / target.replace(":", "_")
        session = RunSession.open(
            RunRequest(PACK_DIR, out, targets=(target,), timeout_s=args.timeout, replace=True)
        )
        if not session.target(target).available:
            print(f"{target}: unavailable ({session.target(target).reason})")
            continue
        begin, cpu_begin = time.perf_counter(), _cpu()
        run = run_cases(session, case_set, case_set.cases, [target])
        session.finish("complete")
        wall, cpu = time.perf_counter() - begin, _cpu() - cpu_begin
        node = [r for r in run.records if r.set == NODE]
        node_wall = sum(r.duration_s for r in node)
        counts = Counter(r.category for r in run.records)
        rows.append(
            (
                target,
                session.target(target).version,
                sum(r.category == judge.PASSED for r in node),
                len(node),
                sum(r.category == judge.PASSED for r in run.records)
                - sum(r.category == judge.PASSED for r in node),
                len(run.records) - len(node),
                wall,
                node_wall,
                cpu,
                counts,
            )
        )
        if args.write_known is not None:
            version = session.target(target).version or ""
            listed = known_lists.known_from(run.records, target, version, case_set.name)
            path = known_lists.write_known(
                listed, args.write_known, "scripts/bench_ops.py " + " ".join(sys.argv[1:])
            )
            print(f"known-findings list: {path} ({len(listed.cases)} cases)")
        print(f"{target}: done in {wall:.1f} s; results {session.path}", flush=True)
    print()
    print(
        f"{'target':14} {'version':12} {'node passed':>12} {'on-disk passed':>15} "
        f"{'wall s (all)':>12} {'node cases s':>12} {'parent cpu s':>12}"
    )
    for target, version, np_, nt, dp, dt, wall, node_wall, cpu, _ in rows:
        print(
            f"{target:14} {version:12} {f'{np_}/{nt}':>12} {f'{dp}/{dt}':>15} "
            f"{wall:12.1f} {node_wall:12.1f} {cpu:12.1f}"
        )
    print(
        "wall s (all): every case of the set, the child's start and the results written; node "
        "cases s: the node cases' own durations; parent cpu s: user + system CPU of this process "
        "alone (reading cases, judging, writing results; the target's child is a fork of the "
        "fork server, not of this process, so its CPU is not in it)"
    )
    print()
    for target, *_, counts in rows:
        print(f"{target}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if args.lean_ort:
        ours = {}
        for target, *_ in rows:
            if target == "ort:cpu":
                document = json.loads((args.out / "ort_cpu" / "results.json").read_text())
                ours = {r["case"]: r for r in document["ops"]["cases"] if r["set"] == NODE}
        lean_ort(ours)
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    return 0


def lean_ort(ours: dict[str, dict]) -> None:
    """The issue's lean driver: onnx's in-memory node cases on one in-process ORT session
    each, judged by onnx.backend.test.runner's own assert_similar_outputs."""
    import warnings

    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, numpy_helper
    from onnx.backend.test.loader import load_model_tests
    from onnx.backend.test.runner import Runner

    from conformance.ops import judge
    from conformance.ops.cases import NODE

    def value(v: object) -> object:
        if isinstance(v, TensorProto):
            return numpy_helper.to_array(v)
        return v if isinstance(v, (list, dict)) or v is None else np.asarray(v)

    warnings.simplefilter("ignore")
    with np.errstate(all="ignore"):
        cases = load_model_tests(kind=NODE)
    begin = time.perf_counter()
    lean: dict[str, str] = {}
    for case in cases:
        assert case.model is not None and case.data_sets is not None
        options = ort.SessionOptions()
        options.log_severity_level = 4
        try:
            session = ort.InferenceSession(
                case.model.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
            wanted = [i.name for i in session.get_inputs()]
            for inputs, outputs in case.data_sets:
                given = dict(zip([i.name for i in case.model.graph.input], map(value, inputs)))
                got = session.run(None, {name: given[name] for name in wanted})
                Runner.assert_similar_outputs(
                    [value(v) for v in outputs], list(got), case.rtol, case.atol
                )
            lean[case.name] = judge.PASSED
        except Exception as error:  # noqa: BLE001 - a failing case, by the runner's rule
            lean[case.name] = type(error).__name__
    wall = time.perf_counter() - begin
    passed = sum(v == judge.PASSED for v in lean.values())
    print(f"\nlean in-process ORT, runner rule: {passed}/{len(lean)} node cases in {wall:.1f} s")
    if not ours:
        return
    only_lean = Counter(
        ours[k]["category"]
        for k, v in lean.items()
        if v == judge.PASSED and k in ours and ours[k]["category"] != judge.PASSED
    )
    only_ours = [
        (k, ours[k].get("judged_by", "values"), v)
        for k, v in lean.items()
        if v != judge.PASSED and k in ours and ours[k]["category"] == judge.PASSED
    ]
    print(f"passed by the lean driver only, by the suite's category: {dict(only_lean)}")
    print(f"passed by the suite only ({len(only_ours)}):")
    for name, judged_by, why in only_ours:
        print(f"  {name} (suite judged by {judged_by}; lean: {why})")


def _cpu() -> float:
    """User + system CPU seconds of this process and its reaped children."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


if __name__ == "__main__":
    sys.exit(main())
