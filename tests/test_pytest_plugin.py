"""`pytest --conformance` as a pytest user expects it, driven in real pytest subprocesses.

One real run (the honest ort:cpu and the defect:noise negative control, mlp's torch-script
artifact, plus the ColdStart benchmark) feeds the tests of ids, JUnit XML and failure lines;
collection, markers and bad input are checked with `--collect-only`, which runs no check.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from conformance.pack.load import Pack
from conformance.results.document import load_document
from conformance.spec import PACK_DIR

SELECTION = ("--model", "mlp", "--exporter", "torch-script")
# mlp's test data sets in the shipped pack (ordinary and stress): the counts below follow the pack
MLP_LABELS = [d.label for d in next(m for m in Pack(PACK_DIR).models if m.name == "mlp").data_sets]
MLP_DATA_SETS = len(MLP_LABELS)


def mlp_ids(target: str, prefix: str = "") -> list[str]:
    """The ids of mlp/torch-script's checks on a target, in plan order."""
    return [f"{prefix}mlp-torch-script-{label}-{target}" for label in MLP_LABELS]


ID = re.compile(r"^conformance/(?P<target>.+?)::(?P<name>\S+)$")


def pytest_conformance(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "300"}  # a wide terminal: pytest trims summary lines to it
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--conformance",
            "--conformance-out",
            str(tmp_path / "out"),
            "--rootdir",
            str(tmp_path),
            *args,
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )


def collected(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The node ids `--collect-only -q` lists (one per line, before the blank line)."""
    return [line for line in result.stdout.splitlines() if "::" in line]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp_path = tmp_path_factory.mktemp("pytest-run")
    result = pytest_conformance(
        tmp_path,
        "-rA",
        "--target",
        "ort:cpu",
        "--target",
        "defect:noise",
        *SELECTION,
        "--bench",
        "--bench-scenario",
        "ColdStart",
        "--junitxml",
        str(tmp_path / "junit.xml"),
    )
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    cases = ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")
    return {
        "result": result,
        "junit": [(c.get("classname"), c.get("name"), c) for c in cases],
        "document": load_document(tmp_path / "out" / "results.json"),
    }


def test_node_ids_have_a_target_parent_and_junit_a_classname(run):
    document = run["document"]
    target_of = {c["id"]: c["target"] for c in document["checks"]}
    target_of.update({b["id"]: b["target"] for b in document["benchmarks"]})
    assert len(target_of) == 2 * MLP_DATA_SETS + 2  # data sets x 2 targets, ColdStart x 2
    assert sorted(name for _, name, _ in run["junit"]) == sorted(target_of)
    for classname, name, _ in run["junit"]:
        assert classname == f"conformance.{target_of[name]}", (classname, name)
    summary = [line for line in run["result"].stdout.splitlines() if " conformance/" in line]
    ids = [line.split()[1] for line in summary if line.startswith(("PASSED", "FAILED"))]
    assert sorted(ids) == sorted(f"conformance/{t}::{i}" for i, t in target_of.items())
    assert "::" not in " ".join(id.split("::")[0] for id in ids)  # never a leading "::"


def test_the_header_names_the_pack_and_the_results_file(run):
    header = [line for line in run["result"].stdout.splitlines() if line.startswith("conformance:")]
    assert len(header) == 1 and "conformance: pack " in header[0]
    assert header[0].endswith("results.json")


def test_a_failure_says_why_in_one_line_with_readable_margins(run):
    stdout = run["result"].stdout
    failed = [line for line in stdout.splitlines() if line.startswith("FAILED ")]
    assert len(failed) == MLP_DATA_SETS  # the negative control's checks; the honest one passes
    for line in failed:
        match = re.match(
            r"FAILED conformance/defect:noise::mlp-torch-script-batch\S+-defect:noise - "
            r"failed, margin (?P<margin>\S+): logits: values out of tolerance",
            line,
        )
        assert match, line
        mantissa = match["margin"].split("e")[0]
        assert len(mantissa.replace(".", "").lstrip("0")) <= 3, line  # 3 significant figures
    assert "None" not in stdout
    assert not re.search(r"margin \d+\.\d{4,}", stdout)  # no 31.66168346339981
    messages = [c.find("failure") for _, _, c in run["junit"] if c.find("failure") is not None]
    assert len(messages) == MLP_DATA_SETS
    assert all(m.get("message", "").startswith("failed, margin ") for m in messages)
    for _, name, case in run["junit"]:
        if "ColdStart" not in name:
            properties = {p.get("name"): p.get("value") for p in case.iter("property")}
            verdict = "failed" if name.endswith("defect:noise") else "passed"
            assert properties["verdict"] == verdict and "margin" in properties, properties


def test_benchmark_items_are_named_like_check_items(run):
    document = run["document"]
    bench_ids = {b["id"] for b in document["benchmarks"]}
    check_ids = {c["id"] for c in document["checks"]}
    assert bench_ids == {f"mlp-torch-script-{t}-ColdStart-dev" for t in ("ort:cpu", "defect:noise")}
    junit = {name: classname for classname, name, _ in run["junit"]}
    # every item, check or benchmark, is named by the id of the record it wrote
    assert set(junit) == bench_ids | check_ids
    assert {junit[i] for i in bench_ids} == {"conformance.ort:cpu", "conformance.defect:noise"}


NOISY_BACKEND = """
import sys
import onnxruntime
from onnx.backend.base import Backend, BackendRep

class Rep(BackendRep):
    def __init__(self, session):
        self.session = session
    def run(self, inputs, **kwargs):
        print("noisy-backend: fell back to a slow kernel", file=sys.stderr, flush=True)
        names = [i.name for i in self.session.get_inputs()]
        return [o * 1.5 for o in self.session.run(None, dict(zip(names, inputs)))]

class Noisy(Backend):
    @classmethod
    def supports_device(cls, device):
        return device == "CPU"
    @classmethod
    def prepare(cls, model, device="CPU", **kwargs):
        return Rep(onnxruntime.InferenceSession(model.SerializeToString()))
"""


def test_a_failure_shows_what_the_target_wrote_on_stderr(tmp_path, monkeypatch):
    (tmp_path / "noisy_backend.py").write_text(NOISY_BACKEND)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    )
    result = pytest_conformance(
        tmp_path, "--target", "backend:noisy_backend:Noisy", *SELECTION, "--exitfirst"
    )
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "failed, margin " in result.stdout
    assert "the target wrote on stderr (last lines):" in result.stdout
    assert "    noisy-backend: fell back to a slow kernel" in result.stdout


def test_collect_only_lists_and_counts_the_items(tmp_path, run):
    result = pytest_conformance(
        tmp_path, "--collect-only", "-q", "--target", "ort:cpu", "--target", "defect:noise",
        *SELECTION, "--bench", "--bench-scenario", "ColdStart",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ids = collected(result)
    assert all(ID.match(i) for i in ids), ids
    expected = {c["id"] for c in run["document"]["checks"]}
    expected |= {b["id"] for b in run["document"]["benchmarks"]}
    assert {ID.match(i)["name"] for i in ids} == expected
    assert "no tests collected" not in result.stdout
    assert re.search(rf"^{len(ids)} tests collected", result.stdout, re.M), result.stdout[-500:]


def test_collect_only_writes_no_results(tmp_path):
    result = pytest_conformance(tmp_path, "--collect-only", "-q", "--target", "ort:cpu")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not (tmp_path / "out" / "results.json").exists()  # nothing ran: no "complete" run


def test_a_rerun_replaces_the_results_and_a_stopped_run_says_interrupted(tmp_path, run):
    args = ("--target", "defect:noise", *SELECTION)
    first = pytest_conformance(tmp_path, *args)
    assert first.returncode == 1, first.stdout[-3000:] + first.stderr[-3000:]
    assert load_document(tmp_path / "out" / "results.json")["run"]["status"] == "complete"
    again = pytest_conformance(tmp_path, *args, "-x")  # same folder: a fresh document
    assert again.returncode == 1, again.stdout[-3000:] + again.stderr[-3000:]
    document = load_document(tmp_path / "out" / "results.json")
    assert document["run"]["status"] == "interrupted" and len(document["checks"]) == 1


def test_a_part_file_left_by_an_earlier_run_is_not_merged(tmp_path, run):
    (tmp_path / "out").mkdir()
    stale = {**run["document"]["checks"][0], "id": "stale-check-of-an-earlier-run"}
    (tmp_path / "out" / "results.gw7.json").write_text(json.dumps({"checks": [stale]}))
    result = pytest_conformance(tmp_path, "--target", "ort:cpu", *SELECTION)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    document = load_document(tmp_path / "out" / "results.json")
    assert [c["id"] for c in document["checks"]] == mlp_ids("ort:cpu")
    assert not (tmp_path / "out" / "results.gw7.json").exists()


def test_a_node_id_as_printed_runs_that_item_also_under_xdist(tmp_path):
    one = "conformance/ort:cpu::mlp-torch-script-batch1-ort:cpu"
    args = ("--target", "ort:cpu", "--target", "defect:noise", *SELECTION)
    listed = pytest_conformance(
        tmp_path, *args, "--collect-only", "-q", one, "conformance/defect:noise"
    )
    assert collected(listed) == [one, *mlp_ids("defect:noise", "conformance/defect:noise::")]
    ran = pytest_conformance(tmp_path, *args, "-n", "2", one)
    assert ran.returncode == 0 and "1 passed" in ran.stdout, ran.stdout[-3000:] + ran.stderr
    document = load_document(tmp_path / "out" / "results.json")
    assert [c["id"] for c in document["checks"]] == [one.split("::")[1]]
    typo = pytest_conformance(tmp_path, *args, "--collect-only", "conformance/ort:cpu::mlp-nope")
    assert typo.returncode == pytest.ExitCode.USAGE_ERROR
    assert "no conformance item conformance/ort:cpu::mlp-nope" in typo.stderr


def test_markers_select_model_exporter_and_target_exactly(tmp_path):
    strict = ("--collect-only", "-q", "--strict-markers", "-W", "error")
    targets = ("--target", "ort:cpu", "--target", "reference")
    everything = collected(pytest_conformance(tmp_path, *strict, *targets))
    by_substring = [i for i in everything if "mlp" in i.split("::")[1]]
    assert any("embedding_mlp" in i for i in by_substring)  # what -k mlp selects
    chosen = pytest_conformance(tmp_path, *strict, *targets, "-m", "model_mlp and target_ort_cpu")
    assert chosen.returncode == 0, chosen.stdout[-3000:] + chosen.stderr[-3000:]
    expected = [
        i for i in everything if i.startswith("conformance/ort:cpu::mlp-") and "embedding" not in i
    ]
    assert collected(chosen) == expected and len(expected) == 3 * MLP_DATA_SETS  # 3 exporters
    scripted = collected(
        pytest_conformance(tmp_path, *strict, *targets, "-m", "exporter_torch_script")
    )
    assert scripted == [i for i in everything if "-torch-script-" in i] and scripted
    listed = pytest_conformance(tmp_path, "--markers", *targets).stdout
    for marker in ("model_mlp", "model_embedding_mlp", "exporter_torch_script", "target_ort_cpu"):
        assert f"@pytest.mark.{marker}:" in listed


@pytest.mark.parametrize(
    "args,message",
    [
        (["--target", "ort:cpux"], "unknown target 'ort:cpux'"),
        (["--target", "ort:cpu:threads=abc"], "threads must be a whole number"),
        (["--model", "nope"], "unknown model(s) nope"),
        (["--conformance-timeout", "-1"], "a timeout is a positive, finite number"),
        (["--conformance-pack", "/nonexistent"], "no pack at /nonexistent"),
    ],
)
def test_bad_input_is_a_pytest_usage_error(tmp_path, args, message):
    result = pytest_conformance(tmp_path, "--collect-only", *args)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert result.stderr.startswith("ERROR: ") and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "INTERNALERROR" not in result.stdout + result.stderr


def imports_of(module: str) -> list[tuple[str, str]]:
    """(module, name) for every import in a module's source, nested ones included."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    found = []
    for node in ast.walk(ast.parse(Path(spec.origin).read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names]
    return found


def test_the_plugin_layers_point_one_way():
    hooks = imports_of("conformance.bench.pytest_hooks")
    assert not [i for i in hooks if i[0].startswith("conformance.pytest_plugin")]
    plugin = imports_of("conformance.pytest_plugin")
    assert not [i for i in plugin if i[0] == "conformance.cli"]
    assert not [i for i in plugin if i[1] == "choose_targets" and i[0] != "conformance.targets"]


def test_a_precision_profile_collects_its_artifacts_and_the_accuracy_items(tmp_path):
    """`--profile int8`: the pack's int8 artifacts only (none of the fp32 ones), each with its
    data sets, and one accuracy item per artifact of the model with a task."""
    digits = Pack(PACK_DIR).model("digits")
    int8 = [a.exporter for a in digits.artifacts if a.precision == "int8"]
    result = pytest_conformance(
        tmp_path, "--collect-only", "-q", "--profile", "int8", "--target", "ort:cpu",
        "--model", "digits",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    names = [ID.match(i)["name"] for i in collected(result)]
    expected = [
        f"digits-{exporter}-{label}-ort:cpu"
        for exporter in int8
        for label in [*(d.label for d in digits.data_sets), "accuracy"]
    ]
    assert int8 and names == expected
    bad = pytest_conformance(tmp_path, "--collect-only", "--profile", "fp8")
    assert bad.returncode == 4 and "--profile" in bad.stderr and "int8" in bad.stderr
