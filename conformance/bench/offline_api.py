"""How Offline sends its batches: the runtime's asynchronous API where it has one.

- OpenVINO: the artifact compiled again with the target's own config plus
  ``PERFORMANCE_HINT=THROUGHPUT`` (the streams the runtime picks for throughput), its
  ``OPTIMAL_NUMBER_OF_INFER_REQUESTS`` requests kept full through ``start_async``/``wait``;
  throughput is samples over the wall time of the timed blocks (calls overlap, so summing their
  latencies would be wrong), each request's latency OpenVINO's own ``InferRequest.latency``.
- Everything else (ONNX Runtime, IREE, tract, ...): one ``session.run`` after another, as
  before; for ONNX Runtime the session's intra/inter-op settings are recorded.

``runner_for`` returns an ``OfflineRunner``: ``series(feeds, rules, benchmark, name)`` times one
batch size, ``api`` says (for the record's ``offline_api``) which API and settings were used,
``in_flight`` how many requests overlap (None: one call after another).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.bench.inputs import Feeds
from conformance.bench.rules import SeriesRules
from conformance.bench.scenarios import OfflineRunner, Series, timed_series
from conformance.targets.interface import Session, Target, TargetError


@dataclass
class SyncRunner:
    """One ``session.run`` after another (timed by pytest-benchmark, as SingleStream)."""

    session: Session
    api: dict[str, Any] = field(default_factory=dict)
    in_flight: int | None = None

    def series(
        self, feeds: list[Feeds], rules: SeriesRules, benchmark: Any = None, name: str = ""
    ) -> Series:
        return timed_series(self.session, feeds, rules, benchmark, name or "Offline")

    def close(self) -> None:
        pass


def _ort_settings(session: Session) -> dict[str, Any]:
    native = getattr(session, "native", None)
    if native is None:
        return {}
    options = native.get_session_options()
    return {
        "intra_op_num_threads": int(options.intra_op_num_threads),
        "inter_op_num_threads": int(options.inter_op_num_threads),
        "execution_mode": str(options.execution_mode).rsplit(".", 1)[-1],
        "graph_optimization_level": str(options.graph_optimization_level).rsplit(".", 1)[-1],
    }


class OpenVinoQueue:
    """OPTIMAL_NUMBER_OF_INFER_REQUESTS requests of the artifact compiled for throughput, kept
    full. Offline sends the same few batches again and again, so each request's input tensors
    are filled before the clock and between timed blocks, never inside them (before block k,
    request i holds batch ``(i + k * requests) % len(feeds)``, so every rotating batch is sent
    even with fewer requests than batches; the request's own tensors are written, never
    replaced: OpenVINO's CPU plugin with dynamic shapes once wrote a next input into a previous
    shared buffer, and a fresh Tensor per call crashed), and inside the clock a finished request
    is only restarted, ``start_async()`` with no arguments, its outputs left uncopied, as
    benchmark_app does. No AsyncInferQueue Python callback: with it, one `conformance bench` in
    six here hung in wait_all."""

    def __init__(self, target: Any, model_path: Path, input_names: list[str]) -> None:
        import openvino

        core = openvino.Core()
        config = {**target.compile_config(), "PERFORMANCE_HINT": "THROUGHPUT"}
        # an in-memory model: OpenVINO keys a path-compiled model's cache by its path
        self.compiled = core.compile_model(core.read_model(str(model_path)), "CPU", config)
        self.requests = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self.ring = [self.compiled.create_infer_request() for _ in range(self.requests)]
        self.input_names = list(input_names)  # the session's, in compiled.inputs order
        self.in_flight: int | None = self.requests
        self.loaded: list[Feeds] = []  # the batch each request holds, by slot
        self.sent: set[int] = set()  # which of the series' batches the timed blocks sent
        self.block_s = 0.05  # a timed block's planned length (its queries: at least 2 rings)
        self.api = {
            "api": "openvino InferRequest.start_async/wait over a ring of "
            "OPTIMAL_NUMBER_OF_INFER_REQUESTS requests, inputs pre-set outside the clock",
            "performance_hint": "THROUGHPUT",
            "infer_requests": self.requests,
            "inputs": "each request's own input tensors filled before the clock and between "
            "timed blocks (rotating batches), never inside them; start_async() without inputs; "
            "outputs not copied",
            "num_streams": _property(self.compiled, "NUM_STREAMS"),
            "inference_num_threads": _property(self.compiled, "INFERENCE_NUM_THREADS"),
            "inference_precision": _property(self.compiled, "INFERENCE_PRECISION_HINT"),
        }

    def preset(self, feeds: list[Feeds], first: int = 0) -> list[int]:
        """Request i's input tensors get batch ``feeds[(first + i) % len(feeds)]``, copied
        into the request's own tensors (reshaped first where the batch differs); untimed, with
        no request in flight. Returns the batches' indices, by slot."""
        for request in self.ring:
            request.wait()
        self.loaded = []
        chosen = [(first + slot) % len(feeds) for slot in range(self.requests)]
        for slot, request in enumerate(self.ring):
            feed = feeds[chosen[slot]]
            for index, name in enumerate(self.input_names):
                tensor, array = request.get_input_tensor(index), feed[name]
                if tuple(tensor.shape) != array.shape:
                    tensor.shape = array.shape
                tensor.data[...] = array
            self.loaded.append(feed)
        return chosen

    def _run(self, queries: int) -> tuple[list[float], float]:
        """``queries`` restarts through the ring; each request's own latency (OpenVINO's, from
        start to completion) and the wall time of the whole."""
        latencies: list[float] = []
        ring, requests = self.ring, self.requests
        busy = [False] * requests
        started = time.perf_counter_ns()
        for index in range(queries):
            slot = index % requests
            request = ring[slot]
            if busy[slot]:
                request.wait()
                latencies.append(request.latency * 1e-3)
            request.start_async()
            busy[slot] = True
        for slot, request in enumerate(ring):
            if busy[slot]:
                request.wait()
                latencies.append(request.latency * 1e-3)
        return latencies, (time.perf_counter_ns() - started) * 1e-9

    def series(
        self, feeds: list[Feeds], rules: SeriesRules, benchmark: Any = None, name: str = ""
    ) -> Series:
        """Inputs pre-set, warm up, then blocks of queries until min_queries and min_duration_s
        are reached (max_duration_s stops it), the inputs moved on by one ring's worth of
        batches between blocks; the wall time is the timed blocks' sum."""
        self.preset(feeds)
        self.sent = set()
        warmup = max(rules.warmup_queries, 2 * self.requests)
        _, warm_s = self._run(warmup)
        per_query_s = max(warm_s / warmup, 1e-7)
        block = max(2 * self.requests, int(self.block_s / per_query_s))
        latencies: list[float] = []
        wall_s = 0.0
        blocks = 0
        while len(latencies) < rules.min_queries or wall_s < rules.min_duration_s:
            self.sent.update(self.preset(feeds, blocks * self.requests))
            blocks += 1
            more, took_s = self._run(block)
            latencies += more
            wall_s += took_s
            if wall_s >= rules.max_duration_s:
                break
        engine = (
            f"openvino start_async/wait, {self.requests} requests in flight, inputs pre-set; "
            "per-request latency InferRequest.latency, throughput over time.perf_counter_ns "
            "wall time"
        )
        return Series(tuple(latencies), wall_s, engine, len(latencies), warmup)

    def close(self) -> None:
        for request in self.ring:
            request.wait()


def _property(compiled: Any, key: str) -> Any:
    try:
        value = compiled.get_property(key)
    except RuntimeError:
        return None
    if hasattr(value, "get_type_name"):
        return value.get_type_name()
    value = getattr(value, "name", value)
    return value if isinstance(value, (int, float, str, bool)) else str(value)


def runner_for(session: Session, target: Target, model_path: Path) -> OfflineRunner:
    """The runtime's async API where the suite knows it (OpenVINO's CPU plugin), else the
    synchronous ``session.run`` loop with what is known of its settings."""
    from conformance.targets.openvino import OpenVinoSession

    if type(session) is OpenVinoSession and getattr(target, "device", "") == "CPU":
        try:
            return OpenVinoQueue(target, model_path, session.input_names)
        except (RuntimeError, TargetError) as error:
            return SyncRunner(session, {"api": "session.run", "async_refused": str(error)})
    api: dict[str, Any] = {"api": "session.run (one batch after another)"}
    from conformance.targets.ort import OrtSession

    if type(session) is OrtSession:
        api = {
            "api": "onnxruntime InferenceSession.run (synchronous: ORT has no request queue)",
            **_ort_settings(session),
        }
    return SyncRunner(session, api)
