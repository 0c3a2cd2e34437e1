"""Operator conformance (issue 11): the case set, the judge, runs on real targets in their
isolated children, scoring, known findings, negative controls. Runs use --op subsets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from conformance.ops import judge, known, scoring
from conformance.ops.cases import (
    NODE,
    RULE_ATOL,
    RULE_RTOL,
    CaseSetError,
    _disk_drafts,
    load_case_set,
)
from conformance.ops.command import pinned_case_set, untested_ops
from conformance.ops.execute import OpRecord, records_of, run_cases
from conformance.run.session import RunRequest, RunSession
from conformance.spec import PACK_DIR, SPEC_DIR

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def cache(ops_case_cache: Path) -> Path:
    """The one case cache of the test session (tests/conftest.py): generated once per run."""
    return ops_case_cache


@pytest.fixture(scope="session")
def case_set(cache: Path):
    return load_case_set(cache)


def run_ops(tmp_path: Path, case_set, targets, **select):
    session = RunSession.open(
        RunRequest(PACK_DIR, tmp_path / "run", targets=tuple(targets), timeout_s=20)
    )
    with session:
        run = run_cases(session, case_set, case_set.select(**select))
        session.finish("complete")
    return run, session


def by_case(records, target):
    return {r.case: r for r in records if r.target == target}


# ---- 1. the cases ------------------------------------------------------------------------
def test_every_node_case_and_the_on_disk_sets(case_set) -> None:
    counts = case_set.counts()
    assert counts["node"] == 1884  # onnx 1.23.2's generated node cases
    assert counts["simple"] + counts["pytorch-converted"] + counts["pytorch-operator"] == 140
    assert len({c.op_key for c in case_set.cases if c.set == NODE}) == 197
    # expanded function cases count for the op they expand
    expanded = case_set.by_name()["test_softmax_axis_0_expanded"]
    assert expanded.op == "Softmax" and expanded.expanded


def test_the_case_set_is_named_by_onnx_version_and_digest_and_pinned(case_set, cache) -> None:
    again = load_case_set(cache)  # from the cache index: no regeneration
    assert again.digest == case_set.digest and len(again.cases) == len(case_set.cases)
    assert case_set.name.startswith(f"onnx-{case_set.onnx_version}-")
    assert case_set.folder.name.endswith(case_set.digest[:16])  # content-addressed folder
    pinned = pinned_case_set("0.1.0")
    assert pinned is not None and pinned["digest"] == case_set.digest, (
        "the installed onnx generates another case set than spec 0.1.0 pins"
    )


def test_each_case_digest_covers_its_data(case_set, tmp_path) -> None:
    case = case_set.by_name()["test_abs"]
    assert case.model_path.is_file() and case.feeds(0)["x"].shape == (3, 4, 5)
    digests = {c.digest for c in case_set.cases}
    assert len(digests) > 0.95 * len(case_set.cases)  # (a few onnx cases are byte-identical)


def test_expected_outputs_rounded_from_float64_are_named_from_the_generator(case_set) -> None:
    """Item 4 of the rule: onnx's Gelu generator computes in float64 (np.sqrt(2 / np.pi) is a
    float64 scalar) and casts; Softmax's computes in float32; Identity and Constant copy."""
    cases = case_set.by_name()
    rounded = {c.name for c in case_set.cases if c.expected_rounded_from == "float64"}
    assert {"test_gelu_tanh_2", "test_gelu_tanh_2_expanded", "test_hannwindow"} <= rounded
    assert {"test_softmax_large_number", "test_identity", "test_constant", "test_abs"}.isdisjoint(
        rounded
    )
    assert all(cases[name].set == NODE for name in rounded)
    assert 20 < len(rounded) < 300  # a minority of the 1,344 float node cases
    assert case_set.digest == pinned_case_set("0.1.0")["digest"]  # metadata, not case bytes


def test_a_damaged_cache_index_is_rebuilt(cache, case_set) -> None:
    index = next((cache / "index").glob("*.json"))
    saved = index.read_text()
    index.write_text("{not json")
    try:
        assert load_case_set(cache).digest == case_set.digest
    finally:
        index.write_text(saved)


def test_a_case_data_json_tolerance_is_honoured(tmp_path, monkeypatch) -> None:
    import onnx
    from onnx import helper, numpy_helper

    import conformance.ops.cases as cases

    folder = tmp_path / "case" / "data" / "simple" / "test_tolerant"
    (folder / "test_data_set_0").mkdir(parents=True)
    for other in ("pytorch-converted", "pytorch-operator"):
        (tmp_path / "case" / "data" / other).mkdir(parents=True)
    node = helper.make_node("Abs", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", 1, [2])],
        [helper.make_tensor_value_info("y", 1, [2])],
    )
    onnx.save(helper.make_model(graph), str(folder / "model.onnx"))
    x = np.array([1, -2], np.float32)
    (folder / "test_data_set_0" / "input_0.pb").write_bytes(
        numpy_helper.from_array(x, "x").SerializeToString()
    )
    (folder / "test_data_set_0" / "output_0.pb").write_bytes(
        numpy_helper.from_array(np.abs(x), "y").SerializeToString()
    )
    (folder / "data.json").write_text(json.dumps({"rtol": 0.01, "atol": 0.5}))
    monkeypatch.setattr(cases, "onnx_dirs", lambda: (tmp_path / "case", tmp_path / "case" / "data"))
    (draft,) = _disk_drafts()
    assert (draft.rtol, draft.atol) == (0.01, 0.5)
    assert judge.rule_of(draft.rtol, draft.atol)["source"] == "data.json"
    assert judge.rule_of(RULE_RTOL, RULE_ATOL)["source"] == "onnx-runner"


def test_a_selection_that_names_nothing_is_bad_input(case_set) -> None:
    with pytest.raises(CaseSetError, match="--op 'Softmaxx'"):
        case_set.select(ops=["Softmaxx"])
    with pytest.raises(CaseSetError, match="--case"):
        case_set.select(globs=["test_nothing_*"])
    assert {c.op for c in case_set.select(ops=["softmax"])} == {"Softmax"}
    assert [c.name for c in case_set.select(globs=["test_softmax_large_number"])] == [
        "test_softmax_large_number"
    ]


# ---- 3./4. the judge -----------------------------------------------------------------------
def test_a_0d_output_must_stay_0d() -> None:
    want = [("y", np.array(3.0, np.float32))]
    assert (
        judge.compare([("y", np.array(3.0, np.float32))], want, 1e-3, 1e-7).category == judge.PASSED
    )
    verdict = judge.compare([("y", np.array([3.0], np.float32))], want, 1e-3, 1e-7)
    assert (
        verdict.category == judge.FAILED_STRUCTURE
        and "shape [1], expected []" in verdict.problems[0]
    )


def test_outputs_are_compared_by_name_not_position() -> None:
    a, b = np.ones(2, np.float32), np.zeros(2, np.float32)
    want = [("a", a), ("b", b)]
    assert judge.compare([("b", b), ("a", a)], want, 1e-3, 1e-7).category == judge.PASSED
    verdict = judge.compare([("a", a), ("c", b)], want, 1e-3, 1e-7)
    assert verdict.category == judge.FAILED_STRUCTURE and "'b' missing" in verdict.problems[0]


def test_failed_values_carry_the_minimum_passing_tolerance() -> None:
    want = [("y", np.array([1.0, 100.0], np.float32))]
    got = [("y", np.array([1.0, 100.5], np.float32))]
    verdict = judge.compare(got, want, 1e-3, 1e-7)
    assert verdict.category == judge.FAILED_VALUES
    figures = verdict.figures.as_dict()
    assert figures["max_abs"] == pytest.approx(0.5)
    assert figures["min_rtol"] == pytest.approx(0.005, rel=1e-4)  # (0.5 - 1e-7) / 100
    assert figures["min_atol"] == pytest.approx(0.4, rel=1e-4)  # 0.5 - 1e-3 * 100
    # at the minimum tolerance it passes, just below it fails
    assert judge.compare(got, want, figures["min_rtol"] * 1.0001, 1e-7).category == judge.PASSED
    assert (
        judge.compare(got, want, figures["min_rtol"] * 0.99, 1e-7).category == judge.FAILED_VALUES
    )


def test_nan_and_dtype_are_findings() -> None:
    want = [("y", np.array([1.0, np.nan], np.float32))]
    assert (
        judge.compare([("y", np.array([1.0, np.nan], np.float32))], want, 1e-3, 1e-7).category
        == judge.PASSED
    )
    assert (
        judge.compare([("y", np.array([np.nan, np.nan], np.float32))], want, 1e-3, 1e-7).category
        == judge.FAILED_VALUES
    )
    assert (
        judge.compare([("y", np.array([1.0, np.nan]))], want, 1e-3, 1e-7).category
        == judge.FAILED_STRUCTURE
    )


@pytest.mark.parametrize(
    ("stage", "message", "category"),
    [
        (
            "load",
            "[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : "
            "Could not find an implementation for Cast(28) node with name ''",
            judge.NOT_IMPLEMENTED,
        ),
        (
            "load",
            "OpConversionFailure: No conversion rule found for operations: DFT",
            judge.NOT_IMPLEMENTED,
        ),
        (
            "run",
            "RuntimeError: No corresponding Numpy type for Tensor Type. bfloat16",
            judge.RUN_ERROR,
        ),
        ("load", "Unsupported element type: f8e4m3", judge.UNSUPPORTED_DTYPE),
        (
            "load",
            "[ONNXRuntimeError] : 10 : INVALID_GRAPH : This is an invalid model.",
            judge.LOAD_REFUSED,
        ),
        (
            "run",
            "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Non-zero status code",
            judge.RUN_ERROR,
        ),
    ],
)
def test_refusals_are_classified_from_the_message(stage, message, category) -> None:
    assert judge.classify(stage, message) == category


def test_random_ops_are_judged_by_properties() -> None:
    p = np.full(4000, 0.3)
    rng = np.random.default_rng(1)
    draws = (rng.random(4000) < 0.3).astype(np.float64)
    ok = judge.properties(
        "Bernoulli", {"x": p}, [("y", draws)], [("y", np.zeros(4000))], 1e-3, 1e-7
    )
    assert ok.category == judge.PASSED and ok.judged_by == "properties"
    biased = judge.properties(
        "Bernoulli", {"x": p}, [("y", np.ones(4000))], [("y", np.zeros(4000))], 1e-3, 1e-7
    )
    assert biased.category == judge.FAILED_VALUES
    x = np.arange(1, 1001, dtype=np.float32)
    mask = rng.random(1000) > 0.5
    y = np.where(mask, x / 0.5, 0).astype(np.float32)
    dropout = judge.properties(
        "Dropout",
        {"x": x, "r": np.array(0.5, np.float32), "t": np.array(True)},
        [("y", y), ("m", mask)],
        [("y", x), ("m", mask)],
        1e-3,
        1e-7,
    )
    assert dropout.category == judge.PASSED
    wrong = judge.properties(
        "Dropout",
        {"x": x, "r": np.array(0.5, np.float32), "t": np.array(True)},
        [("y", np.where(mask, x, 0).astype(np.float32)), ("m", mask)],
        [("y", x), ("m", mask)],
        1e-3,
        1e-7,
    )
    assert wrong.category == judge.FAILED_VALUES  # kept elements not scaled by 1 / (1 - ratio)


# ---- 2./3. runs on real targets, in the session's isolated children -------------------------
def test_a_bfloat16_output_is_judged_at_two_ulps_as_the_runner_does() -> None:
    """rtol 1e-3 is below one bfloat16 ulp; the ONNX runner judges bfloat16 at 2**-6 (IREE's
    five bf16 Attention cases passed its lean driver and failed here before)."""
    from ml_dtypes import bfloat16
    from onnx.backend.test.runner import Runner

    want = np.array([0.5625, 0.703125, 1.0], bfloat16)
    one_ulp = np.array([0.55859375, 0.69921875, 1.0], bfloat16)  # IREE's values, one ulp off
    Runner.assert_similar_outputs([want], [one_ulp], 1e-3, 1e-7)  # the runner passes them
    verdict = judge.compare([("Y", one_ulp)], [("Y", want)], 1e-3, 1e-7)
    assert verdict.category == judge.PASSED
    assert verdict.figures is not None and verdict.figures.min_rtol > 1e-3  # still reported
    four_ulps = np.array([0.546875, 0.703125, 1.0], bfloat16)  # off by 0.0156 / 0.5625
    failed = judge.compare([("Y", four_ulps)], [("Y", want)], 1e-3, 1e-7)
    assert failed.category == judge.FAILED_VALUES
    assert "outside rtol 0.015625" in failed.problems[0]
    with pytest.raises(AssertionError):
        Runner.assert_similar_outputs([want], [four_ulps], 1e-3, 1e-7)
    # float32 and float16 outputs keep the rule's rtol
    as32 = judge.compare(
        [("Y", one_ulp.astype(np.float32))], [("Y", want.astype(np.float32))], 1e-3, 1e-7
    )
    assert as32.category == judge.FAILED_VALUES
    as16 = judge.compare(
        [("Y", one_ulp.astype(np.float16))], [("Y", want.astype(np.float16))], 1e-3, 1e-7
    )
    assert as16.category == judge.FAILED_VALUES


def test_ort_and_reference_on_a_subset(tmp_path, case_set) -> None:
    run, session = run_ops(
        tmp_path,
        case_set,
        ["ort:cpu", "reference"],
        ops=["Softmax", "Range", "Clip", "Bernoulli", "Dropout", "Resize", "SequenceInsert"],
    )
    ort, ref = by_case(run.records, "ort:cpu"), by_case(run.records, "reference")
    assert ort["test_softmax_large_number"].category == judge.PASSED
    # 0-d inputs stay 0-d (Range takes three scalars)
    assert case_set.by_name()["test_range_float_type_positive_delta"].feeds(0)["start"].shape == ()
    assert ort["test_range_float_type_positive_delta"].category == judge.PASSED
    # an optional input left out by an empty name: Clip(x, "", max)
    assert ort["test_clip_default_max"].category == judge.PASSED
    assert ref["test_clip_default_max"].category == judge.PASSED
    # random ops: the reference's draws pass by properties, ORT has no kernel for Bernoulli's body
    assert (
        ref["test_bernoulli"].category == judge.PASSED
        and ref["test_bernoulli"].judged_by == "properties"
    )
    assert ref["test_training_dropout"].judged_by == "properties"
    assert ort["test_bernoulli"].category == judge.NOT_IMPLEMENTED
    assert "NOT_IMPLEMENTED" in ort["test_bernoulli"].message
    # sequences cannot cross the tensor-only target contract
    assert ort["test_sequence_insert_at_back"].category == judge.NOT_TESTABLE
    # the records are in the results file, with the case set identity and the rule
    document = json.loads(session.path.read_text())
    assert document["ops"]["case_set"]["digest"] == case_set.digest
    assert len(records_of(document)) == len(run.records)
    first = document["ops"]["cases"][0]
    assert first["kind"] == "op-case" and first["rule"] == {
        "rtol": 1e-3,
        "atol": 1e-7,
        "source": "onnx-runner",
    }
    schema = json.loads((SPEC_DIR / "ops" / "ops-section.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(document["ops"])
    from conformance.results.document import validate_document

    validate_document(document)  # the results schema holds the ops section too


def test_exotic_element_types_the_api_cannot_carry_are_not_testable(tmp_path, case_set) -> None:
    run, _ = run_ops(
        tmp_path,
        case_set,
        ["ort:cpu"],
        globs=["test_cast_INT4_to_FLOAT", "test_cast_FLOAT_to_FLOAT8E4M3FN"],
    )
    ort = by_case(run.records, "ort:cpu")
    assert ort["test_cast_INT4_to_FLOAT"].category == judge.NOT_TESTABLE
    # ORT hands float8 back as its raw uint8 bits: viewed as float8 and judged on values
    assert ort["test_cast_FLOAT_to_FLOAT8E4M3FN"].category == judge.PASSED


# ---- 7. negative controls ------------------------------------------------------------------
def test_defect_targets_fail_the_cases_they_touch(tmp_path, case_set, monkeypatch) -> None:
    monkeypatch.setenv("CONFORMANCE_DEFECT_MARKERS", str(tmp_path))
    run, _ = run_ops(
        tmp_path,
        case_set,
        ["defect:noise", "defect:nan", "defect:dtype", "defect:crash"],
        globs=["test_softmax_large_number", "test_softmax_axis_0", "test_abs"],
    )
    for target in ("defect:noise", "defect:nan"):
        for case in ("test_softmax_large_number", "test_softmax_axis_0", "test_abs"):
            assert by_case(run.records, target)[case].category == judge.FAILED_VALUES, (
                target,
                case,
            )
    assert all(
        r.category == judge.FAILED_STRUCTURE for r in run.records if r.target == "defect:dtype"
    )
    crashed = [r for r in run.records if r.target == "defect:crash"]
    # each crash costs one case: every case ran, in a fresh child each time
    assert len(crashed) == 3 and all(r.category == judge.CRASHED for r in crashed)


# ---- 5. scoring, 6. known findings -----------------------------------------------------------
def _record(case: str, op: str, category: str, target: str = "t") -> OpRecord:
    problems = () if category == judge.PASSED else ("why",)
    return OpRecord(case, NODE, op, "", target, category, judge.rule_of(1e-3, 1e-7), problems)


def test_an_op_scores_all_only_when_every_case_passes() -> None:
    records = [
        _record("a1", "A", judge.PASSED),
        _record("a2", "A", judge.PASSED),
        _record("b1", "B", judge.PASSED),
        _record("b2", "B", judge.FAILED_VALUES),
        _record("c1", "C", judge.NOT_IMPLEMENTED),
        _record("d1", "D", judge.NOT_TESTABLE),
        _record("e1", "E", judge.PASSED),
        _record("e2", "E", judge.NOT_TESTABLE),
    ]
    table = scoring.op_scores(records, ["t"], [("", "F")])
    scores = {op: row["t"].score for op, row in table.items()}
    assert scores == {
        "A": "all",
        "B": "some",
        "C": "none",
        "D": "not-testable",
        "E": "all",
        "F": "untested",
    }
    assert scoring.headline(table, "t")["all"] == 2  # never "any case passes" (B is some)


def test_untested_ops_are_those_without_a_node_case(case_set) -> None:
    untested = untested_ops(case_set)
    assert ("", "RandomNormal") in untested and ("", "Softmax") not in untested


def test_known_findings_move_forward_only(tmp_path) -> None:
    listed = known.known_from(
        [
            _record("x", "A", judge.FAILED_VALUES),
            _record("y", "A", judge.NOT_IMPLEMENTED),
            _record("z", "A", judge.NOT_TESTABLE),
        ],
        "t",
        "1.0",
        "set",
    )
    assert set(listed.cases) == {"x", "y"}  # not-testable is no failure
    path = known.write_known(listed, tmp_path, "test")
    again = known.read_known(path)
    now = [
        _record("x", "A", judge.PASSED),
        _record("y", "A", judge.NOT_IMPLEMENTED),
        _record("w", "A", judge.CRASHED),
    ]
    moved = known.movement(now, "t", again)
    assert moved.fixed == ("x",) and moved.regressions == ("w",) and moved.known == ("y",)
    with pytest.raises(known.KnownListError):
        path.write_text("[]")
        known.read_known(path)


def test_known_list_reasons_do_not_carry_the_run_folders() -> None:
    record = OpRecord(
        "c",
        NODE,
        "A",
        "",
        "t",
        judge.LOAD_REFUSED,
        judge.rule_of(1e-3, 1e-7),
        ("load: kept at /tmp/run-1/artifacts/iree/node/c/model.mlir; see https://x.org/a/b",),
    )
    listed = known.known_from([record], "t", "1", "set")
    assert listed.cases["c"]["reason"] == "load: kept at .../model.mlir; see https://x.org/a/b"


def test_the_committed_known_lists_say_how_they_were_made() -> None:
    lists = sorted((SPEC_DIR / "ops" / "known").glob("*.json"))
    assert {p.name.split("-")[0] for p in lists} >= {"ort_cpu", "reference"}
    for path in lists:
        listed = known.read_known(path)
        assert listed.cases and listed.case_set.startswith("onnx-")
    assert "produced" in (SPEC_DIR / "ops" / "README.md").read_text()


def test_ops_command_exit_codes(tmp_path, cache) -> None:
    """No list: a failing case is a regression (exit 1); with the run's own list: exit 0; a
    selection naming nothing: exit 2 with one line."""
    base = [
        sys.executable,
        "-m",
        "conformance",
        "ops",
        "--target",
        "reference",
        "--cache",
        str(cache),
        "--no-matrix",
    ]
    bad = subprocess.run(
        [*base, "--op", "Nope", "--out", str(tmp_path / "r0")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith(
        "error: --op 'Nope'"
    )
    args = ["--op", "Range", "--known-dir", str(tmp_path / "none")]
    first = subprocess.run(
        [*base, *args, "--out", str(tmp_path / "r1"), "--write-known", str(tmp_path / "k")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert first.returncode == 1, (
        first.stdout + first.stderr
    )  # reference fails Range's expanded cases
    assert "regression: test_range_float_type_positive_delta_expanded" in first.stdout
    second = subprocess.run(
        [*base, "--op", "Range", "--known-dir", str(tmp_path / "k"), "--out", str(tmp_path / "r2")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert second.returncode == 0, second.stdout + second.stderr
    assert "0 regression(s)" in second.stdout
    report = (tmp_path / "r2" / "report.html").read_text()
    assert report.count('<section id="operators">') == 1 and "Range" in report


def test_the_recorded_op_table_is_recomputed_from_the_results_file(tmp_path, cache) -> None:
    """Contract P8: scoring.recompute(section) turns a results file's case records back into
    the per-op table the run recorded (certify/verify use it); tampering shows."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance",
            "ops",
            "--target",
            "ort:cpu",
            "--target",
            "reference",
            *("--op", "Range", "--op", "Bernoulli", "--op", "SequenceInsert", "--op", "Softmax"),
            *("--cache", str(cache), "--no-matrix", "--out", str(tmp_path / "r")),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode in (0, 1), result.stderr
    document = json.loads((tmp_path / "r" / "results.json").read_text())
    # conformance ops runs ORT without spin-waiting (each case a fresh session), and says so
    assert document["targets"]["ort:cpu"]["options"]["allow_spinning"] is False
    section = document["ops"]
    recorded = scoring.recorded_table(section)
    assert scoring.recompute(section) == recorded
    assert recorded["targets"] == ["ort:cpu", "reference"]
    assert recorded["scores"]["ort:cpu"]["Softmax"] == scoring.ALL
    assert recorded["scores"]["ort:cpu"]["Bernoulli"] == scoring.NONE  # no kernel for its body
    assert recorded["scores"]["reference"]["SequenceInsert"] == scoring.NOT_TESTABLE
    assert sum(recorded["categories"]["ort:cpu"].values()) == len(
        [c for c in section["cases"] if c["target"] == "ort:cpu"]
    )
    # a table that claims more than its records is caught
    claimed = json.loads(json.dumps(section))
    claimed["headline"]["ort:cpu"]["all"] += 1
    assert scoring.recompute(claimed) != scoring.recorded_table(claimed)
    failing = next(c for c in claimed["cases"] if c["category"] == judge.NOT_IMPLEMENTED)
    failing["category"] = judge.PASSED
    assert scoring.recompute(claimed)["scores"] != recorded["scores"]
    with pytest.raises(ValueError):
        scoring.recompute({"cases": [{"case": "x"}]})


def test_the_op_table_counts_untested_ops_as_recorded_and_imports_no_runtime() -> None:
    section = {
        "cases": [_record("a1", "A", judge.PASSED).as_dict()],
        "targets": ["t"],
        "untested": ["B", "ai.onnx.ml:C"],
    }
    table = scoring.recompute(section)
    assert table["headline"]["t"] == {"all": 1, "untested": 2}
    assert table["scores"] == {"t": {"A": "all"}}
    probe = (
        "import sys, conformance.ops.scoring; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('onnx', 'onnxruntime', 'openvino', 'tract', 'iree', 'torch', 'tensorflow')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "[]"


def test_ops_records_say_whether_the_compile_came_from_the_cache(
    tmp_path, case_set, monkeypatch
) -> None:
    """IREE compiles each case: the first run misses the compile cache, the second hits it,
    the bypass (CONFORMANCE_NO_COMPILE_CACHE=1, what --no-compile-cache sets) turns it off."""
    monkeypatch.setenv("CONFORMANCE_CACHE_DIR", str(tmp_path / "compile"))
    seen = []
    for index, bypass in enumerate((False, False, True)):
        if bypass:
            monkeypatch.setenv("CONFORMANCE_NO_COMPILE_CACHE", "1")
        run, session = run_ops(
            tmp_path / str(index), case_set, ["iree:llvm-cpu"], globs=["test_abs"]
        )
        if not session.target("iree:llvm-cpu").available:
            pytest.skip(f"iree:llvm-cpu unavailable: {session.target('iree:llvm-cpu').reason}")
        (record,) = run.records
        assert record.category == judge.PASSED
        seen.append(json.loads(session.path.read_text())["ops"]["cases"][0]["compile_cache"])
    assert seen == ["miss", "hit", "off"]
    from click.testing import CliRunner

    from conformance.ops.command import ops_command

    assert "--no-compile-cache" in CliRunner().invoke(ops_command, ["--help"]).output


def test_a_second_run_over_one_compile_cache_gives_the_same_categories(
    tmp_path, case_set, monkeypatch
) -> None:
    """OpenVINO 2026.4's own model cache gave wrong numbers for RotaryEmbedding (max abs ~1)
    and lost an input name (Einsum) on a cache hit: openvino:cpu must judge the same on a
    second run over one cache folder as on the first."""
    monkeypatch.setenv("CONFORMANCE_CACHE_DIR", str(tmp_path / "compile"))
    globs = ["test_rotary_embedding", "test_rotary_embedding_no_position_ids", "test_einsum_scalar"]
    seen = []
    for index in range(2):
        run, session = run_ops(tmp_path / str(index), case_set, ["openvino:cpu"], globs=globs)
        if not session.target("openvino:cpu").available:
            pytest.skip(f"openvino:cpu unavailable: {session.target('openvino:cpu').reason}")
        seen.append({r.case: r.category for r in run.records})
    assert seen[0] == seen[1] == dict.fromkeys(globs, judge.PASSED)


def test_weights_listed_as_graph_inputs_are_fed_their_initializer(tmp_path, case_set) -> None:
    """onnx's pytorch-converted models (IR < 4) list weights as graph inputs; an adapter that
    demands every listed input (the reference's) gets the initializer's value."""
    run, _ = run_ops(tmp_path, case_set, ["reference", "ort:cpu"], globs=["test_Conv2d"])
    assert {r.target: r.category for r in run.records} == {
        "reference": judge.PASSED,
        "ort:cpu": judge.PASSED,
    }


def test_the_operators_section_renders_the_matrix_escaped(tmp_path, case_set) -> None:
    from conformance.report.operators import operators_section

    run, session = run_ops(tmp_path, case_set, ["reference"], ops=["Range", "Softmax"])
    document = json.loads(session.path.read_text())
    failing = next(r for r in document["ops"]["cases"] if r["category"] != "passed")
    failing["problems"] = ["<script>x</script>"]
    page = operators_section(document)
    assert "<h3>ai.onnx</h3>" in page and "Range" in page and "reference" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "test_range_float_type_positive_delta_expanded: failed-structure" in page
    assert operators_section({"checks": []}) == ""


def test_records_and_report_cells_say_when_the_expected_output_is_rounded(
    tmp_path, case_set
) -> None:
    from conformance.report.operators import operators_section

    _, session = run_ops(tmp_path, case_set, ["reference"], globs=["test_gelu_tanh_*", "test_abs"])
    document = json.loads(session.path.read_text())
    flags = {r["case"]: r.get("expected_rounded_from") for r in document["ops"]["cases"]}
    assert flags["test_gelu_tanh_2"] == "float64" and flags["test_abs"] is None
    schema = json.loads((SPEC_DIR / "ops" / "ops-section.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(document["ops"])
    page = operators_section(document)
    gelu_row = next(line for line in page.splitlines() if line.startswith("<tr><td>Gelu"))
    assert 'class="op-rounded"' in gelu_row and "test_gelu_tanh_2" in gelu_row
    abs_row = next(line for line in page.splitlines() if line.startswith("<tr><td>Abs"))
    assert "op-rounded" not in abs_row


def test_the_profile_api_gives_pytest_ids_and_known_outcomes(tmp_path, case_set) -> None:
    from conformance.ops.profile import FAIL, PASS, SKIP, XFAIL, OpsProfile

    session = RunSession.open(
        RunRequest(PACK_DIR, tmp_path / "run", targets=("reference",), timeout_s=20)
    )
    with session:
        profile = OpsProfile.open(session, case_set, known_dir=tmp_path / "known")
        plans = profile.plans(
            globs=["test_range_float_type_positive_delta*", "test_identity_sequence"]
        )
        assert "ops-test_range_float_type_positive_delta-reference" in [p.id for p in plans]
        outcomes = {p.case.name: profile.outcome(profile.run(p))[0] for p in plans}
        assert outcomes["test_range_float_type_positive_delta"] == PASS
        assert outcomes["test_range_float_type_positive_delta_expanded"] == FAIL  # no list yet
        assert outcomes["test_identity_sequence"] == SKIP
        listed = known.known_from(profile.run_state.records, "reference", "1.23.2", case_set.name)
        known.write_known(listed, tmp_path / "known", "test")
        again = OpsProfile.open(session, case_set, known_dir=tmp_path / "known")
        expanded = next(p for p in plans if p.case.name.endswith("delta_expanded"))
        assert again.outcome(again.run(expanded))[0] == XFAIL  # on the list now
        section, _, regressed = again.finish()
        assert not regressed and "reference" in section["known"]


def test_a_hang_costs_one_case(tmp_path, case_set) -> None:
    session = RunSession.open(
        RunRequest(PACK_DIR, tmp_path / "run", targets=("defect:hang",), timeout_s=4)
    )
    with session:
        run = run_cases(session, case_set, case_set.select(globs=["test_abs"]))
    assert [r.category for r in run.records] == [judge.TIMED_OUT]
    assert "within 4 s" in run.records[0].message


def test_pytest_profile_ops_items_and_known_outcomes(tmp_path, cache) -> None:
    """pytest --conformance --profile ops: one item per case and target, a known failure is an
    xfail (an unknown one fails: test_the_profile_api_gives_pytest_ids_and_known_outcomes)."""
    import os

    env = {**os.environ, "CONFORMANCE_OPS_CACHE": str(cache)}
    common = [
        sys.executable,
        "-m",
        "pytest",
        "--conformance",
        "--profile",
        "ops",
        "-p",
        "no:cacheprovider",
    ]
    common += ["--target", "reference", "--op", "Range", "-q", "-rxs"]
    listed = subprocess.run(
        [*common, "--collect-only", "--conformance-out", str(tmp_path / "c")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert (
        "conformance/reference::ops-test_range_float_type_positive_delta-reference" in listed.stdout
    )
    ran = subprocess.run(
        [*common, "--conformance-out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert ran.returncode == 0, ran.stdout[-2000:]
    assert "4 passed, 4 xfailed" in ran.stdout  # the committed reference list holds the 4
    document = json.loads((tmp_path / "r" / "results.json").read_text())
    assert (
        len(document["ops"]["cases"]) == 8 and document["ops"]["known"]["reference"]["known"] == 4
    )


@pytest.mark.parametrize(
    ("args", "first_words"),
    [
        (["--target", "nope"], "error: unknown target 'nope'"),
        (["--target", "reference", "--timeout", "-1"], "error: timeout -1.0"),
        (["--target", "reference", "--set", "bogus"], "error: --set 'bogus'"),
    ],
)
def test_bad_ops_input_is_one_line_and_exit_2(tmp_path, cache, args, first_words) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance",
            "ops",
            "--op",
            "Abs",
            "--cache",
            str(cache),
            *args,
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(first_words), result.stderr
    assert "Traceback" not in result.stderr


def test_the_case_cache_key_follows_the_ml_dtypes_version(monkeypatch):
    # onnx 1.23.2 generates its int2/int4 Cast cases through ml_dtypes: 0.7.0 gives 60 other cases
    # than 0.6.0, so a set cached under one version must not be served under another
    import ml_dtypes

    from conformance.ops.cases import source_fingerprint

    installed = source_fingerprint()
    monkeypatch.setattr(ml_dtypes, "__version__", "0.7.0-other")
    assert source_fingerprint() != installed
