"""Benchmark records: frozen, typed values built from the raw measurements, and their JSON.

One record per (case, scenario, mode); its ``id`` is stable, so writing a record again (a rerun
into the same run folder) replaces the old one. ``status`` is one of ``STATUSES``: the checks'
vocabulary (conformance.results.records) for what went wrong, and ``MEASURED`` (JSON ``"ok"``) for
a benchmark that measured; ``problems`` says why. The figures are present only where they were
measured: ``figures`` is the scenario's own frozen section (``SingleStreamFigures``,
``OfflineFigures``, ...), or None for a record that measured nothing.

``as_dict`` writes exactly the JSON of results schema 1 (the keys and their order as before the
records were typed); ``from_dict`` reads it back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeAlias

from conformance.bench import guard, stats
from conformance.bench.cases import BenchCase, BenchEnvironment
from conformance.bench.guard import GuardRaw, GuardVerdict
from conformance.bench.loadgen import LoadGenResult
from conformance.bench.rules import BenchRules
from conformance.bench.scenarios import BatchPart, ColdStart, Series, SingleStreamRaw
from conformance.results.records import (
    BENCH_STATUSES,
    CRASHED,
    ERROR,
    MEASURED,
    SKIPPED,
    TIMED_OUT,
)

STATUSES = BENCH_STATUSES  # MEASURED ("ok" in JSON), ERROR, CRASHED, TIMED_OUT, SKIPPED
__all__ = [
    "CRASHED",
    "ERROR",
    "MEASURED",
    "SKIPPED",
    "STATUSES",
    "TIMED_OUT",
    "BatchPart",
    "BenchEnvironment",
    "BenchInputs",
    "BenchRecord",
    "ColdStart",
    "ColdStartFigures",
    "Figures",
    "GuardFigures",
    "GuardRaw",
    "GuardVerdict",
    "Histogram",
    "LoadGenFigures",
    "LoadGenResult",
    "OfflineFigures",
    "Series",
    "SingleStreamFigures",
    "Throughput",
    "ToolFigure",
    "base_record",
    "caching_guard",
    "cold_start",
    "folder_name",
    "latency_figures",
    "loadgen",
    "offline",
    "record_id",
    "single_stream",
    "throughput_entry",
    "with_tool",
]
Json: TypeAlias = dict[str, Any]


def record_id(case: BenchCase, scenario: str, mode: str) -> str:
    return f"{case.key}-{scenario}-{mode}"


def folder_name(record_id: str) -> str:
    """A record id as a portable folder name (target names carry ':')."""
    return re.sub(r"[^A-Za-z0-9._=-]", "_", record_id)


# --- the record's sections ---------------------------------------------------------------------


@dataclass(frozen=True)
class BenchInputs:
    data_set: int
    seq_len: int | None
    rotating_inputs: int


@dataclass(frozen=True)
class Histogram:
    edges_ms: tuple[float, ...]
    counts: tuple[int, ...]

    def as_dict(self) -> Json:
        return {"edges_ms": list(self.edges_ms), "counts": list(self.counts)}


@dataclass(frozen=True)
class Throughput:
    """One batch size's throughput. samples_per_s: MLPerf's definition, all samples over all time
    (stalls included); samples_per_s_at_p50: batch / p50 latency, which stalls barely move."""

    batch: int
    samples_per_s: float
    queries: int
    p50_ms: float | None = None  # None (absent in JSON) for LoadGen's figure
    samples_per_s_at_p50: float | None = None  # None where requests overlapped (async)
    duration_s: float | None = None
    requests: int | None = None  # requests in flight (an async API); None: one after another

    def as_dict(self) -> Json:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class ToolFigure:
    """A runtime's own benchmark tool on the same artifact, shape, threads and precision
    (``conformance bench --compare-tools``; conformance.bench.tools runs it)."""

    tool: str  # e.g. "benchmark_app", "iree-benchmark-module", "onnxruntime bound loop"
    version: str
    command: str  # what was run, as a shell line
    p50_ms: float  # the tool's own median
    measures: str  # what the tool's figure is, in words
    ratio: float | None = None  # the suite's runtime p50 / the tool's p50
    other_p50_ms: Mapping[str, float] | None = None  # the same tool otherwise set: flags -> p50

    def as_dict(self) -> Json:
        data = {k: v for k, v in asdict(self).items() if v is not None}
        if self.other_p50_ms is not None:
            data["other_p50_ms"] = dict(self.other_p50_ms)
        return data


@dataclass(frozen=True)
class SingleStreamFigures:
    """``latency_ms`` (and ``valid``, ``queries``, the histogram) is the end-to-end latency;
    ``runtime_latency_ms`` the runtime's bound call (absent where the session has none);
    ``latency_kinds`` names what each of the two is."""

    latency_ms: Mapping[str, float]  # PERCENTILES, mean, min, max
    valid: Mapping[str, bool]  # percentile -> measured with enough queries
    queries: int
    duration_s: float
    latency_histogram: Histogram
    latency_kinds: Mapping[str, str] | None = None  # "latency_ms" / "runtime_latency_ms" -> what
    runtime_latency_ms: Mapping[str, float] | None = None
    runtime_valid: Mapping[str, bool] | None = None
    runtime_queries: int | None = None
    tool: ToolFigure | None = None

    def as_dict(self) -> Json:
        data: Json = {
            "latency_ms": dict(self.latency_ms),
            "valid": dict(self.valid),
            "queries": self.queries,
            "duration_s": self.duration_s,
            "latency_histogram": self.latency_histogram.as_dict(),
        }
        if self.latency_kinds is not None:
            data["latency_kinds"] = dict(self.latency_kinds)
        if self.runtime_latency_ms is not None:
            data["runtime_latency_ms"] = dict(self.runtime_latency_ms)
            data["runtime_valid"] = dict(self.runtime_valid or {})
            data["runtime_queries"] = self.runtime_queries
        if self.tool is not None:
            data["tool"] = self.tool.as_dict()
        return data


@dataclass(frozen=True)
class OfflineFigures:
    throughput: tuple[Throughput, ...]
    queries: int
    duration_s: float
    offline_api: Mapping[str, Any] | None = None  # the API the batches went through, settings

    def as_dict(self) -> Json:
        data: Json = {
            "throughput": [t.as_dict() for t in self.throughput],
            "queries": self.queries,
            "duration_s": self.duration_s,
        }
        if self.offline_api is not None:
            data["offline_api"] = dict(self.offline_api)
        return data


@dataclass(frozen=True)
class ColdStartFigures:
    cold_start: ColdStart
    duration_s: float

    def as_dict(self) -> Json:
        return {"cold_start": asdict(self.cold_start), "duration_s": self.duration_s}


@dataclass(frozen=True)
class GuardFigures:
    caching_guard: GuardVerdict
    queries: int
    duration_s: float

    def as_dict(self) -> Json:
        return {
            "caching_guard": self.caching_guard.as_dict(),
            "queries": self.queries,
            "duration_s": self.duration_s,
        }


@dataclass(frozen=True)
class LoadGenFigures:
    loadgen: LoadGenResult  # LoadGen's own figures as parsed from its detail log
    latency_ms: Mapping[str, float]
    duration_s: float
    queries: int | None = None
    throughput: tuple[Throughput, ...] | None = None

    def as_dict(self) -> Json:
        data: Json = {
            "loadgen": self.loadgen.as_dict(),
            "latency_ms": dict(self.latency_ms),
            "duration_s": self.duration_s,
        }
        if self.queries is not None:
            data["queries"] = self.queries
        if self.throughput is not None:
            data["throughput"] = [t.as_dict() for t in self.throughput]
        return data


Figures: TypeAlias = (
    SingleStreamFigures | OfflineFigures | ColdStartFigures | GuardFigures | LoadGenFigures
)


@dataclass(frozen=True)
class BenchRecord:
    id: str
    model: str
    exporter: str
    target: str
    scenario: str
    mode: str
    status: str  # one of STATUSES
    problems: tuple[str, ...]
    rules: Mapping[str, Any]  # the rules in force (registry.Scenario.rules_in_force)
    environment: BenchEnvironment | None  # None: failed before the case was loaded
    inputs: BenchInputs
    figures: Figures | None = field(default=None)

    @property
    def measured(self) -> bool:
        return self.status == MEASURED

    @property
    def flagged(self) -> bool:
        """Not measured, or measured and flagged by the caching guard: the command exits 1."""
        if not self.measured:
            return True
        return isinstance(self.figures, GuardFigures) and self.figures.caching_guard.flagged

    def failed(self, status: str, message: str) -> BenchRecord:
        """This record with nothing measured: ``status`` and the one problem saying why."""
        return replace(self, status=status, problems=(message,), figures=None)

    def measured_as(self, figures: Figures, problems: Sequence[str] = ()) -> BenchRecord:
        return replace(self, figures=figures, problems=tuple(problems))

    def with_timer(self, engine: str) -> BenchRecord:
        assert self.environment is not None, "a timed record has a loaded case's environment"
        return replace(self, environment=replace(self.environment, timer=engine))

    def as_dict(self) -> Json:
        data: Json = {
            "id": self.id,
            "model": self.model,
            "exporter": self.exporter,
            "target": self.target,
            "scenario": self.scenario,
            "mode": self.mode,
            "status": self.status,
            "problems": list(self.problems),
            "rules": _plain(self.rules),
            "environment": self.environment.as_dict() if self.environment else {},
            "inputs": asdict(self.inputs),
        }
        if self.figures is not None:
            data.update(self.figures.as_dict())
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BenchRecord:
        """A record as results.json holds it (schema 1)."""
        return cls(
            id=data["id"],
            model=data["model"],
            exporter=data["exporter"],
            target=data["target"],
            scenario=data["scenario"],
            mode=data["mode"],
            status=data["status"],
            problems=tuple(data["problems"]),
            rules=data["rules"],
            environment=BenchEnvironment.from_dict(data["environment"]),
            inputs=BenchInputs(**data["inputs"]),
            figures=_figures_from_dict(data),
        )


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _throughput(entries: Sequence[Mapping[str, Any]]) -> tuple[Throughput, ...]:
    return tuple(Throughput(**entry) for entry in entries)


def _figures_from_dict(data: Mapping[str, Any]) -> Figures | None:
    if "loadgen" in data:
        throughput = data.get("throughput")
        return LoadGenFigures(
            LoadGenResult(**data["loadgen"]),
            data["latency_ms"],
            data["duration_s"],
            data.get("queries"),
            _throughput(throughput) if throughput is not None else None,
        )
    if "latency_histogram" in data:
        histogram = data["latency_histogram"]
        tool = data.get("tool")
        return SingleStreamFigures(
            data["latency_ms"],
            data["valid"],
            data["queries"],
            data["duration_s"],
            Histogram(tuple(histogram["edges_ms"]), tuple(histogram["counts"])),
            data.get("latency_kinds"),
            data.get("runtime_latency_ms"),
            data.get("runtime_valid"),
            data.get("runtime_queries"),
            ToolFigure(**tool) if tool is not None else None,
        )
    if "throughput" in data:
        return OfflineFigures(
            _throughput(data["throughput"]),
            data["queries"],
            data["duration_s"],
            data.get("offline_api"),
        )
    if "cold_start" in data:
        return ColdStartFigures(ColdStart(**data["cold_start"]), data["duration_s"])
    if "caching_guard" in data:
        verdict = data["caching_guard"]
        return GuardFigures(
            GuardVerdict(**{**verdict, "problems": tuple(verdict["problems"])}),
            data["queries"],
            data["duration_s"],
        )
    return None


# --- building the records ---------------------------------------------------------------------


def base_record(
    case: BenchCase,
    scenario: str,
    rules: BenchRules,
    environment: BenchEnvironment | None,
    rules_in_force: Mapping[str, Any],
) -> BenchRecord:
    """The record before anything is measured: status MEASURED, no figures."""
    return BenchRecord(
        id=record_id(case, scenario, rules.mode),
        model=case.model,
        exporter=case.exporter,
        target=case.target,
        scenario=scenario,
        mode=rules.mode,
        status=MEASURED,
        problems=(),
        rules=rules_in_force,
        environment=environment,
        inputs=BenchInputs(case.data_set, case.seq_len, rules.rotating_inputs),
    )


def latency_figures(series: Series, rules: BenchRules) -> SingleStreamFigures:
    histogram = stats.histogram_ms(series.latencies_s)
    return SingleStreamFigures(
        latency_ms=stats.latency_summary_ms(series.latencies_s),
        valid=stats.validity(len(series.latencies_s), rules.early_stopping_min_queries),
        queries=len(series.latencies_s),
        duration_s=series.duration_s,
        latency_histogram=Histogram(tuple(histogram["edges_ms"]), tuple(histogram["counts"])),
    )


def _stopped_early(label: str, queries: int, rules: BenchRules) -> list[str]:
    if queries >= rules.single_stream.min_queries:
        return []
    return [
        f"max_duration_s stopped the {label} series at {queries} queries "
        f"< min_queries {rules.single_stream.min_queries}"
    ]


def single_stream(base: BenchRecord, raw: SingleStreamRaw, rules: BenchRules) -> BenchRecord:
    """The end-to-end figures, the runtime latency beside them, each named in latency_kinds."""
    end_to_end = raw.end_to_end
    if not end_to_end.latencies_s:
        return base.failed(SKIPPED, f"no timed calls ({end_to_end.engine})")
    figures = latency_figures(end_to_end, rules)
    problems = _stopped_early("end-to-end", figures.queries, rules)
    kinds = {"latency_ms": raw.end_to_end_binding, "runtime_latency_ms": raw.runtime_binding}
    runtime: dict[str, Any] = {}
    if raw.runtime is not None and raw.runtime.latencies_s:
        latencies = raw.runtime.latencies_s
        runtime = {
            "runtime_latency_ms": stats.latency_summary_ms(latencies),
            "runtime_valid": stats.validity(len(latencies), rules.early_stopping_min_queries),
            "runtime_queries": len(latencies),
        }
        problems += _stopped_early("runtime", len(latencies), rules)
    figures = replace(figures, latency_kinds=kinds, **runtime)
    return base.with_timer(end_to_end.engine).measured_as(figures, problems)


def with_tool(record: BenchRecord, tool: ToolFigure) -> BenchRecord:
    """A SingleStream record with a tool's figure beside its runtime latency (ratio filled in)."""
    figures = record.figures
    assert isinstance(figures, SingleStreamFigures), "a tool is compared with SingleStream"
    ours = (figures.runtime_latency_ms or figures.latency_ms)["p50"]
    ratio = ours / tool.p50_ms if tool.p50_ms > 0 else None
    return replace(record, figures=replace(figures, tool=replace(tool, ratio=ratio)))


def throughput_entry(batch: int, series: Series, in_flight: int | None = None) -> Throughput:
    """One after another: samples over the sum of the calls' latencies. Overlapping requests
    (``in_flight``): samples over the wall time of the timed region; batch / p50 would count
    each request as if it ran alone, so it is not given."""
    latencies = series.latencies_s
    p50_s = stats.percentiles(latencies)["p50"]
    if in_flight is not None:
        wall_s = series.duration_s
        return Throughput(
            batch=batch,
            samples_per_s=batch * len(latencies) / wall_s if wall_s > 0 else 0.0,
            queries=len(latencies),
            p50_ms=p50_s * 1e3,
            duration_s=wall_s,
            requests=in_flight,
        )
    return Throughput(
        batch=batch,
        samples_per_s=stats.samples_per_s(batch, latencies),
        queries=len(latencies),
        p50_ms=p50_s * 1e3,
        samples_per_s_at_p50=batch / p50_s if p50_s > 0 else 0.0,
        duration_s=series.duration_s,
    )


def offline(base: BenchRecord, sweep: Sequence[BatchPart], rules: BenchRules) -> BenchRecord:
    parts = [b for b in sweep if b.series is not None and b.series.latencies_s]
    measured = [(b.batch, b.series) for b in parts if b.series is not None]
    if not measured:
        return base.failed(
            SKIPPED, "no batch size was measured: " + "; ".join(b.skipped or "" for b in sweep)
        )
    throughput = tuple(throughput_entry(b.batch, b.series, b.in_flight) for b in parts if b.series)
    figures = OfflineFigures(
        throughput=throughput,
        queries=sum(t.queries for t in throughput),
        duration_s=sum(series.duration_s for _, series in measured),
        offline_api=next((b.api for b in parts if b.api is not None), None),
    )
    problems = [f"batch {b.batch} skipped: {b.skipped}" for b in sweep if b.skipped]
    return base.with_timer(measured[0][1].engine).measured_as(figures, problems)


def cold_start(base: BenchRecord, measured: ColdStart, rules: BenchRules) -> BenchRecord:
    duration_s = (measured.session_create_ms + measured.first_inference_ms) / 1e3
    return base.measured_as(ColdStartFigures(measured, duration_s))


def caching_guard(base: BenchRecord, raw: GuardRaw, rules: BenchRules) -> BenchRecord:
    verdict = guard.judge(raw, rules.caching_guard.threshold_ratio)
    figures = GuardFigures(
        caching_guard=verdict,
        queries=len(raw.rotating_s) + len(raw.repeated_s),
        duration_s=sum(raw.rotating_s) + sum(raw.repeated_s),
    )
    return base.with_timer(raw.engine).measured_as(figures, verdict.problems)


LOADGEN_TIMER = "mlperf_loadgen (LoadGen times every query itself)"


def loadgen(base: BenchRecord, measured: LoadGenResult, run_dir: Path) -> BenchRecord:
    """LoadGen's own figures; its log paths made relative to the run folder."""
    logs = {name: _relative(Path(path), run_dir) for name, path in measured.logs.items()}
    queries = int(measured.query_count) if measured.query_count is not None else None
    throughput = None
    if measured.samples_per_s is not None:
        throughput = (
            Throughput(
                batch=int(measured.sut_batch),
                samples_per_s=float(measured.samples_per_s),
                queries=queries or 0,
            ),
        )
    figures = LoadGenFigures(
        loadgen=replace(measured, logs=logs),
        latency_ms=dict(measured.latency_ms),
        duration_s=measured.duration_s,
        queries=queries,
        throughput=throughput,
    )
    problems = []
    if not measured.valid:
        reason = measured.invalid_reason or "see its summary log"
        problems.append(f"LoadGen result {measured.result}: {reason}")
    return base.with_timer(LOADGEN_TIMER).measured_as(figures, problems)


def _relative(path: Path, run_dir: Path) -> str:
    try:
        return str(path.resolve().relative_to(run_dir.resolve()))
    except ValueError:
        return str(path)
