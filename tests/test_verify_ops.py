"""Certifying a vendor plug-in's op table (issue 11 item 7): `conformance certify --profile ops`
puts the op table in the bundle, `verify` rebuilds it from the bundle's case records, and a
bundle whose table claims more than its records give is refused; the scoreboard shows the op
coverage (the headline: op types whose every case passes).

One real bundle per module: the onnx.backend plug-in of tests/backend_fixture.py (ONNX Runtime
behind the Backend API) on the Softmax and Relu cases of the pinned case set, certified through
the CLI in a subprocess, the way a vendor runs it. The case set is generated into the session's
temporary case cache (conftest's ops_case_cache, shared with tests/test_ops.py; never the user's).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from certify_fixtures import RESULTS, edit_json, members, rewrite
from click.testing import CliRunner
from test_report import OpenedReport, browser  # noqa: F401 - the browser fixture

from conformance.certify.command import certify_command, scoreboard_command, verify_command
from conformance.certify.context import load_context
from conformance.certify.interface import Reason
from conformance.certify.scoreboard import build_scoreboard, entry_of
from conformance.certify.verify import verify_bundle
from conformance.ops import scoring
from conformance.ops.cases import CACHE_ENV

PLUGIN = "backend:tests.backend_fixture:OrtBackend"
OPS = ("Softmax", "Relu")
ROOT = Path(__file__).resolve().parents[1]
OPS_JSON = "ops.json"


@pytest.fixture(scope="module")
def cache_env(ops_case_cache):
    """The verifier loads the case set too: from the session's temporary case cache."""
    before = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(ops_case_cache)
    yield ops_case_cache
    if before is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = before


@pytest.fixture(scope="module")
def context():
    return load_context()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, cache_env) -> Path:
    folder = tmp_path_factory.mktemp("ops-bundle")
    system = folder / "system.json"
    system.write_text(json.dumps({"submitter": "acme", "system_name": "npu", "status": "preview"}))
    out = folder / "ops.zip"
    args = ["--target", PLUGIN, "--profile", "ops", "--system", str(system), "--out", str(out)]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance",
            "certify",
            *args,
            *(x for o in OPS for x in ("--op", o)),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={**os.environ, CACHE_ENV: str(cache_env), "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"CERTIFIED: {PLUGIN} for ops" in result.stdout
    return out


def every_case_passes(cases: list[dict]) -> dict[str, bool]:
    """Op type -> whether every tested case of it passed, straight from the records."""
    by_op: dict[str, list[str]] = defaultdict(list)
    for case in cases:
        if case["set"] == "node" and case["category"] != "not-testable-here":
            by_op[case["op"]].append(case["category"])
    return {op: all(c == "passed" for c in categories) for op, categories in by_op.items()}


def test_plugin_op_table_is_certified_and_verified(bundle, context, cache_env):
    content = members(bundle)
    results = json.loads(content[RESULTS])
    table = json.loads(content[OPS_JSON])
    cases = results["ops"]["cases"]
    assert cases and {c["target"] for c in cases} == {PLUGIN}
    assert {c["op"] for c in cases} == set(OPS)
    assert results["ops"]["selection"] == {"ops": list(OPS), "cases": [], "sets": []}
    # the table in the bundle is the one the records give (H6's scoring over the records)
    recomputed = scoring.recompute(results["ops"])
    assert {k: table[k] for k in scoring.TABLE_KEYS} == recomputed
    passing = every_case_passes(cases)
    assert table["coverage"] == {
        "all_passing": sum(passing.values()),
        "tested": len(passing),
        "total": len(passing),
    }
    assert table["cases"] == len(cases) == sum(table["categories"][PLUGIN].values())
    verification = verify_bundle(bundle, context)
    assert verification.verified, [f.describe() for f in verification.findings]
    assert verification.op_table == table
    outcome = verification.outcome("ops")
    assert outcome is not None and outcome.certified
    assert (outcome.required, outcome.passed) == (
        len(cases),
        sum(c["category"] == "passed" for c in cases),
    )
    result = CliRunner().invoke(verify_command, [str(bundle)])
    cov = table["coverage"]
    assert result.exit_code == 3, result.output  # intact, unsigned
    assert (
        f"{cov['all_passing']} op types every case passes, {cov['tested']} tested" in result.output
    )
    assert f"{len(cases)} operator cases recomputed" in result.output.splitlines()[-1]


def claim_more(table: dict) -> None:
    """The plug-in claims an op it has no record of, every case passing."""
    table["scores"][PLUGIN]["Abs"] = "all"
    table["headline"][PLUGIN]["all"] = table["headline"][PLUGIN].get("all", 0) + 1
    if "coverage" in table:  # ops.json (the results' ops section has no coverage)
        table["coverage"] = {k: v + 1 for k, v in table["coverage"].items()}


def results_claim_more(document: dict) -> None:
    claim_more(document["ops"])


def record_passes_on_failing_figures(document: dict) -> None:
    case = document["ops"]["cases"][0]
    case["figures"] = {"max_abs": 1.0, "max_rel": 1.0, "min_rtol": 1.0, "min_atol": 1.0}


def record_of_another_op(document: dict) -> None:
    document["ops"]["cases"][0]["op"] = "Abs"  # Softmax's case counted for Abs


def drop_record(document: dict) -> None:
    document["ops"]["cases"].pop()


def another_case_set(document: dict) -> None:
    document["ops"]["case_set"]["digest"] = "0" * 64  # measured on cases the spec does not pin


TAMPERS = {
    "ops.json claims more": ({OPS_JSON: claim_more}, Reason.OP_TABLE_MISMATCH),
    "both tables claim more": (
        {OPS_JSON: claim_more, RESULTS: results_claim_more},
        Reason.OP_TABLE_MISMATCH,
    ),
    "passed on failing figures": (
        {RESULTS: record_passes_on_failing_figures},
        Reason.VERDICT_MISMATCH,
    ),
    "record of another op": ({RESULTS: record_of_another_op}, Reason.STRUCTURE_MISMATCH),
    "a record missing": ({RESULTS: drop_record}, Reason.MISSING_CHECK),
    "another case set": ({RESULTS: another_case_set}, Reason.CASE_SET_NOT_PINNED),
}


@pytest.mark.parametrize("case", list(TAMPERS))
def test_an_op_table_claiming_more_than_its_records_is_refused(
    case, bundle, context, cache_env, tmp_path
):
    edits, reason = TAMPERS[case]
    changes = {name: edit_json(bundle, name, edit) for name, edit in edits.items()}
    path = rewrite(bundle, tmp_path / "tampered.zip", changes)
    verification = verify_bundle(path, context)
    assert not verification.verified and verification.exit_code == 1
    assert reason in verification.reasons, [f.describe() for f in verification.findings]


def test_op_selection_needs_the_ops_profile(tmp_path):
    system = tmp_path / "system.json"
    system.write_text(json.dumps({"submitter": "acme", "system_name": "npu", "status": "preview"}))
    out = tmp_path / "b.zip"
    result = CliRunner().invoke(
        certify_command,
        ["--target", "ort:cpu", "--op", "Softmax", "--system", str(system), "--out", str(out)],
    )
    assert result.exit_code == 2 and result.output.startswith("error:"), result.output
    assert "--profile ops" in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_scoreboard_shows_op_coverage(bundle, context, cache_env, browser, tmp_path):  # noqa: F811
    board = build_scoreboard([entry_of(bundle, verify_bundle(bundle, context))], context)
    (cell,) = board.ops
    table = json.loads(members(bundle)[OPS_JSON])
    assert cell is not None and (cell.all_passing, cell.tested, cell.total) == tuple(
        table["coverage"][k] for k in ("all_passing", "tested", "total")
    )
    out = tmp_path / "board.html"
    result = CliRunner().invoke(scoreboard_command, [str(bundle), "-o", str(out)])
    assert result.exit_code == 0, result.output
    page_view = OpenedReport(browser, out)
    targets = page_view.page.inner_text("#targets")
    assert "every case passes / tested / total" in targets
    assert f"{cell.all_passing} / {cell.tested} / {cell.total}" in targets
    page_view.assert_quiet()
