"""`conformance report RESULTS_JSON -o OUT.html [--baseline OTHER.json] [--markdown OUT.md]`."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from conformance.report.html import render_html
from conformance.report.markdown import render_markdown
from conformance.report.model import ReportView, build_view
from conformance.results.records import VERDICTS
from conformance.untrusted import printable


class ReportError(RuntimeError):
    """The results (or baseline) file cannot be read as a results document."""


# Limits on what the report reads (spec/SPEC.md, report limits). The coming ops profile has
# ~2,000 checks per target on 7 targets: 14,000 checks are ~27 MB at the small run's (high)
# share of failing checks, and render in seconds; a hostile 1,000,000-check file (390 MB) took
# 6.6 GB and 194 s before these limits. Beyond them the report refuses, naming the limit.
MAX_RESULTS_BYTES = 64 * 1024 * 1024
MAX_CHECKS = 50_000
MAX_BENCHMARKS = 5_000
CHECK_TEXT_FIELDS = ("model", "exporter", "data_set_label", "target")


def read_results(path: Path, role: str = "results") -> dict[str, Any]:
    """The document, within the size and count limits, with every check record well-formed."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError as error:
        raise ReportError(f"no {role} file at {path}") from error
    except OSError as error:
        raise ReportError(f"{path} cannot be read: {error}") from error
    if size > MAX_RESULTS_BYTES:
        raise ReportError(
            f"{path} is {size / 2**20:.0f} MiB; the report reads {role} files of at most "
            f"{MAX_RESULTS_BYTES // 2**20} MiB ({MAX_CHECKS:,} checks)"
        )
    try:
        document = parse_results(path.read_bytes())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ReportError(f"{path} is not a readable JSON {role} file: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("checks"), list):
        raise ReportError(f"{path} is not a results document (no list of checks)")
    checks = document["checks"]
    if len(checks) > MAX_CHECKS:
        raise ReportError(
            f"{path} has {len(checks):,} check records; the report reads at most {MAX_CHECKS:,}"
        )
    benchmarks = document.get("benchmarks")
    if benchmarks is not None and not isinstance(benchmarks, list):
        raise ReportError(f"{path}: benchmarks is {type(benchmarks).__name__}, not a list")
    if benchmarks and len(benchmarks) > MAX_BENCHMARKS:
        raise ReportError(
            f"{path} has {len(benchmarks):,} benchmark records; the report reads at most "
            f"{MAX_BENCHMARKS:,}"
        )
    for index, check in enumerate(checks):
        if problem := check_problem(check):
            name = check.get("id") if isinstance(check, dict) else None
            label = f"check {index}" + (f" ({printable(name, 200)})" if name else "")
            raise ReportError(f"{path}: {label} {problem}")
    return document


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} overflows to infinity")
    return value


def parse_results(data: bytes) -> Any:
    """JSON without NaN, Infinity or numbers that overflow to infinity (1e999): the writer never
    produces them. Lighter than the verifier's reader (a report reads up to 64 MiB)."""
    return json.loads(data.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite)


def check_problem(check: Any) -> str | None:
    """What is wrong with one check record, in words; None when the report can render it."""
    if not isinstance(check, dict):
        return f"is {type(check).__name__}, not an object"
    verdict = check.get("verdict")
    if verdict not in VERDICTS:
        return f"has verdict {printable(repr(verdict), 80)}; allowed: {', '.join(VERDICTS)}"
    for key in CHECK_TEXT_FIELDS:
        if not isinstance(check.get(key), str):
            return f"has no text {key!r}"
    if type(check.get("data_set")) is not int:
        return "has no integer 'data_set'"
    margin = check.get("margin")
    if margin is not None and (isinstance(margin, bool) or not isinstance(margin, (int, float))):
        return f"has margin {printable(margin, 80)}, not a number"
    problems = check.get("problems", [])
    if not isinstance(problems, list) or not all(isinstance(p, str) for p in problems):
        return "has problems that are not a list of texts"
    for key in ("outputs", "tolerance", "determinism", "batch_invariance"):
        if not isinstance(check.get(key, {}), dict):
            return f"has {key} that is not an object"
    if not isinstance(check.get("stderr", ""), str):
        return "has stderr that is not a text"
    return None


def baseline_warnings(baseline: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Why a comparison with this baseline may mislead; raises when it cannot mean anything."""
    versions = [str(doc.get("schema_version", "?")) for doc in (baseline, current)]
    if versions[0].split(".")[0] != versions[1].split(".")[0]:
        raise ReportError(
            f"the baseline is results schema {printable(versions[0], 40)}, this run "
            f"{printable(versions[1], 40)}: records of another major schema version are not "
            "comparable"
        )
    found = []
    if versions[0] != versions[1]:
        found.append(
            f"the baseline is results schema {printable(versions[0], 40)}, this run "
            f"{printable(versions[1], 40)}"
        )
    runs: list[dict[str, Any]] = [
        run if isinstance(run := doc.get("run"), dict) else {} for doc in (baseline, current)
    ]
    specs = [str(run.get("spec_version", "?")) for run in runs]
    if specs[0] != specs[1]:
        found.append(
            f"the baseline was measured under spec {printable(specs[0], 40)}, this run under "
            f"spec {printable(specs[1], 40)}: tolerances and checks may differ"
        )
    return found


def view_of(results_path: Path, baseline: Path | None) -> ReportView:
    document = read_results(Path(results_path))
    other = read_results(Path(baseline), "baseline") if baseline else None
    warnings = baseline_warnings(other, document) if other is not None else []
    try:
        return build_view(document, other, tuple(warnings))
    except (KeyError, TypeError, ValueError) as error:
        raise ReportError(f"{results_path}: a check record is malformed ({error!r})") from error


def write_atomically(out_path: Path, text: str) -> Path:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    scratch = out_path.with_name(out_path.name + ".tmp")
    scratch.write_text(text, encoding="utf-8")
    scratch.replace(out_path)
    return out_path


def write_report(results_path: Path, out_path: Path, baseline: Path | None = None) -> Path:
    """Render the results file as one self-contained HTML file at ``out_path``; returns it."""
    return write_atomically(out_path, render_html(view_of(results_path, baseline)))


def write_markdown(
    results_path: Path, out_path: Path, baseline: Path | None = None, report_name: str | None = None
) -> Path:
    return write_atomically(out_path, render_markdown(view_of(results_path, baseline), report_name))


@click.command("report")
@click.argument("results_json", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "-o",
    "--out",
    "out_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="HTML file to write (default: report.html beside RESULTS_JSON).",
)
@click.option(
    "--baseline",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Another run's results.json: mark what regressed, recovered or moved.",
)
@click.option(
    "--markdown",
    "markdown_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write a Markdown summary here (for a CI job summary).",
)
def report_command(
    results_json: Path, out_path: Path | None, baseline: Path | None, markdown_path: Path | None
) -> None:
    """Render a results file as one self-contained HTML report."""
    out_path = out_path or results_json.with_name("report.html")
    started = time.perf_counter()
    try:
        view = view_of(results_json, baseline)
        if view.comparison:
            for warning in view.comparison.warnings:
                click.echo(f"warning: {warning}", err=True)
        write_atomically(out_path, render_html(view))
        if markdown_path:
            write_atomically(markdown_path, render_markdown(view, out_path.name))
    except (ReportError, OSError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    size_kb = out_path.stat().st_size / 1024
    click.echo(f"report: {out_path} ({size_kb:.0f} KB, {time.perf_counter() - started:.1f} s)")
    if markdown_path:
        click.echo(f"summary: {markdown_path}")
