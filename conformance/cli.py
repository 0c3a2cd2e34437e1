"""The `conformance` command. Library errors become one-line messages and exit codes here only."""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime
from pathlib import Path

import click

from conformance import __version__
from conformance.options import click_options
from conformance.pack.hashing import PackManifestError, verify_pack
from conformance.spec import PACK_DIR

REPORTS_DIR = Path("reports")


def fail(message: str, code: int = 2) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@click.group()
@click.version_option(__version__, prog_name="conformance")
def main() -> None:
    """Conformance and interoperability suite for ML inference runtimes."""


def register_commands() -> None:
    from conformance.bench.command import bench_command
    from conformance.certify.command import (
        certify_command,
        keygen_command,
        scoreboard_command,
        verify_command,
    )
    from conformance.report import report_command

    for command in (
        report_command,
        bench_command,
        certify_command,
        verify_command,
        scoreboard_command,
        keygen_command,
    ):
        main.add_command(command)


@main.group()
def pack() -> None:
    """Build or verify the conformance pack."""


@pack.command("build")
@click.option("--out", type=click.Path(path_type=Path), default=PACK_DIR, show_default=True)
@click.option("--model", "models", multiple=True, help="Build only these models (repeatable).")
@click.option(
    "--exporter", "exporters", multiple=True, help="Use only these exporters (repeatable)."
)
def pack_build(out: Path, models: tuple[str, ...], exporters: tuple[str, ...]) -> None:
    """Export every reference model and write the pack (needs the `frameworks` extra)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter
    try:
        from conformance.pack.build import build_pack
    except ImportError as error:
        fail(
            f"pack build needs the build toolchain ({error.name} is missing): "
            "pip install 'ml-conformance[frameworks]'"
        )
    from reference_models import FAMILIES

    unknown = [m for m in models if m not in FAMILIES]
    if unknown:
        fail(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(FAMILIES)}")
    started = time.perf_counter()
    manifest = build_pack(out, list(models) or None, list(exporters) or None, progress=click.echo)
    click.echo(
        f"built {len(manifest['files'])} files into {out} in {time.perf_counter() - started:.1f}s; "
        f"digest {manifest['digest']}"
    )
    for note in manifest["notes"]:
        click.echo(f"note: {note}")


def verify_or_exit(pack_dir: Path) -> None:
    try:
        verification = verify_pack(pack_dir)
    except PackManifestError as error:
        fail(str(error))
    if not verification.ok:
        first = (
            verification.mismatches[0].describe()
            if verification.mismatches
            else "the digest does not match the listed hashes"
        )
        fail(
            f"pack verification failed ({len(verification.mismatches)} mismatch(es)); first: {first}",
            code=1,
        )
    click.echo(f"pack ok: {verification.files_checked} files, digest {verification.digest}")


@pack.command("verify")
@click.option(
    "--pack", "pack_dir", type=click.Path(path_type=Path), default=PACK_DIR, show_default=True
)
def pack_verify(pack_dir: Path) -> None:
    """Check the sha256 of every pack file against pack.json."""
    verify_or_exit(pack_dir)


@main.command("targets")
def targets_command() -> None:
    """List every target: available here, or why not."""
    from conformance.targets import all_target_names, get_target

    for name in all_target_names():
        reason = get_target(name).unavailable_reason()
        click.echo(f"{name:24s} {'available' if not reason else 'unavailable: ' + reason}")


def latest_unfinished_run(reports: Path) -> Path | None:
    from conformance.results.document import RESULTS_JSON, load_document

    runs = sorted(
        (p.parent for p in reports.glob(f"*/{RESULTS_JSON}")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for run_dir in runs:
        if load_document(run_dir / RESULTS_JSON)["run"]["status"] != "complete":
            return run_dir
    return None


@main.command("run")
@click.option(
    "--pack", "pack_dir", type=click.Path(path_type=Path), default=PACK_DIR, show_default=True
)
@click_options
@click.option(
    "--backend",
    "backends",
    multiple=True,
    metavar="MODULE:CLASS",
    help="Also run any onnx.backend.base.Backend class, e.g. package.module:Backend (repeatable).",
)
@click.option(
    "--out",
    "run_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Run folder (default: reports/<timestamp>).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Finish an interrupted run (--out, or the latest unfinished one).",
)
@click.option(
    "--live",
    is_flag=True,
    help="Re-export with the frameworks installed here; add eager torch and tf targets.",
)
@click.option(
    "--bench",
    is_flag=True,
    help="After the checks, benchmark the targets (SingleStream, Offline, ...).",
)
@click.option("--bench-mode", type=click.Choice(["dev", "cert"]), default="dev", show_default=True)
@click.option(
    "--loadgen", is_flag=True, help="With --bench: also MLPerf LoadGen Offline and Server."
)
def run(
    pack_dir: Path,
    targets: tuple[str, ...],
    models: tuple[str, ...],
    exporters: tuple[str, ...],
    timeout_s: float | None,
    backends: tuple[str, ...],
    run_dir: Path | None,
    resume: bool,
    live: bool,
    bench: bool,
    bench_mode: str,
    loadgen: bool,
) -> None:
    """Verify the pack, run its artifacts on the targets and judge them against the goldens."""
    from conformance.run import RunRequest, execute_run

    verify_or_exit(pack_dir)
    if resume and run_dir is None:
        run_dir = latest_unfinished_run(REPORTS_DIR)
        if run_dir is None:
            fail(f"nothing to resume: no unfinished run under {REPORTS_DIR}/")
    run_dir = run_dir or REPORTS_DIR / datetime.now().strftime("%Y%m%d-%H%M%S")
    targets = (*targets, *(f"backend:{backend}" for backend in backends))
    request = RunRequest(
        pack_dir,
        run_dir,
        list(targets),
        list(models),
        list(exporters),
        resume,
        timeout_s,
        live,
        bench,
        bench_mode,
        loadgen,
    )
    sys.exit(execute_run(request))


@main.command("calibrate")
@click.option(
    "--pack", "pack_dir", type=click.Path(path_type=Path), default=PACK_DIR, show_default=True
)
@click.option(
    "--target", "targets", multiple=True, help="Honest targets (default: every available one)."
)
@click.option(
    "--out",
    "run_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Run folder for the evidence.",
)
def calibrate(pack_dir: Path, targets: tuple[str, ...], run_dir: Path | None) -> None:
    """Run honest targets and the value-perturbing negative controls; print the tolerance evidence."""
    from conformance.calibrate import VALUE_DEFECTS, calibration_rows, render_markdown
    from conformance.results.document import load_document, records_of
    from conformance.run import RunRequest, choose_targets, execute_run

    verify_or_exit(pack_dir)
    honest = [t.name for t in choose_targets(list(targets))]
    run_dir = run_dir or REPORTS_DIR / f"calibrate-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    execute_run(RunRequest(pack_dir, run_dir, [*honest, *VALUE_DEFECTS], [], [], False, None))
    rows = calibration_rows(records_of(load_document(run_dir / "results.json")))
    click.echo(render_markdown(rows))
    misplaced = [r.model for r in rows if not r.well_placed]
    if misplaced:
        fail(f"tolerance not between honest and defect errors for: {', '.join(misplaced)}", code=1)


register_commands()
