"""Speed figures of `conformance ops`: per-target wall time and pass counts for the whole node set.

    .venv/bin/python scripts/bench_ops.py [--target ort:cpu ...] [--out DIR] [--write-known DIR]
    .venv/bin/python scripts/bench_ops.py --target none --lean-iree [--suite-results FILE]

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
from typing import Any

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
    parser.add_argument(
        "--lean-iree",
        action="store_true",
        help="also run the issue's lean driver for IREE: onnx's in-memory node cases, each "
        "compiled with the suite's importer and iree-compile flags (through the same compile "
        "cache), called with the data set's inputs in order, judged by the ONNX runner's "
        "assert_similar_outputs, one child process at a time (a crash or hang costs one case); "
        "prints the cases whose outcome differs from the suite's iree run",
    )
    parser.add_argument(
        "--lean-iree-target",
        default="iree:llvm-cpu",
        help="the target whose flags the lean IREE driver compiles with (e.g. "
        "iree:llvm-cpu:target=generic for the compiler's default CPU)",
    )
    parser.add_argument(
        "--suite-results",
        type=Path,
        default=None,
        help="a results file of `conformance ops --target iree:llvm-cpu` to diff the lean "
        "IREE driver against (default: this run's, when it ran iree:llvm-cpu)",
    )
    parser.add_argument("--case", action="append", dest="cases", help="lean IREE: only these")
    parser.add_argument(
        "--profile-reference",
        action="store_true",
        help="also profile onnx.reference over every case of the set in this process (load and "
        "run, as the reference target's child does): the slowest cases and the time spent in "
        "onnx.reference's own pooling modules",
    )
    args = parser.parse_args()
    if not args.keep_rust_backtrace:
        os.environ["RUST_BACKTRACE"] = "0"  # inherited by the target child processes
    from conformance.ops.command import quiet_runtimes

    quiet_runtimes()  # as conformance ops does: ORT without spin-waiting
    targets = args.targets or list(DEFAULT)
    targets = [t for t in targets if t != "none"]  # --target none: only the lean drivers

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
    if args.lean_iree:
        suite = args.suite_results
        if suite is None and any(t.startswith("iree:") for t in targets):
            ran = next(t for t in targets if t.startswith("iree:"))
            suite = args.out / ran.replace(":", "_") / "results.json"
        lean_iree(args.lean_iree_target, suite, args.timeout, args.cases)
    if args.profile_reference:
        profile_reference(case_set)
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


def profile_reference(case_set: Any) -> None:
    """cProfile over onnx.reference's load and run of every case: where its time goes."""
    import cProfile
    import warnings

    import numpy as np
    import onnx
    from onnx.reference import ReferenceEvaluator

    warnings.simplefilter("ignore")

    def run(case: Any) -> None:
        try:
            with np.errstate(all="ignore"):
                evaluator = ReferenceEvaluator(onnx.load(str(case.model_path)))
                for index in range(case.data_sets):
                    evaluator.run(None, case.feeds(index))
        except Exception:  # noqa: BLE001, S110 - a failing case: its time is what counts here
            pass

    cases = [case for case in case_set.cases if not case.untestable_reason()]
    plain: dict[str, float] = {}  # first pass, no profiler: the times without its overhead
    begin = time.perf_counter()
    for case in cases:
        start = time.perf_counter()
        run(case)
        plain[case.name] = time.perf_counter() - start
    plain_wall = time.perf_counter() - begin
    took: dict[str, float] = {}
    by_file: Counter[str] = Counter()
    lost: list[str] = []  # cases whose run replaced the profile hook (their time still counts)
    begin = time.perf_counter()
    for case in cases:
        profiler = cProfile.Profile()  # one per case: a case that resets the hook loses its own
        start = time.perf_counter()
        profiler.enable()
        run(case)
        profiler.disable()
        took[case.name] = time.perf_counter() - start
        profiler.create_stats()
        stats = getattr(profiler, "stats", {})
        if not stats:
            lost.append(case.name)
        for (filename, _, _), (_, _, own, _, _) in stats.items():
            name = Path(filename).name
            if "onnx/reference/ops" in filename and "pool" in name:
                by_file[name] += own
    wall = time.perf_counter() - begin
    if lost:
        print(f"profile lost for {len(lost)} case(s): {', '.join(lost[:5])}")
    slowest = sorted(plain.items(), key=lambda kv: -kv[1])[:8]
    print(
        f"\nonnx.reference in this process, no profiler: {len(plain)} cases in "
        f"{plain_wall:.1f} s; slowest: " + ", ".join(f"{k} {v:.2f} s" for k, v in slowest)
    )
    print(f"the 5 slowest together: {sum(v for _, v in slowest[:5]):.1f} s")
    slowest = sorted(took.items(), key=lambda kv: -kv[1])[:8]
    print(
        f"profiled (cProfile's overhead included): {len(took)} cases in {wall:.1f} s; "
        f"own time in its pooling modules {sum(by_file.values()):.1f} s "
        + "("
        + ", ".join(f"{k} {v:.1f} s" for k, v in by_file.most_common())
        + ")"
    )
    print("slowest cases profiled: " + ", ".join(f"{k} {v:.2f} s" for k, v in slowest[:5]))


def _lean_iree_case(target_name: str, case_name: str) -> tuple[str, str, str]:
    """One node case in the lean IREE driver's child: (outcome, detail, compile cache)."""
    import tempfile
    import warnings

    import numpy as np
    import onnx
    from onnx import numpy_helper
    from onnx.backend.test.runner import Runner

    from conformance.targets import compile_cache, get_target
    from conformance.targets.iree import COMPILER, CompilerFailed, _package_version

    warnings.simplefilter("ignore")
    state = _LEAN_IREE
    if "cases" not in state:
        from onnx.backend.test.loader import load_model_tests

        with np.errstate(all="ignore"):
            state["cases"] = {c.name: c for c in load_model_tests(kind="node")}
        state["target"] = get_target(target_name)
    case, target = state["cases"][case_name], state["target"]

    def value(v: object) -> object:
        if isinstance(v, onnx.TensorProto):
            return numpy_helper.to_array(v)
        return v if isinstance(v, (list, dict)) or v is None else np.asarray(v)

    def host(v: object) -> object:
        if isinstance(v, (list, tuple)):
            return [host(x) for x in v]
        return np.asarray(v.to_host() if hasattr(v, "to_host") else v)

    import iree.runtime

    workdir = Path(tempfile.mkdtemp(prefix="lean-iree-"))
    model_path = workdir / "model.onnx"
    model_path.write_bytes(case.model.SerializeToString())
    flags = target._compile_flags()
    key = compile_cache.cache_key(
        compile_cache.artifact_digest(model_path),
        COMPILER,
        _package_version("iree-base-compiler"),
        flags,
    )
    cache = compile_cache.CompileCache("iree")
    known = cache.failure(key) if compile_cache.enabled() else None
    if known is not None:
        return "compile-failed", str(known["message"]).splitlines()[0][:200], "hit"
    try:
        compiled = cache.compiled(
            key, lambda vmfb: target._compile(model_path, workdir, vmfb), workdir, "model.vmfb"
        )
    except CompilerFailed as failed:
        return "compile-failed", failed.message.splitlines()[0][:200], "miss"
    except Exception as error:  # noqa: BLE001 - the importer refused the model
        return "compile-failed", f"{type(error).__name__}: {error}"[:200], "miss"
    try:
        module = iree.runtime.VmModule.mmap(target._config.vm_instance, str(compiled.path))
        context = iree.runtime.SystemContext(config=target._config)
        context.add_vm_module(module)
        public = [f for f in module.function_names if not f.startswith("__") and "$" not in f]
        function = context.modules[module.name][public[0]]
        for inputs, outputs in case.data_sets or []:
            got = function(*[value(v) for v in inputs])
            got = list(got) if isinstance(got, (tuple, list)) else [got]
            Runner.assert_similar_outputs(
                [value(v) for v in outputs], [host(g) for g in got], case.rtol, case.atol
            )
    except Exception as error:  # noqa: BLE001 - a failing case, by the runner's rule
        first = (str(error).strip().splitlines() or [""])[0]
        return type(error).__name__, first[:200], compiled.cache
    return "passed", "", compiled.cache


_LEAN_IREE: dict[str, Any] = {}  # the child's cases and target, made once


def lean_iree(
    target_name: str, suite_results: Path | None, timeout: float, only: list[str] | None
) -> None:
    """The issue's lean IREE driver over onnx's in-memory node cases, each in a child process
    (reused while it lives; a crash or a hang costs that case and starts a new child), and the
    per-case differences from the suite's IREE run."""
    import concurrent.futures as futures
    import multiprocessing

    from conformance.ops.cases import NODE, load_case_set

    names = [c.name for c in load_case_set().cases if c.set == NODE]
    if only:
        names = [n for n in names if n in set(only)]
    context = multiprocessing.get_context("spawn")
    pool = futures.ProcessPoolExecutor(1, mp_context=context)
    lean: dict[str, tuple[str, str, str]] = {}
    begin = time.perf_counter()
    for name in names:
        future = pool.submit(_lean_iree_case, target_name, name)
        try:
            lean[name] = future.result(timeout=timeout)
        except futures.TimeoutError:
            lean[name] = ("timed-out", f"over {timeout:.0f} s", "")
        except futures.process.BrokenProcessPool as error:
            lean[name] = ("crashed", str(error)[:200], "")
        else:
            continue
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()  # the child this driver started for the case that hung or died
        pool.shutdown(wait=False, cancel_futures=True)
        pool = futures.ProcessPoolExecutor(1, mp_context=context)
    pool.shutdown()
    wall = time.perf_counter() - begin
    passed = sum(v[0] == "passed" for v in lean.values())
    caches = Counter(v[2] for v in lean.values())
    print(
        f"\nlean IREE ({target_name}), runner rule: {passed}/{len(lean)} node cases in "
        f"{wall:.1f} s (compile cache: {dict(caches)})"
    )
    print(
        "lean outcomes: "
        + ", ".join(f"{k} {v}" for k, v in Counter(v[0] for v in lean.values()).most_common())
    )
    if suite_results is None or not suite_results.exists():
        return
    document = json.loads(suite_results.read_text())
    ours = {r["case"]: r for r in document["ops"]["cases"] if r["set"] == NODE}
    only_lean = sorted(
        k
        for k, v in lean.items()
        if v[0] == "passed" and k in ours and ours[k]["category"] != "passed"
    )
    only_ours = sorted(
        k
        for k, v in lean.items()
        if v[0] != "passed" and k in ours and ours[k]["category"] == "passed"
    )
    suite_passed = sum(ours[k]["category"] == "passed" for k in lean if k in ours)
    print(f"suite ({suite_results}): {suite_passed} passed")
    print(f"passed by the lean driver only ({len(only_lean)}):")
    for name in only_lean:
        record = ours[name]
        problems = "; ".join(map(str, record.get("problems") or []))[:160]
        print(f"  {name}: suite {record['category']} ({problems or record.get('reason', '')})")
    print(f"passed by the suite only ({len(only_ours)}):")
    for name in only_ours:
        outcome, detail, _ = lean[name]
        print(f"  {name}: suite judged by {ours[name].get('judged_by')}; lean {outcome}: {detail}")


def _cpu() -> float:
    """User + system CPU seconds of this process and its reaped children."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


if __name__ == "__main__":
    sys.exit(main())
