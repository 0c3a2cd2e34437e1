"""The `conformance` command. Library errors become one-line messages and exit codes here only."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from conformance import __version__
from conformance.pack.hashing import PackManifestError, verify_pack
from conformance.spec import PACK_DIR


def fail(message: str, code: int = 2) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@click.group()
@click.version_option(__version__, prog_name="conformance")
def main() -> None:
    """Conformance and interoperability suite for ML inference runtimes."""


@main.group()
def pack() -> None:
    """Build or verify the conformance pack."""


@pack.command("build")
@click.option("--out", type=click.Path(path_type=Path), default=PACK_DIR, show_default=True)
@click.option("--model", "models", multiple=True, help="Build only these models (repeatable).")
@click.option("--exporter", "exporters", multiple=True, help="Use only these exporters (repeatable).")
def pack_build(out: Path, models: tuple[str, ...], exporters: tuple[str, ...]) -> None:
    """Export every reference model and write the pack (needs the `frameworks` extra)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter
    try:
        from conformance.pack.build import build_pack
    except ImportError as error:
        fail(f"pack build needs the build toolchain ({error.name} is missing): "
             "pip install 'ml-conformance[frameworks]'")
    from reference_models import FAMILIES

    unknown = [m for m in models if m not in FAMILIES]
    if unknown:
        fail(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(FAMILIES)}")
    started = time.perf_counter()
    manifest = build_pack(out, list(models) or None, list(exporters) or None, progress=click.echo)
    click.echo(f"built {len(manifest['files'])} files into {out} in {time.perf_counter() - started:.1f}s; "
               f"digest {manifest['digest']}")
    for note in manifest["notes"]:
        click.echo(f"note: {note}")


def verify_or_exit(pack_dir: Path) -> None:
    try:
        verification = verify_pack(pack_dir)
    except PackManifestError as error:
        fail(str(error))
    if not verification.ok:
        first = verification.mismatches[0].describe() if verification.mismatches else "the digest does not match the listed hashes"
        fail(f"pack verification failed ({len(verification.mismatches)} mismatch(es)); first: {first}", code=1)
    click.echo(f"pack ok: {verification.files_checked} files, digest {verification.digest}")


@pack.command("verify")
@click.option("--pack", "pack_dir", type=click.Path(path_type=Path), default=PACK_DIR, show_default=True)
def pack_verify(pack_dir: Path) -> None:
    """Check the sha256 of every pack file against pack.json."""
    verify_or_exit(pack_dir)


@main.command("run")
@click.option("--pack", "pack_dir", type=click.Path(path_type=Path), default=PACK_DIR, show_default=True)
@click.option("--target", "targets", multiple=True, default=["ort:cpu"], show_default=True)
@click.option("--model", "models", multiple=True, help="Run only these models (repeatable).")
def run(pack_dir: Path, targets: tuple[str, ...], models: tuple[str, ...]) -> None:
    """Verify the pack, run every artifact on the targets and judge it against the goldens."""
    from conformance.engine import run_pack
    from conformance.pack.load import Pack
    from conformance.summary import render_table
    from conformance.targets import TargetError, get_target

    verify_or_exit(pack_dir)
    try:
        selected = [get_target(name) for name in targets]
    except TargetError as error:
        fail(str(error))
    loaded = Pack(pack_dir)
    records = run_pack(loaded, selected, list(models) or None,
                       on_record=lambda r: click.echo(".", nl=False))
    click.echo()
    click.echo(render_table(records))
    # Failures the pack already records against the exporter are known findings; anything
    # else (a runtime diverging on a good artifact) fails the run.
    new_failures = [r for r in records if r.verdict in ("failed", "error") and r.attributed_to != "exporter"]
    sys.exit(1 if new_failures else 0)
