"""The runtimes' own benchmark tools, run on the same artifact, shape, threads and precision.

- OpenVINO: ``benchmark_app`` (in the openvino wheel), ``-api sync -hint none -nthreads N
  -nstreams 1 -data_shape ... -infer_precision f32 -inference_only true`` with the suite's first
  input as ``.npy`` files: its median latency. For Offline, ``-api async -hint throughput``: its
  throughput (FPS = samples/s).
- IREE: ``iree-benchmark-module`` (iree-base-runtime) on the vmfb the session runs, the same
  entry function and inputs, the target's driver (``--device=local-task`` with its thread flag
  ``--task_topology_max_group_count=N``, or ``--device=local-sync``), one call per repetition:
  its per-call median.
- ONNX Runtime ships no such tool; its reference is a bare loop of ``run_with_iobinding`` on
  bound inputs, ``time.perf_counter_ns`` around each call, nothing else.

Each returns a ``ToolFigure`` (records.py): the tool, its version, the command as a shell line,
its p50 and what it measures. Parsers take the tools' real output text (tested on it).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from conformance.bench import bound
from conformance.bench.inputs import Feeds
from conformance.bench.records import ToolFigure
from conformance.targets.interface import Session, TargetError

TOOL_TIMEOUT_S = 300.0
_UNITS_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


class ToolError(TargetError):
    """A runtime's tool is missing, failed, or printed nothing this module can read."""


def tool_path(name: str) -> str:
    """The tool beside this interpreter (the venv's bin) or on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise ToolError(f"{name} is not installed here (not beside {sys.executable}, not on PATH)")
    return found


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def _run(command: list[str], timeout_s: float = TOOL_TIMEOUT_S) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ToolError(f"{shlex.join(command)}: {error}") from error
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        raise ToolError(f"{shlex.join(command)} exited {done.returncode}: " + " | ".join(tail))
    return done.stdout + done.stderr


# --- OpenVINO benchmark_app -----------------------------------------------------------------


@dataclass(frozen=True)
class BenchmarkAppResult:
    median_ms: float | None
    throughput_fps: float | None
    iterations: int | None


def parse_benchmark_app(text: str) -> BenchmarkAppResult:
    """benchmark_app's summary: ``Median:  31.02 us``, ``Throughput:  26775.94 FPS``,
    ``Count:  53552 iterations``. ToolError when neither figure is there."""
    median = re.search(r"Median:\s+([0-9.]+)\s*(ns|us|ms|s)\b", text)
    fps = re.search(r"Throughput:\s+([0-9.]+)\s*FPS", text)
    count = re.search(r"Count:\s+([0-9]+)\s+iterations", text)
    if not median and not fps:
        raise ToolError("benchmark_app printed no Median nor Throughput line")
    return BenchmarkAppResult(
        float(median[1]) * _UNITS_MS[median[2]] if median else None,
        float(fps[1]) if fps else None,
        int(count[1]) if count else None,
    )


def _npy_inputs(feeds: Feeds, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for index, (name, array) in enumerate(feeds.items()):
        files[name] = folder / f"input_{index}.npy"
        np.save(files[name], np.ascontiguousarray(array))
    return files


def _shape(array: np.ndarray) -> str:
    return "[" + ",".join(str(d) for d in array.shape) + "]"


# benchmark_app takes a 4-d input for an image and would feed it u8: each input's own type
_OV_TYPES = {"float32": "f32", "float16": "f16", "float64": "f64", "int64": "i64", "int32": "i32"}
_OV_TYPES.update({"int8": "i8", "uint8": "u8", "bool": "boolean"})


def _io_precisions(feeds: Feeds) -> str:
    return ",".join(f"{n}:{_OV_TYPES.get(str(a.dtype), str(a.dtype))}" for n, a in feeds.items())


def benchmark_app_command(
    model_path: Path,
    feeds: Feeds,
    folder: Path,
    threads: int,
    precision: str = "f32",
    seconds: float = 2.0,
    throughput: bool = False,
) -> list[str]:
    """SingleStream: sync, one stream, ``threads`` (0: the runtime's default), inference only,
    the suite's input. ``throughput``: async with the throughput hint (benchmark_app then
    refuses -nthreads/-nstreams: the runtime's default threads), the suite's batch, inputs set
    once (the suite's Offline pre-sets its requests' inputs the same way)."""
    files = _npy_inputs(feeds, folder)
    command = [tool_path("benchmark_app"), "-m", str(model_path), "-d", "CPU"]
    command += ["-data_shape", ",".join(f"{n}{_shape(a)}" for n, a in feeds.items())]
    # the batch axis (axis 0 in every pack model): without it benchmark_app counts one sample
    # per request, so its FPS would be batches per second
    command += ["-layout", ",".join(f"{n}[N...]" for n in feeds)]
    command += ["-iop", _io_precisions(feeds)]
    command += ["-infer_precision", precision, "-t", f"{max(1, round(seconds))}"]
    command += ["-inference_only", "true", "-i", *(f"{n}:{p}" for n, p in files.items())]
    if throughput:
        return command + ["-api", "async", "-hint", "throughput"]
    command += ["-api", "sync", "-hint", "none", "-nstreams", "1"]
    if threads > 0:
        command += ["-nthreads", str(threads)]
    return command


def benchmark_app(
    model_path: Path,
    feeds: Feeds,
    folder: Path,
    threads: int,
    precision: str = "f32",
    seconds: float = 2.0,
) -> ToolFigure:
    command = benchmark_app_command(model_path, feeds, folder, threads, precision, seconds)
    result = parse_benchmark_app(_run(command))
    if result.median_ms is None:
        raise ToolError("benchmark_app printed no Median line")
    return ToolFigure(
        tool="benchmark_app",
        version=_version("openvino"),
        command=shlex.join(command),
        p50_ms=result.median_ms,
        measures="median latency of InferRequest.infer() in C++ (sync, one request, "
        "inputs set once before its loop)",
    )


def benchmark_app_throughput(
    model_path: Path, feeds: Feeds, folder: Path, precision: str = "f32", seconds: float = 2.0
) -> tuple[float, str]:
    """benchmark_app's Offline figure: samples/s with -hint throughput, and its command."""
    command = benchmark_app_command(model_path, feeds, folder, 0, precision, seconds, True)
    result = parse_benchmark_app(_run(command))
    if result.throughput_fps is None:
        raise ToolError("benchmark_app printed no Throughput line")
    return result.throughput_fps, shlex.join(command)


# --- IREE iree-benchmark-module ---------------------------------------------------------------


def parse_iree_benchmark(text: str) -> float:
    """The median (ms) over repetitions of iree-benchmark-module's per-call time, read from its
    ``--benchmark_format=json`` output (Google Benchmark's; the JSON starts at the first '{')."""
    start = text.find("{")
    try:
        data = json.loads(text[start:]) if start >= 0 else None
    except json.JSONDecodeError as error:
        raise ToolError(f"iree-benchmark-module's JSON did not parse: {error}") from error
    if not isinstance(data, dict) or not data.get("benchmarks"):
        raise ToolError("iree-benchmark-module printed no benchmarks")
    rows = data["benchmarks"]
    median = [r for r in rows if r.get("aggregate_name") == "median"]
    runs = [r for r in rows if r.get("run_type", "iteration") == "iteration"]
    if median:
        row = median[0]
        return float(row["real_time"]) * _UNITS_MS[row.get("time_unit", "ns")]
    times = [float(r["real_time"]) * _UNITS_MS[r.get("time_unit", "ns")] for r in runs]
    return float(np.median(times))


PER_CALL = ("--benchmark_min_time=1x", "--benchmark_repetitions=300")  # median per call
BATCHED = ("--benchmark_min_time=0.2s", "--benchmark_repetitions=5")  # the tool's usual way


def iree_benchmark_command(
    vmfb: Path,
    function: str,
    feeds: Feeds,
    folder: Path,
    flags: Sequence[str],
    repetitions: Sequence[str] = PER_CALL,
    device: str = "local-task",
) -> list[str]:
    """One call per repetition (PER_CALL): the median over repetitions is a per-call median,
    the suite's statistic; BATCHED gives the median of per-repetition means instead."""
    files = _npy_inputs(feeds, folder)
    return [
        tool_path("iree-benchmark-module"),
        f"--module={vmfb}",
        f"--device={device}",
        f"--function={function}",
        *(f"--input=@{path}" for path in files.values()),
        *flags,
        *repetitions,
        "--benchmark_format=json",
    ]


def iree_benchmark_module(
    session: Session,
    feeds: Feeds,
    folder: Path,
    flags: Sequence[str],
    device: str = "local-task",
) -> ToolFigure:
    vmfb = getattr(session, "vmfb_path", None)
    function = getattr(session, "entry_function", None)
    if vmfb is None or function is None:
        raise ToolError("this IREE session does not say which vmfb and function it runs")
    command = iree_benchmark_command(Path(vmfb), function, feeds, folder, flags, PER_CALL, device)
    p50_ms = parse_iree_benchmark(_run(command))
    batched = iree_benchmark_command(Path(vmfb), function, feeds, folder, flags, BATCHED, device)
    return ToolFigure(
        tool="iree-benchmark-module",
        version=_version("iree-base-runtime"),
        command=shlex.join(command),
        p50_ms=p50_ms,
        measures="median wall time of one call over 300 repetitions of one call each (Google "
        "Benchmark), inputs on the device; other_p50_ms: its usual figure, the median of 5 "
        "means over 0.2 s of calls, which counts every stall of a shared machine",
        other_p50_ms={" ".join(BATCHED): parse_iree_benchmark(_run(batched))},
    )


# --- ONNX Runtime: a bare bound loop ---------------------------------------------------------


def ort_bound_loop(session: Session, pool: list[Feeds], seconds: float = 1.0) -> ToolFigure:
    """``run_with_iobinding`` on bound inputs, perf_counter_ns around each call and nothing
    else, rotating as the suite does, for ``seconds`` after 10 warm-up calls."""
    calls = bound.bind(session, pool)
    if calls is None:
        raise ToolError(f"{type(session).__name__} has no IO binding")
    for item in calls.items[:10]:
        calls.call(item)
    latencies: list[int] = []
    run, items = calls.call, calls.items
    deadline = time.perf_counter_ns() + int(seconds * 1e9)
    index = 0
    while time.perf_counter_ns() < deadline or len(latencies) < 64:
        item = items[index % len(items)]
        start = time.perf_counter_ns()
        run(item)
        latencies.append(time.perf_counter_ns() - start)
        index += 1
    return ToolFigure(
        tool="onnxruntime bound loop",
        version=_version("onnxruntime"),
        command="for binding in rotation: t = perf_counter_ns(); "
        "session.run_with_iobinding(binding); dt = perf_counter_ns() - t",
        p50_ms=float(np.median(latencies)) / 1e6,
        measures="median of a bare Python loop of InferenceSession.run_with_iobinding on "
        f"inputs bound beforehand ({len(latencies)} calls)",
    )


# --- which tool for which target ----------------------------------------------------------------


def runtime_of(target_name: str) -> str | None:
    base = target_name.split(":", 1)[0]
    return {"ort": "onnxruntime", "openvino": "openvino", "iree": "iree"}.get(base)


def compare(
    target: Any,
    session: Session,
    model_path: Path,
    pool: list[Feeds],
    folder: Path,
    seconds: float = 2.0,
) -> ToolFigure:
    """The runtime's own tool on ``session``'s artifact, with the target's threads and precision
    (``target``: the conformance Target the session was loaded from)."""
    runtime = runtime_of(target.name)
    threads = int(target.options.get("threads") or 0)
    if runtime == "openvino":
        precision = str(target.options.get("precision") or "f32")
        return benchmark_app(model_path, pool[0], folder, threads, precision, seconds)
    if runtime == "iree":
        options = target.info().options
        flags = list(options.get("runtime_flags") or [])
        device = str(options.get("driver") or "local-task")
        return iree_benchmark_module(session, pool[0], folder, flags, device)
    if runtime == "onnxruntime":
        return ort_bound_loop(session, pool, seconds / 2)
    raise ToolError(f"no runtime tool to compare {target.name} with")
