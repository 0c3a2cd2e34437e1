"""The run session: bad input before the first check, interruption, progress, and behaviour kept.

Each test drives the real command in a subprocess (or the real session) on the committed pack or
a real copy of it; each would have failed on the code before the session (commit 1fd9360).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conformance.report.verdicts import target_verdicts
from conformance.results.document import (
    ResultsWriter,
    load_document,
    records_of,
    validate_document,
)
from conformance.results.profile import Outcome, ProfileStatus, apply_rule
from conformance.results.records import EXPORTER, SKIPPED, SkipKind
from conformance.run.session import RunInputError, RunRequest, RunSession
from conformance.spec import PACK_DIR
from conformance.targets.defects import MARKERS_ENV
from tests.test_pack import one_model_copy, rehash, write_object_golden

CLI = [sys.executable, "-m", "conformance"]
REPO = Path(__file__).resolve().parents[1]
BEFORE_COMMIT = "1fd9360"  # the code before the run session (issue 10), from git history


@pytest.fixture(scope="module")
def before(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The code before the session, extracted from this clone's history (a shallow clone that
    lacks the commit skips the comparison, saying so)."""
    folder = tmp_path_factory.mktemp("before")
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", BEFORE_COMMIT],
        capture_output=True,
    )
    if archive.returncode != 0:
        pytest.skip(f"commit {BEFORE_COMMIT} is not in this clone: {archive.stderr[:200]!r}")
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def conformance(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, **kwargs)


def one_line_error(result: subprocess.CompletedProcess, *words: str) -> None:
    """Exit 2, no traceback, a short message naming the input."""
    assert result.returncode == 2, (result.returncode, result.stdout[-1500:], result.stderr[-1500:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert all(w in errors[0] for w in words), errors[0]


# -- issue 9 section 3: bad input is exit 2 with one line, before the first check --------------


@pytest.mark.parametrize("value", ["-1", "nan", "0", "inf"])
def test_a_timeout_that_is_not_a_positive_number_is_bad_input(tmp_path, value):
    run_dir = tmp_path / "run"
    result = conformance(
        "run", "--target", "ort:cpu", "--model", "mlp", "--timeout", value, "--out", str(run_dir)
    )
    one_line_error(result, "timeout", value)
    assert not (run_dir / "results.json").exists()


def test_out_that_is_a_file_is_refused_before_any_check(tmp_path):
    out = tmp_path / "results-here"
    out.write_text("not a folder")
    result = conformance("run", "--target", "ort:cpu", "--model", "mlp", "--out", str(out))
    one_line_error(result, str(out), "file")
    assert out.read_text() == "not a folder" and "checks" not in result.stdout


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_out_that_cannot_be_written_is_refused_before_any_check(tmp_path, where):
    """Tests run as root, so the unwritable folder is one root cannot create either."""
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "run" if where == "under-a-file" else Path("/proc/conformance-run")
    result = conformance("run", "--target", "ort:cpu", "--model", "mlp", "--out", str(out))
    one_line_error(result, str(out), "writable")


def interrupted_run(tmp_path: Path) -> Path:
    """A real results file to resume: one mlp check of ort:cpu (finished, then marked running)."""
    run_dir = tmp_path / "run"
    result = conformance(
        "run",
        "--target",
        "ort:cpu",
        "--model",
        "mlp",
        "--exporter",
        "torch-script",
        "--out",
        str(run_dir),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    document = json.loads((run_dir / "results.json").read_text())
    document["run"]["status"] = "interrupted"
    document["checks"] = document["checks"][:1]
    (run_dir / "results.json").write_text(json.dumps(document))
    return run_dir


@pytest.mark.parametrize("damage", ["truncated", "not-json", "nan", "other-spec-version"])
def test_resume_refuses_a_results_file_it_cannot_continue(tmp_path, damage):
    run_dir = interrupted_run(tmp_path)
    path = run_dir / "results.json"
    text = path.read_text()
    if damage == "truncated":
        path.write_text(text[: len(text) // 2])
    elif damage == "not-json":
        path.write_text("<html>not results</html>")
    elif damage == "nan":
        path.write_text(text.replace('"margin": ', '"margin": NaN, "x": ', 1))
    else:
        document = json.loads(text)
        document["run"]["spec_version"] = "0.0.9"
        path.write_text(json.dumps(document))
    result = conformance("run", "--resume", "--out", str(run_dir))
    one_line_error(result, str(path))
    if damage == "other-spec-version":
        assert "0.0.9" in result.stderr and json.loads(path.read_text())["checks"][1:] == []


@pytest.mark.parametrize(
    "option", [["--target", "reference"], ["--model", "cnn"], ["--exporter", "tf2onnx"]]
)
def test_resume_with_a_new_selection_is_refused(tmp_path, option):
    run_dir = interrupted_run(tmp_path)
    before = (run_dir / "results.json").read_text()
    result = conformance("run", "--resume", "--out", str(run_dir), *option)
    one_line_error(result, "--resume", option[0])
    assert (run_dir / "results.json").read_text() == before


def test_a_corrupted_pack_is_bad_input_not_a_runtime_finding(tmp_path):
    copy = tmp_path / "pack"
    shutil.copytree(PACK_DIR, copy)
    target = copy / "mlp" / "torch-script" / "model.onnx"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    result = conformance(
        "run",
        "--pack",
        str(copy),
        "--target",
        "ort:cpu",
        "--model",
        "mlp",
        "--out",
        str(tmp_path / "run"),
    )
    one_line_error(result, "corrupted", "mlp/torch-script/model.onnx")


def test_a_pack_that_is_not_the_pinned_one_is_said_plainly(tmp_path):
    """Goldens x 1.01, every hash updated: `pack verify` and `run` say it is not the spec's."""
    copy = one_model_copy(tmp_path)
    golden = dict(np.load(copy / "mlp" / "golden.npz"))
    np.savez_compressed(copy / "mlp" / "golden.npz", **{k: v * 1.01 for k, v in golden.items()})
    rehash(copy)
    verify = conformance("pack", "verify", "--pack", str(copy))
    assert verify.returncode == 1 and "NOT the pinned pack of spec" in verify.stderr
    run = conformance(
        "run",
        "--pack",
        str(copy),
        "--target",
        "ort:cpu",
        "--exporter",
        "torch-script",
        "--out",
        str(tmp_path / "run"),
    )
    first = run.stderr.splitlines()[0]
    assert first.startswith("warning: this pack is NOT the pinned pack of spec"), run.stderr
    assert conformance("pack", "verify").stdout.count("the pinned pack of spec") == 1


def test_a_malformed_test_data_file_ends_the_run_in_one_line(tmp_path):
    """A .pb input that is not a tensor is found only when its check loads it."""
    copy = one_model_copy(tmp_path)
    (copy / "mlp" / "torch-script" / "test_data_set_1" / "input_0.pb").write_bytes(b"\xff" * 9)
    rehash(copy)
    run_dir = tmp_path / "run"
    result = conformance("run", "--pack", str(copy), "--target", "ort:cpu", "--out", str(run_dir))
    one_line_error(result, "input_0.pb")
    assert load_document(run_dir / "results.json")["run"]["status"] == "interrupted"


@pytest.mark.parametrize("damage", ["object-golden", "model-json"])
def test_a_malformed_pack_is_one_line_before_any_check(tmp_path, damage):
    copy = one_model_copy(tmp_path)
    if damage == "object-golden":
        write_object_golden(copy)
    else:
        record = json.loads((copy / "mlp" / "model.json").read_text())
        record["test_data_sets"] = "every one"
        (copy / "mlp" / "model.json").write_text(json.dumps(record))
    rehash(copy)
    run_dir = tmp_path / "run"
    result = conformance("run", "--pack", str(copy), "--target", "ort:cpu", "--out", str(run_dir))
    one_line_error(result, "mlp")
    assert not (run_dir / "results.json").exists()


@pytest.mark.parametrize("command", ["run", "calibrate"])
@pytest.mark.parametrize("target", ["ort:cpu:threads=abc", "ort:cpu:threads=1:threads=2"])
def test_a_bad_target_option_is_bad_input_in_every_command(tmp_path, command, target):
    result = conformance(command, "--target", target, "--out", str(tmp_path / "run"))
    one_line_error(result, "threads")
    assert not (tmp_path / "run").exists()  # refused before the run folder is made


def test_a_bad_target_option_is_bad_input_in_certify(tmp_path):
    system = tmp_path / "system.json"
    system.write_text(json.dumps({"submitter": "Example", "system_name": "test machine"}))
    work = tmp_path / "work"
    result = conformance(
        "certify",
        "--target",
        "ort:cpu:threads=abc",
        "--profile",
        "core",
        "--system",
        str(system),
        "--out",
        str(tmp_path / "b.zip"),
        "--work-dir",
        str(work),
    )
    one_line_error(result, "threads")
    assert not (work / "results.json").exists() and not (tmp_path / "b.zip").exists()


def test_certify_refuses_a_bad_system_file_before_any_check(tmp_path):
    system = tmp_path / "system.json"
    system.write_text('{"submitter": "x", "system_name": "y", "host_memory_gb": 1e999}')
    work = tmp_path / "work"
    result = conformance(
        "certify",
        "--target",
        "ort:cpu",
        "--profile",
        "core",
        "--system",
        str(system),
        "--out",
        str(tmp_path / "b.zip"),
        "--work-dir",
        str(work),
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert str(system) in result.stderr
    assert not (work / "results.json").exists()


def test_the_session_raises_one_typed_error_for_bad_input(tmp_path):
    bad = [
        RunRequest(PACK_DIR, tmp_path / "a", ["ort:cpu"], timeout_s=-1.0),
        RunRequest(PACK_DIR, tmp_path / "b", ["no-such-target"]),
        RunRequest(PACK_DIR, tmp_path / "c", ["ort:cpu"], models=["nope"]),
        RunRequest(tmp_path / "no-pack", tmp_path / "d", ["ort:cpu"]),
        RunRequest(PACK_DIR, tmp_path / "e", resume=True),
    ]
    for request in bad:
        with pytest.raises(RunInputError):
            RunSession.open(request)
    assert not any((tmp_path / name / "results.json").exists() for name in "abcde")


# -- issue 9 section 4: output a user can act on ------------------------------------------------


def test_sigterm_records_interrupted_says_how_to_resume_and_exits_quietly(tmp_path, pack):
    run_dir, markers = tmp_path / "run", tmp_path / "markers"
    markers.mkdir()
    process = subprocess.Popen(
        [
            *CLI,
            "run",
            "--target",
            "ort:cpu",
            "--target",
            "defect:hang",
            "--model",
            "mlp",
            "--exporter",
            "torch-script",
            "--timeout",
            "60",
            # one target after the other: ort:cpu's checks are finished when the hang starts
            # (side by side, SIGTERM could come while they still run)
            "--jobs",
            "1",
            "--out",
            str(run_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, MARKERS_ENV: str(markers)},
    )
    deadline = time.monotonic() + 120
    while not (markers / "hang.running").exists() and process.poll() is None:
        assert time.monotonic() < deadline, "the hanging check never started"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr and f"conformance run --resume --out {run_dir}" in stderr
    document = load_document(run_dir / "results.json")
    assert document["run"]["status"] == "interrupted"
    sets = len(pack.model("mlp").data_sets)
    assert [c["target"] for c in document["checks"]] == ["ort:cpu"] * sets


def test_progress_is_printed_when_the_output_is_not_a_terminal(tmp_path, pack):
    result = conformance(
        "run",
        "--target",
        "ort:cpu",
        "--model",
        "mlp",
        "--exporter",
        "torch-script",
        "--out",
        str(tmp_path / "run"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    sets = len(pack.model("mlp").data_sets)
    assert f"checks: {sets}/{sets} done in" in result.stdout, result.stdout


def test_certify_prints_no_path_inside_its_deleted_temporary_folder(tmp_path):
    system = tmp_path / "system.json"
    system.write_text(json.dumps({"submitter": "Example", "system_name": "test machine"}))
    result = conformance(
        "certify",
        "--target",
        "defect:noise",
        "--profile",
        "core",
        "--system",
        str(system),
        "--out",
        str(tmp_path / "noise.zip"),
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert (tmp_path / "noise.zip").is_file()
    printed = result.stdout + result.stderr
    assert "conformance-certify-" not in printed, printed[-3000:]


@pytest.fixture(scope="module")
def transformer_run(tmp_path_factory):
    """ort:cpu on transformer_encoder (an exporter finding with an ORT error log) and an
    unavailable target: real records with every new field."""
    run_dir = tmp_path_factory.mktemp("session") / "run"
    with RunSession.open(
        RunRequest(PACK_DIR, run_dir, ["ort:cpu", "ort:cuda"], ["transformer_encoder"])
    ) as session:
        if session.target("ort:cuda").available:
            pytest.skip("needs a machine where ort:cuda is unavailable")
        session.run_checks()
        session.finish()
    return session.document, records_of(session.document)


def test_the_verdict_table_counts_exporter_findings_only_in_their_own_column(transformer_run):
    document, records = transformer_run
    verdict = next(v for v in target_verdicts(document, records) if v.target == "ort:cpu")
    assert verdict.exporter_findings >= 1 and verdict.profiles[0].status == "conformant"
    assert verdict.counts["error"] == 0 and verdict.counts["failed"] == 0
    assert verdict.total == len([r for r in records if r.target == "ort:cpu"])


def test_records_carry_the_skip_kind_and_the_runtimes_stderr(transformer_run):
    document, records = transformer_run
    validate_document(document)
    cuda = [r for r in records if r.target == "ort:cuda"]
    assert cuda and all(r.verdict == SKIPPED for r in cuda)
    assert {c["skip"] for c in document["checks"] if c["target"] == "ort:cuda"} == {
        "target-unavailable"
    }
    finding = next(r for r in records if r.attributed_to == EXPORTER)
    assert "onnxruntime" in finding.stderr and not finding.stderr[:1].isdigit()
    passed = [c for c in document["checks"] if c["verdict"] == "passed"]
    assert passed and not any("skip" in c for c in passed)


def test_the_profile_rule_reads_skip_kinds_not_sentences():
    base = [Outcome("a", True, True, "passed"), Outcome("b", False, False, "failed")]
    artifact = Outcome("c", False, True, SKIPPED, SkipKind.NO_RUNNABLE_ARTIFACT)
    absent = Outcome("c", False, True, SKIPPED, SkipKind.TARGET_UNAVAILABLE)
    failed = Outcome("c", False, True, "error")
    assert apply_rule([*base, artifact]).status is ProfileStatus.CONFORMANT
    assert apply_rule([*base, absent]).status is ProfileStatus.INCOMPLETE
    assert apply_rule([*base, failed]).status is ProfileStatus.NOT_CONFORMANT
    assert apply_rule(base, ["a", "b", "z"]).missing == ("z",)
    assert apply_rule([]).status is ProfileStatus.NOT_RUN


# -- issue 10: behaviour unchanged ----------------------------------------------------------------

IGNORED_RUN = ("started_at", "finished_at", "command")  # timestamps; the --out path in argv
# optional fields the session adds to check records, and the section issue 12 adds to a run;
# issue 15's: where a target's compile came from, whether ORT's threads spin
NEW_FIELDS = ("skip", "stderr", "localization", "allow_spinning", "compile_cache")


def differences(before: object, after: object, where: str = "") -> list[str]:
    """Where two results documents differ beyond timestamps and durations: floats at a
    scale-aware bound (1e-9 of the larger magnitude), everything else exactly."""
    if isinstance(before, dict) and isinstance(after, dict):
        found = []
        for key in sorted(set(before) | set(after)):
            if key in ("duration_s", "latency_ms") or (
                where.endswith("run") and key in IGNORED_RUN
            ):
                continue
            if key in NEW_FIELDS and key not in before:
                continue
            found += differences(before.get(key), after.get(key), f"{where}.{key}")
        return found
    if isinstance(before, list) and isinstance(after, list):
        if len(before) != len(after):
            return [f"{where}: {len(before)} items, then {len(after)}"]
        return [
            d
            for i, (b, a) in enumerate(zip(before, after))
            for d in differences(b, a, f"{where}[{i}]")
        ]
    if isinstance(before, float) and isinstance(after, float):
        scale = max(abs(before), abs(after), 1e-30)
        return (
            []
            if math.isclose(before, after, rel_tol=1e-9, abs_tol=1e-9 * scale)
            else [f"{where}: {before!r} then {after!r}"]
        )
    return [] if before == after else [f"{where}: {before!r} then {after!r}"]


def test_the_comparison_can_fail():
    document = {
        "run": {"started_at": "x"},
        "checks": [{"id": "a", "margin": 0.25, "duration_s": 1}],
    }
    moved = json.loads(json.dumps(document))
    moved["checks"][0]["margin"] = 0.25 * (1 + 1e-6)
    moved["run"]["started_at"], moved["checks"][0]["duration_s"] = "y", 2
    assert differences(document, moved) == [".checks[0].margin: 0.25 then 0.25000025"]
    assert differences(document, json.loads(json.dumps(document))) == []


def test_results_before_and_after_the_session_are_identical(tmp_path, pack, before):
    """The same selection (an honest target, a negative control and a crash) through the code
    before the session and through this code, on the same pack: the same document."""
    args = [
        "run",
        "--pack",
        str(PACK_DIR),
        "--target",
        "ort:cpu",
        "--target",
        "defect:noise",
        "--target",
        "defect:crash",
        "--model",
        "mlp",
        "--model",
        "transformer_encoder",
    ]
    old = subprocess.run(
        [sys.executable, "-m", "conformance", *args, "--out", str(tmp_path / "before")],
        capture_output=True,
        text=True,
        cwd=before,
        env={**os.environ, "PYTHONPATH": str(before)},
    )
    new = conformance(*args, "--out", str(tmp_path / "after"), cwd=REPO)
    assert old.returncode == new.returncode == 1, (old.stderr[-2000:], new.stderr[-2000:])
    old_document = json.loads((tmp_path / "before" / "results.json").read_text())
    after = json.loads((tmp_path / "after" / "results.json").read_text())
    # The stress data sets (issue 14) are named in check ids only by the new code: the two runs
    # are compared on every ordinary data set, which both codes run under the same id.
    models = [pack.model("mlp"), pack.model("transformer_encoder")]
    ordinary = {
        f"{m.name}-{a.exporter}-{d.label}-{t}"
        for m in models
        for a in m.artifacts
        if getattr(a, "precision", "fp32") == "fp32"  # fp16/int8 artifacts: not in either run
        for d in m.data_sets
        if not getattr(d, "stress", None)
        for t in ("ort:cpu", "defect:noise", "defect:crash")
    }
    assert len(ordinary) == 3 * (3 * 2 + 3 * 3)
    recorded = {c["id"]: c for c in old_document["checks"]}
    after["checks"] = [c for c in after["checks"] if c["id"] in ordinary]
    assert sorted(c["id"] for c in after["checks"]) == sorted(ordinary)
    in_order = [c["id"] for c in old_document["checks"] if c["id"] in ordinary]
    assert in_order == [c["id"] for c in after["checks"]]  # the same checks in the same order
    old_document["checks"] = [recorded[cid] for cid in in_order]
    for document in (old_document, after):
        document.pop("localization", None)  # issue 12's section, localised on the new sets too
    assert differences(old_document, after) == []
    skipped = [c for c in after["checks"] if c["verdict"] == SKIPPED]
    assert all(c["skip"] == "no-runnable-artifact" for c in skipped)


def test_the_results_file_is_the_document_encoded_in_full(transformer_run, tmp_path):
    """Each flush writes json.dumps(document, indent=1) byte for byte, though it encodes each
    check record once; a record replaced in the document is encoded again."""
    document, _ = transformer_run
    writer = ResultsWriter(tmp_path / "results.json", json.loads(json.dumps(document)))
    writer.document["checks"][0]["problems"] = ["two\nlines, \u202e and a \x00"]
    writer.flush()
    expected = json.dumps(writer.document, indent=1, allow_nan=False)
    assert (tmp_path / "results.json").read_text() == expected
    writer.document["checks"][1] = {**writer.document["checks"][1], "margin": 0.5}
    writer.finish("complete")
    assert (tmp_path / "results.json").read_text() == json.dumps(
        writer.document, indent=1, allow_nan=False
    )
    writer.document["checks"] = []
    writer.flush()
    assert json.loads((tmp_path / "results.json").read_text())["checks"] == []


def test_run_profile_ops_runs_the_operator_cases_and_refuses_a_pack_selection(tmp_path):
    """`run --profile ops` is `conformance ops` (issue 11) through the same command."""
    one_line_error(conformance("run", "--profile", "ops", "--model", "mlp"), "--profile ops")
    result = conformance(
        "run", "--profile", "ops", "--target", "reference", "--out", str(tmp_path / "ops")
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    document = load_document(tmp_path / "ops" / "results.json")
    assert document["ops"] and not document["checks"]


def test_targets_side_by_side_give_the_results_of_one_after_the_other(tmp_path):
    """Two workers (conformance.run.parallel) measure different targets at once; the results
    file is the same document as a one-worker run's, checks in plan order (a crashing control
    included: its child dies while the other target's checks go on)."""
    documents = []
    for workers in ("1", "2"):
        run_dir = tmp_path / f"workers{workers}"
        env = {**os.environ, MARKERS_ENV: str(tmp_path)}
        env.pop("CONFORMANCE_CHECK_WORKERS", None)
        result = conformance(
            "run",
            *("--jobs", workers),
            *("--target", "ort:cpu", "--target", "defect:crash", "--target", "tract"),
            *("--model", "mlp", "--model", "cnn", "--out", str(run_dir)),
            env=env,
        )
        assert result.returncode == 1, result.stderr[-3000:]  # the crashing control's findings
        assert "Traceback" not in result.stderr
        documents.append(json.loads((run_dir / "results.json").read_text()))
    serial, parallel = documents
    assert {c["verdict"] for c in serial["checks"] if c["target"] == "defect:crash"} == {"crashed"}
    assert [c["id"] for c in serial["checks"]] == [c["id"] for c in parallel["checks"]]
    for document in documents:
        for check in document["checks"]:
            check.pop("stderr", None)  # the crash's own stack dump names its process
    assert differences(serial, parallel) == []


# -- issue 12 (compare's speed): the targets' children describe them, the session adopts them ---

STARTED_TARGETS = """
import json, sys
from pathlib import Path
from conformance.pack.load import Pack
from conformance.run.plan import plan_checks
from conformance.run.session import (
    RunRequest, RunSession, StartedTargets, choose_targets, describe_targets,
)
from conformance.spec import PACK_DIR

names, run_dir = ["ort:cpu", "openvino:gpu"], Path(sys.argv[1])
started = StartedTargets(names, run_dir)
described = started.described()
imported = [m for m in ("onnxruntime", "openvino") if m in sys.modules]
child = started.runners["ort:cpu"]
pid = child._child._process.pid
request = RunRequest(PACK_DIR, run_dir, targets=tuple(names), models=("mlp",), verify=False)
with RunSession.open(request, started=started) as session:
    runner = session.runner("ort:cpu")
    plan = next(p for p in session.plans if p.target == "ort:cpu")
    record = session.check(plan)
    same_child = runner is child and runner._child._process.pid == pid
    section = session.document["targets"]
left = {n: r._child is not None and r._child.alive for n, r in started.runners.items()}
started.close()
print(json.dumps({
    "described": described, "imported": imported, "same_child": same_child,
    "verdict": record.verdict, "section": section, "left": left,
    "in_parent": describe_targets(choose_targets(names)),
}))
"""


def test_started_targets_are_described_by_their_children_whose_checks_run_there(tmp_path):
    """compare starts its targets' children first: each describes its target there (the runtime
    is imported in the child, not in the parent), as the parent would have, and the session runs
    its checks in those same children (no second start); an unavailable target's child is
    left to ``close()``."""
    result = subprocess.run(
        [sys.executable, "-c", STARTED_TARGETS, str(tmp_path / "run")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["imported"] == [], "the parent imported a runtime to describe a target"
    assert seen["described"] == seen["in_parent"] == seen["section"]
    assert seen["described"]["ort:cpu"]["available"] and seen["same_child"]
    assert seen["verdict"] == "passed"
    assert "ort:cpu" not in seen["left"]  # adopted (and closed by the session)
    available_gpu = seen["described"]["openvino:gpu"]["available"]
    assert seen["left"] == ({} if available_gpu else {"openvino:gpu": True})
