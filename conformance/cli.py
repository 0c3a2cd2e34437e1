"""The `conformance` command. Library errors become one-line messages and exit codes here only."""

from __future__ import annotations

import importlib
import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

# First: under `conformance compare`, the targets' fork server starts beside these imports.
import conformance.usermodel.early as early  # its import starts it
from conformance import __version__
from conformance.options import click_options, jobs_option, no_compile_cache_option
from conformance.pack.hashing import PackManifestError, verify_pack
from conformance.run.plan import check_profiles
from conformance.spec import PACK_DIR

if TYPE_CHECKING:
    from conformance.run.session import RunRequest, RunSession


def fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@click.group()
@click.version_option(__version__, prog_name="conformance")
def main() -> None:
    """Conformance and interoperability suite for ML inference runtimes."""


def console() -> None:
    """The `conformance` console script (and ``python -m conformance``): main(); compare, whose
    small runs are timed against the runtimes' own load and run, leaves without the
    interpreter's teardown once it is done (conformance.usermodel.early.exit_now)."""
    try:
        main()
    except SystemExit as done:
        if early.compare_is_starting(sys.argv):
            early.exit_now(done.code)
        raise


# Subcommands whose modules are imported when the command is looked up (run, help), not at
# every start: `conformance compare` does not pay for bench's, certify's or ops' imports
# (~0.2 s), nor does the fork server, which imports this module for its children.
LAZY_COMMANDS = {
    "report": "conformance.report:report_command",
    "bench": "conformance.bench.command:bench_command",
    "certify": "conformance.certify.command:certify_command",
    "verify": "conformance.certify.command:verify_command",
    "scoreboard": "conformance.certify.command:scoreboard_command",
    "keygen": "conformance.certify.command:keygen_command",
    "ops": "conformance.ops.command:ops_command",
    "compare": "conformance.usermodel.command:compare_command",
}


class LazyCommands(MutableMapping[str, click.Command]):
    """A group's commands: the loaded ones, and the lazy ones by name, imported on first
    lookup. Iterating lists every name (``set(main.commands)``) without importing anything."""

    def __init__(self, loaded: Mapping[str, click.Command], lazy: Mapping[str, str]) -> None:
        self._loaded = dict(loaded)
        self._lazy = dict(lazy)

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded and name in self._lazy:
            module, _, attribute = self._lazy[name].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            self._loaded[name] = command
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command
        self._lazy.pop(name, None)

    def __delitem__(self, name: str) -> None:
        if name not in self._loaded and name not in self._lazy:
            raise KeyError(name)
        self._loaded.pop(name, None)
        self._lazy.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter({**dict.fromkeys(self._loaded), **dict.fromkeys(self._lazy)})

    def __len__(self) -> int:
        return len(set(self._loaded) | set(self._lazy))

    def __contains__(self, name: object) -> bool:
        return name in self._loaded or name in self._lazy


def register_commands() -> None:
    main.commands = LazyCommands(main.commands, LAZY_COMMANDS)


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
    from conformance.pack.build import left_out
    from conformance.spec import load_json
    from conformance.untrusted import printable

    lost = left_out(
        out, list(models or FAMILIES), list(exporters or load_json("spec.json")["exporters"])
    )
    if lost:
        fail(
            f"the pack in {printable(out, 300)} also holds {printable(', '.join(lost), 300)}, "
            "which this build leaves out, and a build replaces the whole folder: build the "
            "selection into another folder (--out)"
        )
    started = time.perf_counter()
    manifest = build_pack(out, list(models) or None, list(exporters) or None, progress=click.echo)
    click.echo(
        f"built {len(manifest['files'])} files into {out} in {time.perf_counter() - started:.1f}s; "
        f"digest {manifest['digest']}"
    )
    for note in manifest["notes"]:
        click.echo(f"note: {note}")


def verify_or_exit(pack_dir: Path) -> None:
    """`pack verify`: a mismatch is this command's finding (exit 1); no pack is bad input."""
    from conformance.pack.hashing import pin_check
    from conformance.pack.load import Pack

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
            f"pack verification failed ({len(verification.mismatches)} mismatch(es)); "
            f"first: {first}",
            code=1,
        )
    try:
        spec_version = str(Pack(pack_dir).manifest.get("spec_version", "")) or None
    except PackManifestError as error:
        fail(str(error))
    pin = pin_check(verification.digest, spec_version)
    click.echo(f"pack ok: {verification.files_checked} files, digest {verification.digest}")
    if not pin.ok:  # the hashes hold, but it is not the pack results of this spec are measured on
        fail(f"the pack at {pack_dir} is {pin.describe()}", code=1)
    click.echo(f"this is {pin.describe()}")


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
    from conformance.targets import listing, render_listing

    click.echo(render_listing(listing()))


def latest_unfinished_run(reports: Path) -> Path | None:
    """The newest run folder under ``reports`` whose results file says it did not finish."""
    from conformance.results.document import RESULTS_JSON, ResultsFileError, load_document

    runs = sorted(
        (p.parent for p in reports.glob(f"*/{RESULTS_JSON}")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for run_dir in runs:
        try:
            status = load_document(run_dir / RESULTS_JSON).get("run", {}).get("status")
        except (OSError, ResultsFileError):
            return run_dir  # unreadable: resuming it says why, in one line
        if status != "complete":
            return run_dir
    return None


class Terminated(Exception):
    """SIGTERM, raised in the main thread so a run stops the way Ctrl-C stops it."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def open_or_exit(request: RunRequest) -> RunSession:
    """Open the run session, or say in one line what input is wrong (exit 2)."""
    from conformance.run.session import RunInputError, RunSession

    try:
        session = RunSession.open(request, message=click.echo)
    except RunInputError as error:
        fail(str(error))
    if session.verification is not None:
        click.echo(
            f"pack ok: {session.verification.files_checked} files, "
            f"digest {session.verification.digest}"
        )
    if session.pin_warning:
        click.echo(session.pin_warning, err=True)
    return session


def write_report_beside(results_path: Path) -> None:
    """report.html next to results.json; a report failure never changes the run's exit code."""
    from conformance.report import ReportError, write_report

    try:
        click.echo(f"report: {write_report(results_path, results_path.with_name('report.html'))}")
    except (ReportError, OSError) as error:
        click.echo(f"warning: no report: {error}", err=True)


def interrupted(session: RunSession, signal_name: str, during: str = "") -> int:
    from conformance.untrusted import printable

    session.finish("interrupted")
    write_report_beside(session.path)
    kept = len(session.document["checks"])
    click.echo(
        f"\n{signal_name}{during}: {kept} checks kept in {printable(session.path)}; "
        f"finish with: conformance run --resume --out {printable(session.run_dir)}",
        err=True,
    )
    return 143 if signal_name == "terminated" else 130


def run_session_checks(session: RunSession) -> int:
    """Run the session's remaining checks with progress; 0, or the exit code that ends the run."""
    from conformance.progress import Progress
    from conformance.run.session import RunInputError

    for name, reason in session.unavailable.items():
        click.echo(f"{name}: unavailable, its checks are skipped ({reason})", err=True)
    plans, todo = session.plans, session.todo()
    click.echo(
        f"run {session.run_dir}: {len(plans)} checks on {', '.join(session.targets)}"
        + (f" ({len(plans) - len(todo)} already done)" if len(todo) < len(plans) else "")
    )
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with Progress(len(todo), "checks", click.echo) as progress:
            session.run_checks(todo, on_record=lambda r: progress.advance(r.check_id))
    except KeyboardInterrupt:
        return interrupted(session, "interrupted")
    except Terminated:
        return interrupted(session, "terminated")
    except RunInputError as error:  # the pack turned out malformed mid-run (a golden, a .pb)
        session.finish("interrupted")
        fail(str(error))
    finally:
        signal.signal(signal.SIGTERM, previous)
    line = compile_cache_line(session.compile_cache_loads)
    if line:
        click.echo(line)
    return 0


def compile_cache_line(loads: dict[str, dict[str, int]]) -> str:
    """Where the targets' compiled models came from, e.g. "compile cache: iree:llvm-cpu 27
    of 30 loads from the cache"; empty when no target compiles."""
    parts = []
    for target, counts in loads.items():
        total = sum(counts.values())
        if not total:
            continue
        if counts.get("off"):
            parts.append(f"{target} off ({total} loads compiled afresh)")
        else:
            parts.append(f"{target} {counts.get('hit', 0)} of {total} loads from the cache")
    return "compile cache: " + "; ".join(parts) if parts else ""


def run_benchmark_phase(session: RunSession, mode: str, loadgen: bool) -> int:
    """Benchmarks after the checks, never beside them; each (model, target) in its own process."""
    from conformance.bench.table import render as render_benchmarks

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        done = session.bench(mode, (), loadgen, progress=click.echo)
    except KeyboardInterrupt:
        return interrupted(session, "interrupted", " during benchmarks")
    except Terminated:
        return interrupted(session, "terminated", " during benchmarks")
    finally:
        signal.signal(signal.SIGTERM, previous)
    click.echo(render_benchmarks(done))
    return 0


def execute_run(
    request: RunRequest, bench: bool = False, mode: str = "dev", loadgen: bool = False
) -> int:
    """0 when nothing failed on the targets' account, 1 otherwise, 2 on bad input, 130/143 when
    interrupted (the results are kept for --resume)."""
    from conformance.summary import render_run_summary

    session = open_or_exit(request)
    if session.live is not None:
        drift = session.live["golden_drift"]
        click.echo(
            f"live goldens vs shipped: max relative drift {drift['max_rel_drift']:.3g} "
            f"({drift['where'] or 'none'})"
        )
    code = run_session_checks(session)
    if code:
        return code
    if bench:
        code = run_benchmark_phase(session, mode, loadgen)
        if code:
            return code
    session.finish("complete")
    outcome = session.outcome()
    if outcome.target_findings:  # where numeric findings go wrong; never changes the exit code
        from conformance.localize.pack import localize_run

        try:
            localize_run(session, message=click.echo)
        except KeyboardInterrupt:
            click.echo("localisation interrupted; the checks' results are complete", err=True)
        except Exception as error:  # noqa: BLE001 - a bug there must not cost the summary
            click.echo(
                f"warning: localisation failed ({type(error).__name__}: {error}); "
                "the checks' results are complete",
                err=True,
            )
    click.echo(render_run_summary(session.document, outcome.records))
    click.echo(f"results: {session.path}")
    write_report_beside(session.path)
    return 1 if outcome.target_findings else 0


@main.command("run")
@click.option(
    "--pack", "pack_dir", type=click.Path(path_type=Path), default=PACK_DIR, show_default=True
)
@click_options
@no_compile_cache_option
@jobs_option
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
@click.option(
    "--profile",
    type=click.Choice(["ops", *check_profiles()]),
    default="core",
    show_default=True,
    help="core: fp32 checks; fp16/int8: the pack's fp16/int8 artifacts; bf16: fp32 artifacts "
    "on a target's bf16 mode (openvino:cpu:precision=bf16); ops: every ONNX node case "
    "(as `conformance ops`).",
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
    profile: str,
) -> None:
    """Verify the pack, run its artifacts on the targets and judge them against the goldens."""
    if profile == "ops":
        if models or exporters or backends or resume or live or bench or loadgen:
            fail("--profile ops takes --target, --out and --timeout only")
        from conformance.ops.command import execute_ops

        sys.exit(execute_ops(targets, run_dir=run_dir, timeout_s=timeout_s or 60.0))
    from conformance.run.session import REPORTS_DIR, RunRequest, default_run_dir

    if resume and run_dir is None:
        run_dir = latest_unfinished_run(REPORTS_DIR)
        if run_dir is None:
            fail(f"nothing to resume: no unfinished run under {REPORTS_DIR}/")
    targets = (*targets, *(f"backend:{backend}" for backend in backends))
    request = RunRequest(
        pack_dir,
        run_dir or default_run_dir(),
        targets,
        models,
        exporters,
        resume,
        timeout_s,
        live,
        precision=check_profiles()[profile],
    )
    sys.exit(execute_run(request, bench, bench_mode, loadgen))


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
@click.option(
    "--precision",
    type=click.Choice(["fp32", "fp16", "bf16", "int8"]),
    default="fp32",
    show_default=True,
    help="The precision whose tolerances to calibrate (its own negative controls join).",
)
@no_compile_cache_option
@jobs_option
def calibrate(
    pack_dir: Path, targets: tuple[str, ...], run_dir: Path | None, precision: str
) -> None:
    """Run honest targets and the value-perturbing negative controls; print the tolerance
    evidence."""
    from conformance.calibrate import calibrate_session, calibration_rows, render_markdown
    from conformance.run.session import RunInputError, choose_targets, default_run_dir
    from conformance.targets import TargetError

    try:
        honest = [t.name for t in choose_targets(list(targets))]
    except TargetError as error:
        fail(str(RunInputError(str(error))))
    request = calibrate_session(
        pack_dir, run_dir or default_run_dir("calibrate-"), honest, precision
    )
    session = open_or_exit(request)
    code = run_session_checks(session)
    if code:
        sys.exit(code)
    rows = calibration_rows(session.records(), request.precision)
    click.echo(render_markdown(rows))
    misplaced = [r.model for r in rows if not r.well_placed]
    if misplaced:
        fail(f"tolerance not between honest and defect errors for: {', '.join(misplaced)}", code=1)


register_commands()
