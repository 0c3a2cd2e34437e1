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
from conformance.results.document import load_document


class ReportError(RuntimeError):
    """The results (or baseline) file cannot be read as a results document."""


def read_results(path: Path) -> dict[str, Any]:
    try:
        document = load_document(path)
    except FileNotFoundError as error:
        raise ReportError(f"no results file at {path}") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReportError(f"{path} is not a readable JSON results file: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("checks"), list):
        raise ReportError(f"{path} is not a results document (no list of checks)")
    return document


def view_of(results_path: Path, baseline: Path | None) -> ReportView:
    document = read_results(Path(results_path))
    try:
        return build_view(document, read_results(Path(baseline)) if baseline else None)
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
    """Render the results file as one self-contained HTML file at ``out_path``; returns that path."""
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
