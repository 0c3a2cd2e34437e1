"""`conformance bench`: benchmark targets under the spec's rules into a run folder's results.json.

A new run folder gets a new results document; an existing one (a `conformance run` folder, or an
earlier bench) gets the benchmark records added, same-id records replaced. ``run_benchmarks`` is
the engine that `conformance run --bench` calls too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from conformance.bench.registry import SCENARIOS
from conformance.bench.rules import MODES, RulesError
from conformance.bench.runner import run_benchmarks
from conformance.bench.table import render
from conformance.options import no_compile_cache_option
from conformance.results.document import RESULTS_JSON
from conformance.spec import PACK_DIR

__all__ = ["bench_command", "run_benchmarks"]


@click.command("bench")
@click.option(
    "--pack", "pack_dir", type=click.Path(path_type=Path), default=PACK_DIR, show_default=True
)
@click.option(
    "--target", "targets", multiple=True, required=True, help="Target to benchmark (repeatable)."
)
@click.option(
    "--model",
    "models",
    multiple=True,
    help="Only these models (repeatable); default: every core model.",
)
@click.option(
    "--exporter",
    "exporters",
    multiple=True,
    help="Only these exporters' artifacts (repeatable); default: the rules' default_exporters.",
)
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    type=click.Choice(SCENARIOS),
    help="Only these scenarios (repeatable); default: all four.",
)
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="dev",
    show_default=True,
    help="dev: short, fits CI; cert: long enough for valid p99 (and p99.9).",
)
@click.option(
    "--loadgen",
    is_flag=True,
    help="Also run LoadGen-Offline and LoadGen-Server (mlcommons-loadgen).",
)
@click.option(
    "--out",
    "run_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Run folder (default: reports/<timestamp>); an existing one gets the records added.",
)
@click.option(
    "--compare-tools",
    is_flag=True,
    help="Also run each runtime's own benchmark tool (OpenVINO benchmark_app, IREE "
    "iree-benchmark-module, ORT's bare IO-binding loop) on the same artifact, input, threads "
    "and precision; its p50 is recorded beside SingleStream's runtime latency.",
)
@no_compile_cache_option
def bench_command(
    pack_dir: Path,
    targets: tuple[str, ...],
    models: tuple[str, ...],
    exporters: tuple[str, ...],
    scenarios: tuple[str, ...],
    mode: str,
    loadgen: bool,
    run_dir: Path | None,
    compare_tools: bool,
) -> None:
    """Time the pack's models on targets: SingleStream, Offline, ColdStart, CachingGuard."""
    from conformance.run.session import RunInputError, RunRequest, RunSession, default_run_dir

    run_dir = run_dir or default_run_dir()
    request = RunRequest(pack_dir, run_dir, targets, models, exporters, extend=True)
    try:
        session = RunSession.open(request)
        written = session.bench(
            mode,
            scenarios,
            loadgen,
            click.echo,
            list(targets),
            list(models),
            list(exporters),
            compare_tools=compare_tools,
        )
    except (RunInputError, RulesError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo(
            f"\ninterrupted: the records written so far are kept in {run_dir / RESULTS_JSON}",
            err=True,
        )
        sys.exit(130)
    if session.created:
        session.finish("complete")
    click.echo("")
    click.echo(render(written))
    click.echo(f"results: {session.path}")
    sys.exit(1 if any(r.flagged for r in written) else 0)


if __name__ == "__main__":
    bench_command()
