"""``conformance ops``: every ONNX node case (and onnx's on-disk sets) on every target.

Exit codes: 0 when no case failed that is not on its target's known-findings list, 1 when one
did (a regression), 2 on bad input (one line naming it), 130 when interrupted.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from conformance.ops import known as known_lists
from conformance.ops import scoring
from conformance.ops.cases import CaseSet, CaseSetError, all_op_types, load_case_set
from conformance.ops.execute import OpRecord, run_cases
from conformance.options import no_compile_cache_option
from conformance.spec import PACK_DIR, SPEC_DIR, load_json

# Without --target: the default CPU runtimes (IREE compiles every case: opt in with --target).
OPS_DEFAULT_TARGETS = ("ort:cpu", "reference", "openvino:cpu", "tract")
CASE_SETS_FILE = SPEC_DIR / "ops" / "case-sets.json"


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def pinned_case_set(spec_version: str | None = None) -> dict[str, Any] | None:
    """The case set spec/ops/case-sets.json pins for a spec version (None: not pinned)."""
    if not CASE_SETS_FILE.is_file():
        return None
    data = json.loads(CASE_SETS_FILE.read_text(encoding="utf-8"))
    version = spec_version or str(load_json("spec.json")["spec_version"])
    pinned = data.get("pinned", {}).get(version)
    return pinned if isinstance(pinned, dict) else None


def pin_line(case_set: CaseSet) -> tuple[bool, str]:
    version = str(load_json("spec.json")["spec_version"])
    pinned = pinned_case_set(version)
    if pinned is None:
        return False, f"warning: spec {version} pins no case set; {case_set.name} is unpinned"
    if pinned.get("digest") == case_set.digest:
        return True, f"case set {case_set.name}: the one spec {version} pins"
    return False, (
        f"warning: case set {case_set.name} (onnx {case_set.onnx_version}) is NOT the one spec "
        f"{version} pins ({pinned.get('name')}, onnx {pinned.get('onnx_version')}): its "
        "results are not comparable with the pinned known-findings lists"
    )


def summarise(
    records: Sequence[OpRecord],
    targets: Sequence[str],
    versions: dict[str, str],
    known_dir: Path,
    untested: Sequence[tuple[str, str]] = (),
) -> tuple[dict[str, Any], list[str], bool]:
    """Scores, movement against the known lists, and the terminal text; True when any target
    regressed. ``untested``: the operators onnx defines with no node case (whole-set runs)."""
    keys = [scoring.op_key(d, o) for d, o in untested]
    table = scoring.op_scores(records, targets, untested)
    movements = []
    for target in targets:
        listed = known_lists.find_known(target, versions.get(target, ""), known_dir)
        movements.append(known_lists.movement(records, target, listed))
    section = scoring.op_table(records, targets, keys)  # recomputable: scoring.recompute
    section["known"] = {m.target: m.as_dict() for m in movements}
    lines = [
        scoring.render_categories(records, targets),
        "",
        scoring.render_per_target(records, table, targets),
        "",
    ]
    for m in movements:
        lines += m.lines()
    return section, lines, any(m.regressions for m in movements)


def quiet_runtimes() -> None:
    """Before the session opens (its children inherit the environment, describe() records it):
    ORT without spin-waiting. Each case is a fresh tiny session; ORT's intra-op workers spin
    after every run, and on a loaded machine that spin made the whole set 3-4x slower (14.6 s
    against 4.4 s wall, 6.2 against 2.5 s CPU; scripts/bench_ops.py). It changes no number.
    An explicit CONFORMANCE_ORT_ALLOW_SPINNING in the environment is kept."""
    import os

    from conformance.targets.ort import ALLOW_SPINNING_ENV

    os.environ.setdefault(ALLOW_SPINNING_ENV, "0")


def untested_ops(case_set: CaseSet) -> list[tuple[str, str]]:
    """Operators onnx defines (not deprecated) that no node case of the set tests."""
    tested = {(c.domain, c.op) for c in case_set.cases if c.set == "node"}
    return [op for op in all_op_types() if op not in tested]


@click.command("ops")
@click.option(
    "--target",
    "targets",
    multiple=True,
    help="A target (repeatable); default: ort:cpu, reference, openvino:cpu, tract.",
)
@click.option(
    "--op", "ops", multiple=True, help="Only the cases of this op type (repeatable), e.g. Softmax."
)
@click.option(
    "--case", "globs", multiple=True, help="Only cases whose name matches this glob (repeatable)."
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    help="Only this case set: node, simple, pytorch-converted, pytorch-operator.",
)
@click.option(
    "--out",
    "run_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Run folder (default: reports/ops-<timestamp>).",
)
@click.option(
    "--cache",
    "cache_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Case cache folder (default: $CONFORMANCE_OPS_CACHE or ~/.cache/conformance/ops).",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds per request (load or run) to a target.",
)
@click.option(
    "--known-dir",
    type=click.Path(path_type=Path),
    default=known_lists.KNOWN_DIR,
    show_default=True,
    help="Folder of known-findings lists.",
)
@click.option(
    "--write-known",
    type=click.Path(path_type=Path),
    default=None,
    help="Write each target's known-findings list from this run into this folder.",
)
@click.option(
    "--matrix/--no-matrix", default=True, show_default=True, help="Print the op x target matrix."
)
@no_compile_cache_option
def ops_command(
    targets: tuple[str, ...],
    ops: tuple[str, ...],
    globs: tuple[str, ...],
    sets: tuple[str, ...],
    run_dir: Path | None,
    cache_dir: Path | None,
    timeout_s: float,
    known_dir: Path,
    write_known: Path | None,
    matrix: bool,
) -> None:
    """Operator conformance: every ONNX node case on each target, scored per op type."""
    sys.exit(
        execute_ops(
            targets, ops, globs, sets, run_dir, cache_dir, timeout_s, known_dir, write_known, matrix
        )
    )


def execute_ops(
    targets: Sequence[str],
    ops: Sequence[str] = (),
    globs: Sequence[str] = (),
    sets: Sequence[str] = (),
    run_dir: Path | None = None,
    cache_dir: Path | None = None,
    timeout_s: float = 60.0,
    known_dir: Path = known_lists.KNOWN_DIR,
    write_known: Path | None = None,
    matrix: bool = True,
) -> int:
    from conformance.progress import Progress
    from conformance.run.session import RunInputError, RunRequest, RunSession, default_run_dir

    try:
        case_set = load_case_set(cache_dir)
        cases = case_set.select(ops, globs, sets)
    except CaseSetError as error:
        _fail(str(error))
    pinned, line = pin_line(case_set)
    click.echo(line, err=not pinned)
    quiet_runtimes()
    request = RunRequest(
        PACK_DIR,
        run_dir if run_dir is not None else default_run_dir("ops-"),
        targets=tuple(targets) or OPS_DEFAULT_TARGETS,
        timeout_s=timeout_s,
        verify=False,  # no pack artifact runs here: the cases come from onnx (~0.3-1 s saved)
    )
    try:
        session = RunSession.open(request)
    except RunInputError as error:
        _fail(str(error))
    names = list(session.targets)
    for name, reason in session.unavailable.items():
        click.echo(f"{name}: unavailable, no case runs on it ({reason})", err=True)
    available = [n for n in names if session.target(n).available]
    on = ", ".join(available) or "no target"
    click.echo(f"ops {session.run_dir}: {len(cases)} cases of {case_set.name} on {on}")
    try:
        with Progress(len(cases) * len(available), "cases", click.echo) as progress:
            run = run_cases(session, case_set, cases, available, lambda r: progress.advance(r.id))
    except KeyboardInterrupt:
        session.finish("interrupted")
        click.echo(f"\ninterrupted: cases kept in {session.path}", err=True)
        return 130
    versions = {n: session.target(n).version or "" for n in available}
    whole = not (ops or globs or sets)
    untested = untested_ops(case_set) if whole else []
    section, lines, regressed = summarise(run.records, available, versions, known_dir, untested)
    run.section.update(section)
    run.section["case_set"]["pinned"] = pinned
    session.finish("complete")
    if matrix:
        table = scoring.op_scores(run.records, available, untested)
        click.echo(scoring.render_matrix(table, available))
        click.echo("")
    click.echo("\n".join(lines))
    if write_known is not None:
        command = (
            "conformance ops " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "conformance ops"
        )
        for name in available:
            listed = known_lists.known_from(run.records, name, versions[name], case_set.name)
            path = known_lists.write_known(listed, write_known, command)
            click.echo(f"known-findings list: {path} ({len(listed.cases)} cases)")
    click.echo(f"results: {session.path}")
    write_report(session.path, session.document)
    return 1 if regressed else 0


def write_report(results_path: Path, document: dict[str, Any]) -> None:
    """report.html beside the results, with the operators section; a report failure never
    changes the exit code."""
    from conformance.report import ReportError
    from conformance.report import write_report as write_html
    from conformance.report.operators import add_section

    try:
        path = write_html(results_path, results_path.with_name("report.html"))
        add_section(path, document)
        click.echo(f"report: {path}")
    except (ReportError, OSError) as error:
        click.echo(f"warning: no report: {error}", err=True)
