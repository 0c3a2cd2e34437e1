"""Benchmarks in a child process: timing happens where the runtime lives; a crash costs one case.

Why a child and not the caller's process: a runtime that aborts or hangs must cost one benchmark,
never the run (as for checks), and a cold start and its peak RSS need a process that has not yet
loaded the model. The child loads the artifact once (that load *is* the ColdStart measurement),
then serves one request per scenario and sends back raw per-call latencies; statistics are made
in the parent. The parent waits idle while the child measures. A child that dies or overruns the
rules' timeout is killed; the next scenario starts a fresh child (its load is not a cold start).
"""

from __future__ import annotations

from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from conformance.bench import registry, scenarios
from conformance.bench.cases import BenchCase, bench_target, environment
from conformance.bench.inputs import sample_pool
from conformance.bench.records import BenchEnvironment, ToolFigure
from conformance.bench.registry import Measure, UnknownScenarioError
from conformance.bench.rules import BenchRules
from conformance.bench.scenarios import ColdStart
from conformance.isolation import ChildProcess, serve_requests
from conformance.targets.interface import TargetError, TargetUnavailable

PROCESS = "isolated child process (spawn), one per case"
OPEN = "open"
TOOL = "tool"  # the runtime's own benchmark tool on the loaded case (conformance.bench.tools)


@dataclass(frozen=True)
class Opened:
    """What loading a case in a fresh child measured: its cold start, and its environment."""

    cold_start: ColdStart
    environment: BenchEnvironment


class CaseBench:
    """One case loaded in this process: the session, its rotating inputs, its cold start."""

    def __init__(self, case: BenchCase, rules: BenchRules, process: str = PROCESS) -> None:
        self.case, self.rules = case, rules
        target, threads = bench_target(case.target, rules.threads)
        self.target = target
        reason = target.unavailable_reason()
        if reason:
            raise TargetUnavailable(reason)
        self.environment = environment(target, threads, rules.threads, process)  # imports it
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

    def serve(self, name: str, how: Measure) -> object:
        """Measure scenario ``name`` on this loaded case: its raw result (see the registry)."""
        try:
            scenario = registry.get(name)
        except UnknownScenarioError as error:
            raise TargetError(str(error)) from None
        if scenario.measure is None:
            raise TargetError(f"{name} is measured by the load itself, not on a loaded case")
        return scenario.measure(self, how)

    def tool(self, folder: Path) -> ToolFigure:
        """The runtime's own tool on this case (same artifact, input, threads, precision)."""
        from conformance.bench import tools

        return tools.compare(
            self.target, self.session, Path(self.case.model_path), self.pool, folder
        )

    def close(self) -> None:
        self.session.close()


def _serve(conn: Connection, case: BenchCase, rules: BenchRules) -> None:
    """Child main: answer OPEN with an Opened, then (scenario, Measure) with its raw result."""
    loaded: list[CaseBench] = []

    def handle(request: str, payload: object) -> object:
        if request == OPEN:
            loaded[:] = [CaseBench(case, rules)]
            return Opened(loaded[0].cold_start, loaded[0].environment)
        if not loaded:
            raise TargetError("the case is not loaded")
        if request == TOOL:
            return loaded[0].tool(Path(str(payload)))
        if not isinstance(payload, Measure):
            raise TargetError(f"a scenario request carries a Measure, not {type(payload)}")
        return loaded[0].serve(request, payload)

    serve_requests(conn, handle)


class BenchWorker:
    """The parent's handle on one case's child process (see conformance.isolation.ChildProcess)."""

    def __init__(self, case: BenchCase, rules: BenchRules) -> None:
        self.case, self.rules = case, rules
        self._child: ChildProcess | None = None

    def open(self) -> Opened:
        """Start a fresh child and load the case: returns its cold start and environment."""
        self.close()
        self._child = ChildProcess(_serve, (self.case, self.rules))
        opened = self._child.ask(OPEN, None, self.rules.timeout_s)
        assert isinstance(opened, Opened)
        return opened

    def request(self, scenario: str, how: Measure) -> object:
        """The raw result of ``scenario`` measured in the child (a fresh one after a crash)."""
        if self._child is None or not self._child.alive:
            self.open()
        assert self._child is not None
        return self._child.ask(scenario, how, self.rules.timeout_s)

    def tool(self, folder: Path) -> ToolFigure:
        """The runtime's own tool's figure on the case, run from its child (which holds the
        compiled module the tool needs)."""
        if self._child is None or not self._child.alive:
            self.open()
        assert self._child is not None
        figure = self._child.ask(TOOL, str(folder), self.rules.timeout_s)
        assert isinstance(figure, ToolFigure)
        return figure

    def close(self) -> None:
        if self._child is not None:
            self._child.close()
        self._child = None
