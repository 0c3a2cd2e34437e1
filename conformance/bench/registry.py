"""The scenario registry: one entry per scenario says how it is measured and how it is recorded.

Every caller goes through an entry instead of switching on the scenario's name: the runner
(`conformance bench`, `run --bench`, certify) asks a child process to ``measure`` and builds the
record in the parent; the pytest hooks measure in the pytest process with pytest-benchmark's
fixture. A new scenario is one ``Scenario(...)`` in ``_ENTRIES``: its measurement (a function of
the loaded case, run where the runtime lives), its record (a function of the raw result), the
rules section it carries, and how it shows in a progress line.

    scenario = registry.get("SingleStream")
    base = scenario.base(case, rules, environment)      # a BenchRecord, nothing measured yet
    raw = scenario.measure(loaded, scenario.request(base, run_dir, benchmark=fixture))
    record = scenario.record(base, raw, rules, run_dir)  # a frozen BenchRecord
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from conformance.bench import guard, records, scenarios
from conformance.bench.cases import BenchCase
from conformance.bench.inputs import Feeds
from conformance.bench.loadgen import LoadGenResult
from conformance.bench.records import BenchEnvironment, BenchRecord
from conformance.bench.rules import BenchRules
from conformance.bench.scenarios import BatchPart, ColdStart, SingleStreamRaw
from conformance.bench.table import first_line
from conformance.targets.interface import Session, Target

LOADGEN_DIR = "loadgen"  # LoadGen's logs: <run folder>/loadgen/<record id as a folder name>/
Raw = TypeVar("Raw")


class UnknownScenarioError(ValueError):
    pass


class Loaded(Protocol):
    """A case loaded where the runtime lives (worker.CaseBench)."""

    session: Session
    pool: list[Feeds]
    rules: BenchRules
    cold_start: ColdStart
    case: BenchCase
    target: Target


@dataclass(frozen=True)
class Measure:
    """What one measurement gets besides the loaded case (plain values: it crosses processes)."""

    benchmark: Any = None  # the pytest item's ``benchmark`` fixture; None: a standalone one
    name: str = ""  # the timed series' name; "" = the scenario's
    batch: int | None = None  # a per-batch scenario's one batch size (a pytest item); None: all
    log_dir: str | None = None  # where a scenario that writes logs writes them


@dataclass(frozen=True)
class Scenario(Generic[Raw]):
    name: str
    help: str
    # in the runtime's process; None: measured by loading the case in a fresh process (the
    # raw result is the load's ColdStart)
    measure: Callable[[Loaded, Measure], Raw] | None
    record: Callable[[BenchRecord, Raw, BenchRules, Path], BenchRecord]
    show: Callable[[BenchRecord], str]  # a measured record's figure in a progress line
    rules_section: Callable[[BenchRules], tuple[str, Mapping[str, Any]]] | None = None
    timed: bool = False  # times through pytest-benchmark: a pytest item gets its fixture
    per_batch: bool = False  # pytest: one item per Offline batch size (Measure.batch)
    loadgen: bool = False  # only when LoadGen is asked for (--loadgen)
    writes_logs: bool = False  # gets Measure.log_dir

    @property
    def at_load(self) -> bool:
        return self.measure is None

    def rules_in_force(self, rules: BenchRules) -> dict[str, Any]:
        """What a record carries of the rules: the common ones plus this scenario's section."""
        common = rules.common_in_force()
        if self.rules_section is not None:
            key, section = self.rules_section(rules)
            common[key] = section
        return common

    def base(
        self, case: BenchCase, rules: BenchRules, environment: BenchEnvironment | None
    ) -> BenchRecord:
        """The record before anything is measured (``environment``: None before a load)."""
        return records.base_record(case, self.name, rules, environment, self.rules_in_force(rules))

    def batches(self, rules: BenchRules) -> tuple[int | None, ...]:
        """pytest: the batch size of each item (None: one item for the whole scenario)."""
        return tuple(rules.offline.batch_sizes) if self.per_batch else (None,)

    def request(
        self,
        base: BenchRecord,
        run_dir: Path,
        benchmark: Any = None,
        name: str = "",
        batch: int | None = None,
    ) -> Measure:
        log_dir = (
            str(run_dir / LOADGEN_DIR / records.folder_name(base.id)) if self.writes_logs else None
        )
        return Measure(benchmark, name or self.name, batch, log_dir)

    def line(self, record: BenchRecord) -> str:
        """One progress line for a record of this scenario."""
        head = f"{record.scenario} {record.model}/{record.exporter} on {record.target}"
        if not record.measured:
            return f"{head}: {record.status} ({first_line(record.problems[0])})"
        return f"{head}: {self.show(record)}"


# --- the entries ---------------------------------------------------------------------------------


def _single_stream(loaded: Loaded, how: Measure) -> SingleStreamRaw:
    return scenarios.single_stream(
        loaded.session, loaded.pool, loaded.rules.single_stream, how.benchmark, how.name
    )


def _offline(loaded: Loaded, how: Measure) -> tuple[BatchPart, ...]:
    from conformance.bench.offline_api import runner_for

    baseline_mb = loaded.cold_start.rss_before_load_mb
    rules = loaded.rules.offline
    runner = runner_for(loaded.session, loaded.target, Path(loaded.case.model_path))
    try:
        if how.batch is None:
            return scenarios.offline_sweep(loaded.session, loaded.pool, rules, baseline_mb, runner)
        part = scenarios.offline_part(
            loaded.session,
            loaded.pool,
            how.batch,
            rules,
            baseline_mb,
            how.benchmark,
            how.name,
            runner,
        )
        return (part,)
    finally:
        runner.close()


def _caching_guard(loaded: Loaded, how: Measure) -> guard.GuardRaw:
    return guard.measure(loaded.session, loaded.pool, loaded.rules.caching_guard)


def _loadgen(kind: str) -> Callable[[Loaded, Measure], LoadGenResult]:
    def measure(loaded: Loaded, how: Measure) -> LoadGenResult:
        from conformance.bench.loadgen import run_loadgen

        assert how.log_dir is not None, "a LoadGen scenario writes logs"
        return run_loadgen(
            loaded.session, loaded.pool, kind, loaded.rules.loadgen, Path(how.log_dir)
        )

    return measure


def _show_single_stream(record: BenchRecord) -> str:
    figures = record.figures
    assert isinstance(figures, records.SingleStreamFigures)
    line = f"p50 {figures.latency_ms['p50']:.4f} ms end-to-end over {figures.queries} queries"
    if figures.runtime_latency_ms is not None:
        line += f", runtime p50 {figures.runtime_latency_ms['p50']:.4f} ms"
    if figures.tool is not None:
        line += f", {figures.tool.tool} p50 {figures.tool.p50_ms:.4f} ms"
    return line


def _show_offline(record: BenchRecord) -> str:
    figures = record.figures
    assert isinstance(figures, records.OfflineFigures)
    best = max(figures.throughput, key=lambda e: e.samples_per_s)
    line = f"up to {best.samples_per_s:.0f} samples/s (batch {best.batch})"
    api = (figures.offline_api or {}).get("api")
    return f"{line} through {api}" if api else line


def _show_guard(record: BenchRecord) -> str:
    figures = record.figures
    assert isinstance(figures, records.GuardFigures)
    return "FLAGGED" if figures.caching_guard.flagged else "not flagged"


def _show_ok(record: BenchRecord) -> str:
    return "ok"


_ENTRIES: tuple[Scenario[Any], ...] = (
    Scenario[ColdStart](
        "ColdStart",
        "session creation, first inference and peak RSS, in a fresh process",
        measure=None,
        record=lambda base, raw, rules, run_dir: records.cold_start(base, raw, rules),
        show=_show_ok,
    ),
    Scenario[SingleStreamRaw](
        "SingleStream",
        "batch 1, one query after another: end-to-end and runtime latency percentiles",
        measure=_single_stream,
        record=lambda base, raw, rules, run_dir: records.single_stream(base, raw, rules),
        show=_show_single_stream,
        rules_section=lambda rules: ("SingleStream", asdict(rules.single_stream)),
        timed=True,
    ),
    Scenario[Sequence[BatchPart]](
        "Offline",
        "throughput at each batch size of the rules",
        measure=_offline,
        record=lambda base, raw, rules, run_dir: records.offline(base, raw, rules),
        show=_show_offline,
        rules_section=lambda rules: ("Offline", asdict(rules.offline)),
        timed=True,
        per_batch=True,
    ),
    Scenario[guard.GuardRaw](
        "CachingGuard",
        "repeating one sample must not be markedly faster, nor answer stale outputs",
        measure=_caching_guard,
        record=lambda base, raw, rules, run_dir: records.caching_guard(base, raw, rules),
        show=_show_guard,
        rules_section=lambda rules: ("CachingGuard", asdict(rules.caching_guard)),
    ),
    *(
        Scenario[LoadGenResult](
            f"LoadGen-{kind}",
            f"MLPerf LoadGen's {kind} scenario (mlcommons-loadgen)",
            measure=_loadgen(kind),
            record=lambda base, raw, rules, run_dir: records.loadgen(base, raw, run_dir),
            show=_show_ok,
            rules_section=lambda rules: ("loadgen", asdict(rules.loadgen)),
            loadgen=True,
            writes_logs=True,
        )
        for kind in ("Offline", "Server")
    ),
)
REGISTRY: dict[str, Scenario[Any]] = {s.name: s for s in _ENTRIES}
SCENARIOS: tuple[str, ...] = tuple(n for n, s in REGISTRY.items() if not s.loadgen)
LOADGEN_SCENARIOS: tuple[str, ...] = tuple(n for n, s in REGISTRY.items() if s.loadgen)


def get(name: str) -> Scenario[Any]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownScenarioError(
            f"unknown scenario {name!r}; the scenarios are {', '.join(REGISTRY)}"
        ) from None


def chosen(names: Iterable[str] = (), loadgen: bool = False) -> list[Scenario[Any]]:
    """The scenarios to run, in registry order: ``names`` (empty: every scenario that is not
    LoadGen's), plus LoadGen's when ``loadgen``."""
    wanted = set(names)
    picked = [s for s in REGISTRY.values() if not s.loadgen and (not wanted or s.name in wanted)]
    return picked + ([s for s in REGISTRY.values() if s.loadgen] if loadgen else [])


def rules_in_force(name: str, rules: BenchRules) -> dict[str, Any]:
    """The rules a record of ``name`` carries; the common ones for a name not in the registry."""
    scenario = REGISTRY.get(name)
    return scenario.rules_in_force(rules) if scenario else rules.common_in_force()
