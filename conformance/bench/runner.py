"""Run benchmarks and write their records: the engine behind `conformance bench` and `run --bench`.

Benchmarks run one at a time, never beside other work: each case gets its own child process
(worker.py) and the caller waits for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from conformance.bench import records
from conformance.bench.cases import BenchCase, plan_groups
from conformance.bench.rules import LOADGEN_SCENARIOS, SCENARIOS, BenchRules, load_rules
from conformance.bench.table import first_line
from conformance.bench.worker import BenchWorker
from conformance.isolation import ChildCrashed, ChildTimedOut
from conformance.pack.load import Pack
from conformance.results.document import ResultsWriter
from conformance.targets import TargetError, get_target
from conformance.targets.interface import TargetUnavailable

Progress = Callable[[str], None]
LOADGEN_DIR = "loadgen"


def status_of(error: TargetError) -> str:
    if isinstance(error, ChildCrashed):
        return records.CRASHED
    if isinstance(error, ChildTimedOut):
        return records.TIMED_OUT
    if isinstance(error, TargetUnavailable):
        return records.SKIPPED
    return records.ERROR


def progress_line(record: dict[str, Any]) -> str:
    head = f"{record['scenario']} {record['model']}/{record['exporter']} on {record['target']}"
    if record["status"] != records.OK:
        return f"{head}: {record['status']} ({first_line(record['problems'][0])})"
    if "latency_ms" in record and record["scenario"] == "SingleStream":
        return f"{head}: p50 {record['latency_ms']['p50']:.4f} ms over {record['queries']} queries"
    if record["scenario"] == "Offline":
        best = max(record["throughput"], key=lambda e: e["samples_per_s"])
        return f"{head}: up to {best['samples_per_s']:.0f} samples/s (batch {best['batch']})"
    if record["scenario"] == "CachingGuard":
        return f"{head}: {'FLAGGED' if record['caching_guard']['flagged'] else 'not flagged'}"
    return f"{head}: ok"


def _measure(
    worker: BenchWorker, scenario: str, base: dict[str, Any], rules: BenchRules, run_dir: Path
) -> dict[str, Any]:
    payload = (
        str(run_dir / LOADGEN_DIR / records.folder_name(base["id"]))
        if scenario in LOADGEN_SCENARIOS
        else None
    )
    try:
        raw = worker.request(scenario, payload)
    except TargetError as error:
        return records.failed(base, status_of(error), str(error))
    if scenario == "SingleStream":
        return records.single_stream(base, raw, rules)
    if scenario == "Offline":
        return records.offline(base, raw, rules)
    if scenario == "CachingGuard":
        return records.caching_guard(base, raw, rules)
    return records.loadgen(base, raw, run_dir)


def open_first(
    group: tuple[BenchCase, ...], rules: BenchRules, progress: Progress
) -> tuple[BenchCase, BenchWorker, dict[str, Any]]:
    """The group's first artifact that loads and runs, with its worker and cold start.

    When none does, the first case comes back with {"error": ...} naming every failure.
    """
    failures = []
    for case in group:
        worker = BenchWorker(case, rules)
        try:
            return case, worker, worker.open()
        except TargetError as error:
            worker.close()
            failures.append((case, error))
            if len(group) > 1:
                progress(
                    f"{case.key}: {status_of(error)} on load ({first_line(str(error))}); trying the next exporter"
                )
    if len(failures) == 1:
        return group[0], BenchWorker(group[0], rules), {"error": failures[0][1]}
    message = "; ".join(f"{case.exporter}: {error}" for case, error in failures)
    return (
        group[0],
        BenchWorker(group[0], rules),
        {"error": TargetError(f"no artifact loads: {message}")},
    )


def _record(
    worker: BenchWorker,
    case: BenchCase,
    scenario: str,
    opened: dict[str, Any],
    rules: BenchRules,
    run_dir: Path,
) -> dict[str, Any]:
    if "error" in opened:
        base = records.base_record(case, scenario, rules, {})
        return records.failed(base, status_of(opened["error"]), str(opened["error"]))
    base = records.base_record(case, scenario, rules, opened["environment"])
    if scenario == "ColdStart":
        return records.cold_start(base, opened["cold_start"])
    return _measure(worker, scenario, base, rules, run_dir)


def run_group(
    group: tuple[BenchCase, ...],
    scenarios: list[str],
    rules: BenchRules,
    writer: ResultsWriter,
    progress: Progress,
) -> list[dict[str, Any]]:
    """Every scenario of one case, in one child process (a fresh one after a crash)."""
    case, worker, opened = open_first(group, rules, progress)
    written = []
    try:
        for scenario in scenarios:
            record = _record(worker, case, scenario, opened, rules, writer.path.parent)
            writer.add_benchmark(record)
            progress(progress_line(record))
            written.append(record)
    finally:
        worker.close()
    return written


def run_benchmarks(
    writer: ResultsWriter,
    pack: Pack,
    target_names: Iterable[str],
    models: Iterable[str] = (),
    exporters: Iterable[str] = (),
    mode: str = "dev",
    scenarios: Iterable[str] = (),
    loadgen: bool = False,
    progress: Progress = lambda line: None,
) -> list[dict[str, Any]]:
    """Benchmark every (model, available target) and write one record per scenario.

    ``exporters``: empty = per model and target, the first of the rules' default_exporters
    that loads; otherwise each of these artifacts.
    ``scenarios``: empty = all of ColdStart, SingleStream, Offline, CachingGuard; ``loadgen`` adds
    LoadGen-Offline and LoadGen-Server. ``progress`` gets one line per record written.
    Unavailable targets are reported through ``progress`` and skipped. Returns the records.
    """
    rules = load_rules(mode)
    chosen = [s for s in SCENARIOS if not scenarios or s in set(scenarios)]
    chosen += list(LOADGEN_SCENARIOS) if loadgen else []
    available = []
    for name in target_names:
        reason = get_target(name).unavailable_reason()
        if reason:
            progress(f"{name}: unavailable, its benchmarks are skipped ({reason})")
        else:
            available.append(name)
    written = []
    for group in plan_groups(pack, available, models, exporters, rules):
        written += run_group(group, chosen, rules, writer, progress)
    return written
