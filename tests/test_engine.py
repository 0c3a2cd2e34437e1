"""The run session catches every negative control, survives crashes and hangs, and passes honest
targets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from conformance.results.document import records_of, validate_document
from conformance.results.records import CRASHED, FAILED, NOT_PASSED, PASSED, TIMED_OUT
from conformance.run.session import RunRequest, RunSession

DEFECTS = [
    "noise",
    "fp16",
    "first-sample",
    "swap-outputs",
    "nan",
    "stale",
    "dtype",
    "crash",
    "hang",
]


def run_targets(
    pack, tmp_path, targets, models=("mlp",), exporters=("torch-script",), timeout_s=5.0
):  # 5 s: defect:fp16's load (an fp16 conversion) took over 2 s on a loaded 2-core machine
    request = RunRequest(pack.directory, tmp_path, targets, models, exporters, timeout_s=timeout_s)
    session = RunSession.open(request)
    session.run_checks()
    session.finish()
    return session.document


@pytest.fixture(scope="module")
def defect_run(pack, tmp_path_factory):
    """ort:cpu first and last, the negative controls between: a crash or hang must not cost the
    run."""
    targets = ["ort:cpu", *(f"defect:{d}" for d in DEFECTS), "ort:cpu:opt=disabled"]
    document = run_targets(pack, tmp_path_factory.mktemp("defects"), targets)
    by_target = defaultdict(list)
    for record in records_of(document):
        by_target[record.target].append(record)
    return document, by_target


def sets_of(pack, model: str = "mlp") -> int:
    """Test data sets of a model in the pack: the checks of one artifact on one target."""
    return len(pack.model(model).data_sets)


def test_honest_targets_around_the_defects_pass(defect_run, pack):
    _, by_target = defect_run
    for target in ("ort:cpu", "ort:cpu:opt=disabled"):
        assert [r.verdict for r in by_target[target]] == [PASSED] * sets_of(pack)


@pytest.mark.parametrize(
    "defect,verdict,where",
    [
        ("noise", FAILED, "values out of tolerance"),
        ("fp16", FAILED, "values out of tolerance"),
        ("swap-outputs", FAILED, "values out of tolerance"),
        ("nan", FAILED, "NaN"),
        ("dtype", FAILED, "dtype"),
        ("crash", CRASHED, "died"),
        ("hang", TIMED_OUT, "no answer"),
    ],
)
def test_every_check_of_a_defect_is_caught(defect_run, pack, defect, verdict, where):
    _, by_target = defect_run
    records = by_target[f"defect:{defect}"]
    assert len(records) == sets_of(pack)
    for record in records:
        assert record.verdict == verdict, (record.check_id, record.problems)
        assert record.attributed_to == "target"
        assert any(where in problem for problem in record.problems), record.problems


def test_first_sample_defect_fails_batches(defect_run):
    _, by_target = defect_run
    verdicts = {r.data_set_label: r for r in by_target["defect:first-sample"]}
    assert verdicts["batch1"].verdict == PASSED  # one sample is all it handles right
    assert verdicts["batch4"].verdict == FAILED


def test_stale_defect_fails_once_the_input_changes(defect_run):
    _, by_target = defect_run
    records = by_target["defect:stale"]
    assert records[-1].verdict == FAILED
    assert all(r.verdict in NOT_PASSED for r in records[1:])


def test_failures_carry_error_figures(defect_run):
    _, by_target = defect_run
    noisy = by_target["defect:noise"][1]
    stats = next(iter(noisy.outputs.values()))
    assert stats["max_abs"] > 0 and stats["margin"] > 1 and noisy.margin > 1
    minimum = noisy.margin * noisy.tolerance["rtol"]
    assert minimum > noisy.tolerance["rtol"]


def test_results_with_every_verdict_validate_against_the_schema(defect_run):
    document, _ = defect_run
    verdicts = {c["verdict"] for c in document["checks"]}
    assert {PASSED, FAILED, CRASHED, TIMED_OUT} <= verdicts
    validate_document(document)


def test_schema_rejects_a_passed_check_with_a_margin_above_one(defect_run):
    import copy

    import jsonschema

    document = copy.deepcopy(defect_run[0])
    document["checks"][0]["margin"] = 1.5
    with pytest.raises(jsonschema.ValidationError):
        validate_document(document)


def test_honest_cpu_targets_pass_the_whole_core_set(pack, tmp_path):
    """Every check passes, or fails on an artifact the pack already records as wrong (exporter
    finding); the one known runtime finding is onnx.reference's on detection_head (its
    GatherElements uses numpy.choose, capped at 64 choices: SPEC section 6)."""
    document = run_targets(
        pack,
        tmp_path,
        ["ort:cpu", "ort:cpu:opt=basic", "ort:cpu:opt=disabled", "reference"],
        models=(),
        exporters=(),
        timeout_s=120,
    )
    records = records_of(document)
    fp32 = [(m, a) for m in pack.models for a in m.artifacts if a.precision == "fp32"]
    accuracy = sum(1 for m, _ in fp32 if m.task is not None)  # one per artifact with a task
    assert len(records) == 4 * (sum(len(m.data_sets) for m, _ in fp32) + accuracy)
    target_findings = [
        r for r in records if r.verdict in NOT_PASSED and r.attributed_to == "target"
    ]
    known = {
        f"detection_head-{exporter}-{data_set.label}-reference"
        for exporter in ("torch-dynamo", "torch-script")
        for data_set in pack.model("detection_head").data_sets
    }
    unexpected = [r for r in target_findings if r.check_id not in known]
    assert not unexpected, [(r.check_id, r.problems) for r in unexpected]
    assert {r.check_id for r in target_findings} == known
    assert all("at most 64 array objects" in r.problems[0] for r in target_findings)
    exporter_findings = {(r.model, r.exporter) for r in records if r.attributed_to == "exporter"}
    assert ("transformer_encoder", "torch-script") in exporter_findings


def test_calibration_places_the_tolerance_between_honest_and_defect_errors(defect_run):
    import dataclasses

    from conformance.calibrate import calibration_rows

    _, by_target = defect_run
    records = [r for target, rs in by_target.items() for r in rs]
    (row,) = calibration_rows(records)
    assert row.model == "mlp" and row.honest_margin < 1 < row.defect_margin and row.well_placed
    # A value defect that slips under the tolerance makes the row misplaced.
    slipped = [
        dataclasses.replace(r, margin=0.5) if r.target == "defect:fp16" else r for r in records
    ]
    assert not calibration_rows(slipped)[0].well_placed


WRITER = """
import sys
from pathlib import Path
from conformance.results.document import ResultsWriter, new_document
from conformance.results.records import CheckRecord
path, marker = Path(sys.argv[1]), Path(sys.argv[2])
manifest = {"spec_version": "s", "pack_version": "p", "digest": "d"}
writer = ResultsWriter(path, new_document(manifest, {}, ["test"]))
for i in range(3):
    writer.add(CheckRecord("m", "e", i, f"batch{i}", "t", "passed"))
marker.touch()
sys.stdin.read()  # holds until killed
"""


def test_a_killed_run_keeps_every_record_it_added(tmp_path):
    """Records are renamed into place as they come (fsync only at the run's end): a process
    killed with SIGKILL mid-run leaves a whole results file with every record it added."""
    path, marker = tmp_path / "results.json", tmp_path / "added"
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(marker)],
        stdin=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the writer did not get to its third record"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    from conformance.results.document import load_document

    document = load_document(path)
    assert [c["id"] for c in document["checks"]] == [f"m-e-batch{i}-t" for i in range(3)]
    assert document["run"]["status"] == "running" and not path.with_suffix(".json.tmp").exists()
