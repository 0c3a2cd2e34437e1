"""`conformance bench`: benchmark targets under the spec's rules into a run folder's results.json.

A new run folder gets a new results document; an existing one (a `conformance run` folder, or an
earlier bench) gets the benchmark records added, same-id records replaced. ``run_benchmarks`` is
the engine that `conformance run --bench` calls too.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click

from conformance.bench.rules import MODES, SCENARIOS, RulesError
from conformance.bench.runner import run_benchmarks
from conformance.bench.table import render
from conformance.engine import describe_targets, resolve_targets
from conformance.pack.hashing import PackManifestError, verify_pack
from conformance.pack.load import Pack
from conformance.results.document import (
    RESULTS_JSON,
    ResultsWriter,
    command_line,
    load_document,
    new_document,
)
from conformance.spec import PACK_DIR
from conformance.targets import TargetError

REPORTS_DIR = Path("reports")

__all__ = ["bench_command", "run_benchmarks"]


class BenchUsageError(RuntimeError):
    pass


def open_pack(pack_dir: Path) -> Pack:
    try:
        verification = verify_pack(pack_dir)
    except PackManifestError as error:
        raise BenchUsageError(str(error)) from error
    if not verification.ok:
        raise BenchUsageError(
            f"pack verification failed ({len(verification.mismatches)} mismatch(es)): "
            "benchmarks of a modified pack are not comparable"
        )
    return Pack(pack_dir)


def check_selection(pack: Pack, models: list[str], exporters: list[str]) -> None:
    names = [m.name for m in pack.models]
    unknown = [m for m in models if m not in names]
    if unknown:
        raise BenchUsageError(
            f"unknown model(s) {', '.join(unknown)}; the pack has {', '.join(names)}"
        )
    unknown = [e for e in exporters if e not in pack.manifest["exporters"]]
    if unknown:
        raise BenchUsageError(
            f"unknown exporter(s) {', '.join(unknown)}; the pack has "
            f"{', '.join(pack.manifest['exporters'])}"
        )


def open_results(
    run_dir: Path, pack: Pack, targets: list[str], models: list[str], exporters: list[str]
) -> tuple[ResultsWriter, bool]:
    """The run folder's writer, and whether the document is new (then it is finished here)."""
    described = describe_targets(resolve_targets(targets))
    path = run_dir / RESULTS_JSON
    if not path.is_file():
        document = new_document(pack.manifest, described, command_line(), models, exporters)
        return ResultsWriter(path, document), True
    document = load_document(path)
    if document["run"]["pack_digest"] != pack.digest:
        raise BenchUsageError(
            f"{path} was measured on pack {document['run']['pack_digest'][:12]}, "
            f"not {pack.digest[:12]}"
        )
    for name, info in described.items():
        document["targets"].setdefault(name, info)
    return ResultsWriter(path, document), False


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
def bench_command(
    pack_dir: Path,
    targets: tuple[str, ...],
    models: tuple[str, ...],
    exporters: tuple[str, ...],
    scenarios: tuple[str, ...],
    mode: str,
    loadgen: bool,
    run_dir: Path | None,
) -> None:
    """Time the pack's models on targets: SingleStream, Offline, ColdStart, CachingGuard."""
    run_dir = run_dir or REPORTS_DIR / datetime.now().strftime("%Y%m%d-%H%M%S")
    try:
        pack = open_pack(pack_dir)
        check_selection(pack, list(models), list(exporters))
        writer, new = open_results(run_dir, pack, list(targets), list(models), list(exporters))
        written = run_benchmarks(
            writer,
            pack,
            list(targets),
            list(models),
            list(exporters),
            mode,
            list(scenarios),
            loadgen,
            progress=click.echo,
        )
    except (BenchUsageError, TargetError, RulesError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo(
            f"\ninterrupted: the records written so far are kept in {run_dir / RESULTS_JSON}",
            err=True,
        )
        sys.exit(130)
    if new:
        writer.finish("complete")
    click.echo("")
    click.echo(render(written))
    click.echo(f"results: {writer.path}")
    flagged = [
        r for r in written if r["status"] != "ok" or r.get("caching_guard", {}).get("flagged")
    ]
    sys.exit(1 if flagged else 0)


if __name__ == "__main__":
    bench_command()
