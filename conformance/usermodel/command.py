"""The `conformance compare` command: 0 conforms, 1 runtime findings, 2 bad input."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from conformance.options import no_compile_cache_option
from conformance.untrusted import printable

if TYPE_CHECKING:
    from conformance.usermodel.comparison import CompareOutcome


@click.command("compare")
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--inputs",
    "inputs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="An .npz of named arrays, or a folder of input_*.pb (or of test_data_set_* "
    "folders); repeatable: one sample each.",
)
@click.option(
    "--shape",
    "shapes",
    multiple=True,
    metavar="NAME=DIMxDIM...",
    help="The shape of an input with dynamic dims, for drawn inputs (repeatable).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of drawn inputs.")
@click.option("--samples", type=int, default=1, show_default=True, help="Drawn samples.")
@click.option(
    "--target",
    "targets",
    multiple=True,
    help="Target (repeatable); default: every available honest CPU target.",
)
@click.option("--atol", type=float, default=None, help="Absolute tolerance (default: spec fp32).")
@click.option("--rtol", type=float, default=None, help="Relative tolerance (default: spec fp32).")
@click.option("--tolerance-class", default=None, help="A tolerance class of spec/tolerances.json.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Run folder (default: reports/compare-<time>).",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=None,
    help="Seconds per request to a target (default: the spec's).",
)
@click.option("--no-localize", is_flag=True, help="Do not localise failures.")
@no_compile_cache_option
def compare_command(
    model: Path,
    inputs: tuple[Path, ...],
    shapes: tuple[str, ...],
    seed: int,
    samples: int,
    targets: tuple[str, ...],
    atol: float | None,
    rtol: float | None,
    tolerance_class: str | None,
    out: Path | None,
    timeout_s: float | None,
    no_localize: bool,
) -> None:
    """Check your own ONNX MODEL on the targets against its float64 reference."""
    from conformance.run.session import default_run_dir
    from conformance.usermodel.comparison import CompareRequest, run_compare
    from conformance.usermodel.model import UserInputError

    request = CompareRequest(
        model,
        out or default_run_dir("compare-"),
        inputs=inputs,
        shapes=shapes,
        seed=seed,
        samples=samples,
        targets=targets,
        atol=atol,
        rtol=rtol,
        tolerance_class=tolerance_class,
        timeout_s=timeout_s,
        localize=not no_localize,
    )
    try:
        outcome = run_compare(request, message=lambda line: click.echo(printable(line, 400)))
    except UserInputError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    click.echo(render(outcome))
    sys.exit(outcome.exit_code)


def render(outcome: CompareOutcome) -> str:
    lines = []
    for record in outcome.records:
        first = printable(record.problems[0], 200) if record.problems else ""
        margin = f" margin {record.margin:.3g}" if record.margin is not None else ""
        lines.append(f"{record.check_id}: {record.verdict}{margin}{' ' + first if first else ''}")
    for entry in outcome.localizations:
        lines.append(
            f"{entry['check']}: {printable(entry.get('summary', entry.get('error')), 300)}"
        )
        repro = entry.get("reproducer")
        if repro:
            lines.append(
                f"  reproducer ({repro['kind']}, {repro['nodes']} nodes): {repro['command']}"
            )
    verdict = "conforms" if not outcome.findings else f"{len(outcome.findings)} runtime finding(s)"
    lines.append(f"{verdict}; results: {outcome.results_path}")
    if outcome.report is not None:
        lines.append(f"report: {outcome.report}")
    return "\n".join(lines)
