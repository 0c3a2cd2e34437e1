"""The Performance section's view data, from the results file's optional "benchmarks" list.

Benchmark records come from another part of the suite and may lack any key; whatever is
present is shown, and a missing figure is an em dash, never an error.

A SingleStream record holds two latencies (conformance.bench.bound): ``latency_ms``, end-to-end
through the target's Python API, and ``runtime_latency_ms``, the runtime's own call with inputs
bound before the clock; ``latency_kinds`` says what each one is. ``single_stream`` rows show the
first, ``single_stream_runtime`` rows (the same records, read at their runtime figures) the
second, each row naming its kind; ``tools`` are the records that carry a runtime tool's figure
beside ours (``conformance bench --compare-tools``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from conformance.report.charts import (
    BarChart,
    LadderChart,
    LineChart,
    latency_histogram,
    latency_ladder,
    throughput_chart,
)

SINGLE_STREAM, OFFLINE, COLD_START, LOADGEN_PREFIX = (
    "SingleStream",
    "Offline",
    "ColdStart",
    "LoadGen",
)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class BenchRow:
    target: str
    model: str
    exporter: str
    mode: str
    record: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.model} / {self.exporter}"

    def latency(self, key: str) -> float | None:
        return _num((self.record.get("latency_ms") or {}).get(key))

    def valid(self, key: str) -> bool | None:
        flag = (self.record.get("valid") or {}).get(key)
        return flag if isinstance(flag, bool) else None

    def figure(self, section: str, key: str) -> float | None:
        return _num((self.record.get(section) or {}).get(key))

    def throughput(self) -> dict[int, float]:
        points = self.record.get("throughput") or []
        return {
            p["batch"]: v
            for p in points
            if isinstance(p, dict)
            and isinstance(p.get("batch"), int)
            and (v := _num(p.get("samples_per_s"))) is not None
        }

    @property
    def status(self) -> str:
        return str(self.record.get("status") or "ok")

    @property
    def scenario(self) -> str:
        return str(self.record.get("scenario") or "?")

    @property
    def problems(self) -> list[str]:
        problems = self.record.get("problems")
        return [str(p) for p in problems] if isinstance(problems, list) else []

    def section(self, name: str) -> dict[str, Any]:
        value = self.record.get(name)
        return value if isinstance(value, dict) else {}

    @property
    def latency_kind(self) -> str:
        """What this row's latency_ms is, in words (older records: end-to-end, unnamed)."""
        kinds = self.section("latency_kinds")
        return str(kinds.get("latency_ms") or "end-to-end (not named in this record)")

    def tool(self, key: str) -> Any:
        """A field of the runtime tool's figure beside this record (None when absent)."""
        return self.section("tool").get(key)

    @property
    def caching_flagged(self) -> bool | None:
        guard = self.section("caching_guard")
        return bool(guard["flagged"]) if "flagged" in guard else None


@dataclass(frozen=True)
class TargetCharts:
    target: str
    ladder: LadderChart | None
    throughput: LineChart | None
    histograms: tuple[tuple[str, BarChart], ...]


@dataclass(frozen=True)
class Performance:
    present: bool
    single_stream: tuple[BenchRow, ...]
    offline: tuple[BenchRow, ...]
    offline_batches: tuple[int, ...]
    cold_start: tuple[BenchRow, ...]
    loadgen: tuple[BenchRow, ...]
    caching_guard: tuple[BenchRow, ...]  # every record with a caching-guard verdict
    not_measured: tuple[
        BenchRow, ...
    ]  # status error, crashed, timed-out or skipped: their problems say why
    charts: tuple[TargetCharts, ...]
    rules: tuple[
        tuple[str, str], ...
    ]  # the distinct rule sets in force, as (mode, "key=value, ...")
    single_stream_runtime: tuple[BenchRow, ...] = ()  # the runtime latency of each record
    tools: tuple[BenchRow, ...] = ()  # SingleStream records with a runtime tool's figure
    offline_apis: tuple[tuple[BenchRow, str], ...] = ()  # (Offline row, the API it went through)


def runtime_row(row: BenchRow) -> BenchRow | None:
    """The row read at its runtime latency (latency_ms, valid and queries are the runtime's;
    latency_kinds names it); None for a record without one."""
    record = row.record
    runtime = record.get("runtime_latency_ms")
    if not isinstance(runtime, dict):
        return None
    kinds = row.section("latency_kinds")
    kind = kinds.get("runtime_latency_ms") or "runtime (not named in this record)"
    view = {
        **record,
        "latency_ms": runtime,
        "valid": record.get("runtime_valid") or {},
        "queries": record.get("runtime_queries"),
        "duration_s": None,  # the record's duration is the end-to-end series'
        "latency_kinds": {"latency_ms": kind},
        "latency_histogram": {},
    }
    return BenchRow(row.target, row.model, row.exporter, row.mode, view)


def offline_api(row: BenchRow) -> str:
    """The API an Offline record's throughput went through, in words."""
    api = row.section("offline_api")
    if not api:
        return "not recorded (session.run, one batch after another)"
    return ", ".join(
        f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in sorted(api.items())
    )


def bench_row(record: dict[str, Any]) -> BenchRow:
    return BenchRow(
        str(record.get("target", "?")),
        str(record.get("model", "?")),
        str(record.get("exporter", "?")),
        str(record.get("mode", "")),
        record,
    )


def rules_of(rows: list[BenchRow]) -> tuple[tuple[str, str], ...]:
    seen: dict[tuple[str, str], None] = {}
    for row in rows:
        rules = row.record.get("rules")
        if isinstance(rules, dict) and rules:
            text = ", ".join(
                f"{k}={v if isinstance(v, str) else json.dumps(v)}"
                for k, v in sorted(rules.items())
            )
            seen[(row.mode, text)] = None
    return tuple(seen)


def target_charts(target: str, single: list[BenchRow], offline: list[BenchRow]) -> TargetCharts:
    ladder = latency_ladder(
        [(r.label, r.record.get("latency_ms") or {}) for r in single],
        f"SingleStream latency on {target} (ms, log scale)",
    )
    lines = throughput_chart(
        [(r.label, sorted(r.throughput().items())) for r in offline],
        f"Offline throughput on {target}",
    )
    histograms = []
    for row in single:
        hist = row.record.get("latency_histogram") or {}
        chart = latency_histogram(hist.get("edges_ms") or [], hist.get("counts") or [])
        if chart:
            histograms.append((row.label, chart))
    return TargetCharts(target, ladder, lines, tuple(histograms))


def build_performance(benchmarks: list[Any] | None) -> Performance:
    rows = [bench_row(r) for r in benchmarks or [] if isinstance(r, dict)]
    measured = [r for r in rows if r.status == "ok"]

    def scenario(name: str) -> list[BenchRow]:
        return [r for r in measured if r.scenario == name]

    single, offline = scenario(SINGLE_STREAM), scenario(OFFLINE)
    targets = list(dict.fromkeys(r.target for r in single + offline))
    return Performance(
        present=bool(rows),
        single_stream=tuple(single),
        offline=tuple(offline),
        offline_batches=tuple(sorted({b for r in offline for b in r.throughput()})),
        cold_start=tuple(scenario(COLD_START)),
        loadgen=tuple(r for r in measured if r.scenario.startswith(LOADGEN_PREFIX)),
        caching_guard=tuple(r for r in measured if r.caching_flagged is not None),
        not_measured=tuple(r for r in rows if r.status != "ok"),
        charts=tuple(
            target_charts(
                t, [r for r in single if r.target == t], [r for r in offline if r.target == t]
            )
            for t in targets
        ),
        rules=rules_of(rows),
        single_stream_runtime=tuple(v for r in single if (v := runtime_row(r)) is not None),
        tools=tuple(r for r in single if r.section("tool")),
        offline_apis=tuple((r, offline_api(r)) for r in offline),
    )
