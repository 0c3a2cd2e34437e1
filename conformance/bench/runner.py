"""Run benchmarks and write their records: the engine behind `conformance bench` and `run --bench`.

Benchmarks run one at a time, never beside other work: each case gets its own child process
(worker.py) and the caller waits for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from conformance.bench import records, registry
from conformance.bench.cases import BenchCase, plan_groups
from conformance.bench.records import BenchRecord
from conformance.bench.registry import LOADGEN_DIR, Scenario
from conformance.bench.rules import BenchRules, load_rules
from conformance.bench.table import first_line
from conformance.bench.worker import BenchWorker, Opened
from conformance.isolation import ChildCrashed, ChildTimedOut
from conformance.pack.load import Pack
from conformance.results.document import ResultsWriter
from conformance.targets import TargetError, get_target
from conformance.targets.interface import TargetUnavailable

Progress = Callable[[str], None]

__all__ = ["LOADGEN_DIR", "open_first", "progress_line", "run_benchmarks", "run_group", "status_of"]


def status_of(error: TargetError) -> str:
    """The record's status for a failure: the checks' words (conformance.results.records)."""
    if isinstance(error, ChildCrashed):
        return records.CRASHED
    if isinstance(error, ChildTimedOut):
        return records.TIMED_OUT
    if isinstance(error, TargetUnavailable):
        return records.SKIPPED
    return records.ERROR


def progress_line(record: BenchRecord) -> str:
    return registry.get(record.scenario).line(record)


def open_first(
    group: tuple[BenchCase, ...], rules: BenchRules, progress: Progress
) -> tuple[BenchCase, BenchWorker, Opened | TargetError]:
    """The group's first artifact that loads and runs, with its worker and what the load measured.

    When none does, the first case comes back with the error naming every failure.
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
                    f"{case.key}: {status_of(error)} on load ({first_line(str(error))}); "
                    "trying the next exporter"
                )
    if len(failures) == 1:
        return group[0], BenchWorker(group[0], rules), failures[0][1]
    message = "; ".join(f"{case.exporter}: {error}" for case, error in failures)
    return group[0], BenchWorker(group[0], rules), TargetError(f"no artifact loads: {message}")


def measure_one(
    worker: BenchWorker,
    case: BenchCase,
    scenario: Scenario[Any],
    opened: Opened | TargetError,
    rules: BenchRules,
    run_dir: Path,
) -> BenchRecord:
    """One scenario's record: measured in the case's child, recorded here."""
    if isinstance(opened, TargetError):
        return scenario.base(case, rules, None).failed(status_of(opened), str(opened))
    base = scenario.base(case, rules, opened.environment)
    if scenario.measure is None:
        return scenario.record(base, opened.cold_start, rules, run_dir)
    try:
        raw = worker.request(scenario.name, scenario.request(base, run_dir))
    except TargetError as error:
        return base.failed(status_of(error), str(error))
    return scenario.record(base, raw, rules, run_dir)


TOOLS_DIR = "tools"  # the tools' inputs: <run folder>/tools/<record id as a folder name>/


def with_tool_figure(worker: BenchWorker, record: BenchRecord, run_dir: Path) -> BenchRecord:
    """A measured SingleStream record with its runtime's own tool's figure beside it (or a
    problem saying why there is none); any other record unchanged."""
    from conformance.bench.tools import runtime_of

    if record.scenario != "SingleStream" or not record.measured or not runtime_of(record.target):
        return record
    try:
        figure = worker.tool(run_dir / TOOLS_DIR / records.folder_name(record.id))
    except TargetError as error:
        problem = f"--compare-tools: {first_line(str(error), 300)}"
        return replace(record, problems=(*record.problems, problem))
    return records.with_tool(record, figure)


def run_group(
    group: tuple[BenchCase, ...],
    scenarios: Sequence[Scenario[Any]],
    rules: BenchRules,
    writer: ResultsWriter,
    progress: Progress,
    compare_tools: bool = False,
) -> list[BenchRecord]:
    """Every scenario of one case, in one child process (a fresh one after a crash).

    ``compare_tools``: each SingleStream record also gets its runtime's own tool's figure."""
    case, worker, opened = open_first(group, rules, progress)
    written = []
    try:
        for scenario in scenarios:
            record = measure_one(worker, case, scenario, opened, rules, writer.path.parent)
            if compare_tools:
                record = with_tool_figure(worker, record, writer.path.parent)
            writer.add_benchmark(record.as_dict())
            progress(scenario.line(record))
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
    compare_tools: bool = False,
) -> list[BenchRecord]:
    """Benchmark every (model, available target) and write one record per scenario.

    ``exporters``: empty = per model and target, the first of the rules' default_exporters
    that loads; otherwise each of these artifacts.
    ``scenarios``: empty = all of ColdStart, SingleStream, Offline, CachingGuard; ``loadgen`` adds
    LoadGen-Offline and LoadGen-Server. ``progress`` gets one line per record written.
    ``compare_tools``: SingleStream records carry their runtime's own tool's figure (``tool``).
    Unavailable targets are reported through ``progress`` and skipped. Returns the records
    (frozen BenchRecords; ``record.as_dict()`` is what the results file holds).
    """
    rules = load_rules(mode)
    chosen = registry.chosen(scenarios, loadgen)
    available = []
    for name in target_names:
        reason = get_target(name).unavailable_reason()
        if reason:
            progress(f"{name}: unavailable, its benchmarks are skipped ({reason})")
        else:
            available.append(name)
    written = []
    for group in plan_groups(pack, available, models, exporters, rules):
        written += run_group(group, chosen, rules, writer, progress, compare_tools)
    return written
