"""Benchmarks in a child process: the timing happens where the runtime lives; a crash costs one case.

Why a child and not the caller's process: a runtime that aborts or hangs must cost one benchmark,
never the run (as for checks), and a cold start and its peak RSS need a process that has not yet
loaded the model. The child loads the artifact once (that load *is* the ColdStart measurement),
then serves one request per scenario and sends back raw per-call latencies; statistics are made
in the parent. The parent waits idle while the child measures. A child that dies or overruns the
rules' timeout is killed; the next scenario starts a fresh child (its load is not a cold start).
"""

from __future__ import annotations

from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from conformance.bench import guard, scenarios
from conformance.bench.cases import BenchCase, bench_target, environment
from conformance.bench.inputs import sample_pool
from conformance.bench.rules import BenchRules
from conformance.isolation import ChildProcess, serve_requests
from conformance.targets.interface import TargetError, TargetUnavailable

PROCESS = "isolated child process (spawn), one per case"


class CaseBench:
    """One case loaded in this process: the session, its rotating inputs, its cold start."""

    def __init__(self, case: BenchCase, rules: BenchRules, process: str = PROCESS) -> None:
        self.case, self.rules = case, rules
        target, threads = bench_target(case.target, rules.threads)
        reason = target.unavailable_reason()
        if reason:
            raise TargetUnavailable(reason)
        self.environment = environment(
            target, threads, rules.threads, process
        )  # imports the runtime
        self.pool = sample_pool(
            Path(case.artifact_dir),
            case.data_set,
            rules.rotating_inputs,
            rules.perturbation,
            rules.seed,
        )
        self.session, self.cold_start = scenarios.cold_start(
            target, Path(case.model_path), self.pool[0]
        )

    def serve(self, scenario: str, payload: Any) -> Any:
        if scenario == "SingleStream":
            return scenarios.single_stream(self.session, self.pool, self.rules.single_stream)
        if scenario == "Offline":
            return scenarios.offline_sweep(
                self.session, self.pool, self.rules.offline, self.cold_start["rss_before_load_mb"]
            )
        if scenario == "CachingGuard":
            return guard.measure(self.session, self.pool, self.rules.caching_guard)
        if scenario in ("LoadGen-Offline", "LoadGen-Server"):
            from conformance.bench.loadgen import run_loadgen

            return run_loadgen(
                self.session,
                self.pool,
                scenario.split("-", 1)[1],
                self.rules.loadgen,
                Path(payload),
            )
        raise TargetError(f"unknown scenario {scenario!r}")

    def close(self) -> None:
        self.session.close()


def _serve(conn: Connection, case: BenchCase, rules: BenchRules) -> None:
    """Child main: answer ("open") with the cold start, then (scenario, payload) with raw data."""
    loaded: list[CaseBench] = []

    def handle(request: str, payload: Any) -> Any:
        if request == "open":
            loaded[:] = [CaseBench(case, rules)]
            return {"cold_start": loaded[0].cold_start, "environment": loaded[0].environment}
        if not loaded:
            raise TargetError("the case is not loaded")
        return loaded[0].serve(request, payload)

    serve_requests(conn, handle)


class BenchWorker:
    """The parent's handle on one case's child process (see conformance.isolation.ChildProcess)."""

    def __init__(self, case: BenchCase, rules: BenchRules) -> None:
        self.case, self.rules = case, rules
        self._child: ChildProcess | None = None

    def open(self) -> dict[str, Any]:
        """Start a fresh child and load the case: returns its cold start and environment."""
        self.close()
        self._child = ChildProcess(_serve, (self.case, self.rules))
        return self._child.ask("open", None, self.rules.timeout_s)

    def request(self, scenario: str, payload: Any = None) -> Any:
        if self._child is None or not self._child.alive:
            self.open()
        assert self._child is not None
        return self._child.ask(scenario, payload, self.rules.timeout_s)

    def close(self) -> None:
        if self._child is not None:
            self._child.close()
        self._child = None
