"""`conformance run`: resolve targets, open (or resume) the results file, execute, summarise."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from conformance.engine import describe_targets, execute, plan_checks, resolve_targets
from conformance.live import LIVE_PACK, NATIVE_TARGETS, LiveModeError, build_live_pack, live_section
from conformance.pack.load import Pack
from conformance.results.document import (
    RESULTS_JSON,
    ResultsWriter,
    command_line,
    load_document,
    new_document,
    records_of,
)
from conformance.results.records import NOT_PASSED
from conformance.summary import render_interop, render_table
from conformance.targets import DEFAULT_TARGETS, TargetError


@dataclass(frozen=True)
class RunRequest:
    pack_dir: Path
    run_dir: Path
    targets: list[str]  # empty: every available default target
    models: list[str]
    exporters: list[str]
    resume: bool
    timeout_s: float | None
    live: bool = False
    bench: bool = False
    bench_mode: str = "dev"
    loadgen: bool = False


class RunError(RuntimeError):
    pass


def choose_targets(names: list[str], live: bool = False):
    if names:
        return resolve_targets([*names, *(NATIVE_TARGETS if live else ())])
    defaults = [*DEFAULT_TARGETS, *(NATIVE_TARGETS if live else ())]
    return [t for t in resolve_targets(defaults) if t.unavailable_reason() is None]


def open_writer(request: RunRequest, pack: Pack) -> ResultsWriter:
    path = request.run_dir / RESULTS_JSON
    if request.resume:
        if not path.is_file():
            raise RunError(f"nothing to resume: {path} does not exist")
        document = load_document(path)
        if "live" in document["run"] and not request.live:
            raise RunError(f"{path} is a live run: resume it with --live")
        if document["run"]["pack_digest"] != pack.digest:
            raise RunError(
                f"{path} was measured on pack {document['run']['pack_digest'][:12]}, not {pack.digest[:12]}"
            )
        document["run"]["status"] = "running"
        return ResultsWriter(path, document)
    if path.exists():
        raise RunError(f"{path} exists; use --resume to finish it or --out for a new run folder")
    targets = choose_targets(request.targets, request.live)
    document = new_document(
        pack.manifest, describe_targets(targets), command_line(), request.models, request.exporters
    )
    if request.live:
        document["run"]["live"] = live_section(pack.directory, request.pack_dir)
    return ResultsWriter(path, document)


def open_pack(request: RunRequest) -> Pack:
    """The shipped pack; in live mode a fresh export of it (built once per run folder)."""
    if not request.live:
        return Pack(request.pack_dir)
    live_dir = request.run_dir / LIVE_PACK
    if not (request.resume and (live_dir / "pack.json").exists()):
        click.echo(f"live mode: re-exporting the reference models into {live_dir}")
        build_live_pack(request.run_dir, request.models, progress=click.echo)
    return Pack(live_dir, goldens_from=request.pack_dir)


def validate_selection(pack: Pack, request: RunRequest) -> None:
    names = {m.name for m in pack.models}
    unknown = [m for m in request.models if m not in names]
    if unknown:
        raise RunError(
            f"unknown model(s) {', '.join(unknown)}; the pack has {', '.join(sorted(names))}"
        )
    exporters = set(pack.manifest["exporters"])
    unknown = [e for e in request.exporters if e not in exporters]
    if unknown:
        raise RunError(
            f"unknown exporter(s) {', '.join(unknown)}; the pack has {', '.join(sorted(exporters))}"
        )


def write_report_beside(results_path: Path) -> None:
    """report.html next to results.json; a report failure never changes the run's exit code."""
    from conformance.report import ReportError, write_report

    try:
        click.echo(f"report: {write_report(results_path, results_path.with_name('report.html'))}")
    except (ReportError, OSError) as error:
        click.echo(f"warning: no report: {error}", err=True)


def run_benchmark_phase(request: RunRequest, writer: ResultsWriter, pack: Pack) -> int:
    """Benchmarks after the checks, never beside them; each (model, target) in its own process."""
    from conformance.bench.command import run_benchmarks
    from conformance.bench.table import render as render_benchmarks

    available = [name for name, info in writer.document["targets"].items() if info["available"]]
    selection = writer.document["run"]["selection"]
    try:
        done = run_benchmarks(
            writer,
            pack,
            available,
            selection["models"],
            selection["exporters"],
            request.bench_mode,
            (),
            request.loadgen,
            progress=click.echo,
        )
    except KeyboardInterrupt:
        writer.finish("interrupted")
        click.echo(f"\ninterrupted during benchmarks; results kept in {writer.path}", err=True)
        return 130
    click.echo(render_benchmarks(done))
    return 0


def execute_run(request: RunRequest) -> int:
    """Returns the exit code: 0 when nothing failed on the targets' account, 1 otherwise, 2 on bad input."""
    try:
        pack = open_pack(request)
        validate_selection(pack, request)
        writer = open_writer(request, pack)
    except (RunError, TargetError, LiveModeError) as error:
        click.echo(f"error: {error}", err=True)
        return 2
    if "live" in writer.document["run"]:
        drift = writer.document["run"]["live"]["golden_drift"]
        click.echo(
            f"live goldens vs shipped: max relative drift {drift['max_rel_drift']:.3g} ({drift['where'] or 'none'})"
        )
    unavailable = {
        n: t["reason"] for n, t in writer.document["targets"].items() if not t["available"]
    }
    for name, reason in unavailable.items():
        click.echo(f"{name}: unavailable, its checks are skipped ({reason})", err=True)
    selection = writer.document["run"]["selection"]  # on --resume, the interrupted run's selection
    plans = plan_checks(
        pack, writer.document["targets"], selection["models"], selection["exporters"]
    )
    todo = [p for p in plans if not writer.has(p.check_id)]
    click.echo(
        f"run {request.run_dir}: {len(plans)} checks on {', '.join(writer.document['targets'])}"
        + (f" ({len(plans) - len(todo)} already done)" if len(todo) < len(plans) else "")
    )
    try:
        with click.progressbar(
            length=len(todo),
            label="checks",
            show_pos=True,
            item_show_func=lambda r: r.check_id if r else "",
        ) as bar:
            execute(todo, writer, request.timeout_s, on_record=lambda r: bar.update(1, r))
    except KeyboardInterrupt:
        writer.finish("interrupted")
        write_report_beside(writer.path)
        click.echo(
            f"\ninterrupted: {len(writer.document['checks'])} checks kept in {writer.path}; "
            f"finish with: conformance run --resume --out {request.run_dir}",
            err=True,
        )
        return 130
    if request.bench and run_benchmark_phase(request, writer, pack) == 130:
        return 130
    writer.finish("complete")
    records = records_of(writer.document)
    click.echo(render_table(records))
    click.echo()
    click.echo(render_interop(records))
    click.echo(f"results: {writer.path}")
    write_report_beside(writer.path)
    target_failures = [
        r for r in records if r.verdict in NOT_PASSED and r.attributed_to != "exporter"
    ]
    return 1 if target_failures else 0
