"""The README's documented commands that had no test, run as a user runs them: the real
`conformance` command in a subprocess, judged by its exit code, the files it writes and the
records in them (never by its internals, which are being refactored under these tests).

Durations measured on the 2-core development machine are in each test's docstring.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from conformance.pack.load import Pack
from conformance.spec import PACK_DIR
from conformance.targets import DEFAULT_TARGETS, get_target
from tests.conftest import needs_frameworks

REPO = Path(__file__).resolve().parents[1]
NOT_PASSED = ("failed", "error", "crashed", "timed-out")
SYSTEM = {"submitter": "test vendor", "system_name": "CI box", "status": "available"}


def conformance(*args: str, cwd: Path = REPO, timeout: float = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "conformance", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=timeout,
    )
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result


def output(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def runtime_findings(document: dict) -> list[dict]:
    return [
        c
        for c in document["checks"]
        if c["verdict"] in NOT_PASSED and c.get("attributed_to") == "target"
    ]


def fp32_artifacts(model):
    """A default (fp32) run's artifacts of a model: the pack's fp16/int8 ones are other runs'."""
    from conformance.run.plan import artifact_precision

    return [a for a in model.artifacts if artifact_precision(a) == "fp32"]


def test_run_without_target_takes_every_available_default_target(tmp_path):
    """`conformance run` with no --target (one model, to stay short: ~30 s here, IREE compiles).

    The targets are every DEFAULT_TARGETS entry available here, and nothing else; the exit code
    is 1 exactly when there is a runtime finding (tract cannot load two of lstm's artifacts)."""
    available = [n for n in DEFAULT_TARGETS if get_target(n).unavailable_reason() is None]
    run_dir = tmp_path / "run"
    result = conformance("run", "--model", "lstm", "--out", str(run_dir))
    document = results(run_dir)
    assert document["run"]["status"] == "complete", output(result)
    ran = list(dict.fromkeys(c["target"] for c in document["checks"]))
    assert sorted(ran) == sorted(available), output(result)
    assert {"ort:cpu", "reference"} <= set(ran)  # core dependencies: always available
    lstm = Pack(PACK_DIR).model("lstm")
    artifacts = fp32_artifacts(lstm)
    assert len(document["checks"]) == len(available) * len(artifacts) * len(lstm.data_sets)
    assert all(document["targets"][name]["available"] for name in available)
    findings = runtime_findings(document)
    assert result.returncode == (1 if findings else 0), output(result)
    for finding in findings:
        assert finding["id"] in result.stdout or finding["target"] in result.stdout


def test_run_bench_writes_checks_and_benchmarks_into_one_results_file(tmp_path):
    """`conformance run --bench` (dev rules) on one artifact: ~5 s here."""
    run_dir = tmp_path / "run"
    result = conformance(
        "run",
        "--target",
        "ort:cpu",
        "--model",
        "mlp",
        "--exporter",
        "torch-script",
        "--bench",
        "--out",
        str(run_dir),
    )
    assert result.returncode == 0, output(result)
    document = results(run_dir)
    mlp = Pack(PACK_DIR).model("mlp")
    assert len(document["checks"]) == len(mlp.data_sets)
    assert {c["verdict"] for c in document["checks"]} == {"passed"}
    benchmarks = {b["scenario"]: b for b in document["benchmarks"]}
    assert {"SingleStream", "Offline", "ColdStart", "CachingGuard"} <= set(benchmarks)
    for record in benchmarks.values():
        assert record["status"] == "ok" and record["problems"] == [], record
        assert (record["model"], record["exporter"], record["target"]) == (
            "mlp",
            "torch-script",
            "ort:cpu",
        )
        assert record["mode"] == "dev"
    latency = benchmarks["SingleStream"]["latency_ms"]
    assert 0 < latency["min"] <= latency["p50"] <= latency["p90"] <= latency["p99"]
    assert latency["p99"] <= latency["max"]
    assert benchmarks["SingleStream"]["queries"] > 0
    offline = benchmarks["Offline"]["throughput"]
    assert [row["batch"] for row in offline] == sorted(row["batch"] for row in offline)
    assert all(row["samples_per_s"] > 0 and row["queries"] > 0 for row in offline)
    assert benchmarks["SingleStream"]["environment"]["threads_requested"] == 1
    assert benchmarks["CachingGuard"]["caching_guard"]["flagged"] is False
    assert (run_dir / "report.html").is_file()


def test_calibrate_places_every_models_tolerance(tmp_path):
    """`conformance calibrate --target ort:cpu`: ort:cpu and the two value controls over the
    whole pack (~20 s here); every model gets a row, each well placed."""
    run_dir = tmp_path / "cal"
    result = conformance("calibrate", "--target", "ort:cpu", "--out", str(run_dir))
    assert result.returncode == 0, output(result)
    document = results(run_dir)
    assert {c["target"] for c in document["checks"]} == {
        "ort:cpu",
        "defect:noise",
        "defect:fp16",
    }
    models = [m.name for m in Pack(PACK_DIR).models]
    table = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in result.stdout.splitlines()
        if line.startswith("|")
    ]
    header = table[0]  # read by name: the table gains columns (precision, ...)
    honest, defect = (
        header.index("worst honest margin (max abs)"),
        header.index("smallest defect margin"),
    )
    rows = {cells[0]: cells for cells in table[1:] if cells[0] in models}
    assert sorted(rows) == sorted(models), result.stdout
    for cells in rows.values():
        honest_margin = float(cells[honest].split()[0])
        defect_margin = float(cells[defect])
        assert honest_margin <= 1.0 < defect_margin, cells
        assert cells[header.index("placed")] == "yes", cells


def test_certify_work_dir_keeps_the_run_and_verify_rerun_agrees(tmp_path):
    """`conformance keygen`, `certify --work-dir` and `verify --public-key --rerun` (~10 s)."""
    (tmp_path / "system.json").write_text(json.dumps(SYSTEM))
    result = conformance("keygen", "--out", str(tmp_path / "vendor.pem"))
    assert result.returncode == 0, output(result)
    bundle, work = tmp_path / "bundle.zip", tmp_path / "work"
    result = conformance(
        "certify",
        "--target",
        "ort:cpu",
        "--profile",
        "core",
        "--system",
        str(tmp_path / "system.json"),
        "--key",
        str(tmp_path / "vendor.pem"),
        "--out",
        str(bundle),
        "--work-dir",
        str(work),
    )
    assert result.returncode == 0, output(result)
    kept = results(work)  # the run folder survives the command
    assert kept["run"]["status"] == "complete"
    assert {c["target"] for c in kept["checks"]} == {"ort:cpu"}
    assert (work / "report.html").is_file()
    with zipfile.ZipFile(bundle) as archive:
        assert json.loads(archive.read("results.json")) == kept  # the bundle carries that run

    result = conformance(
        "verify",
        str(bundle),
        "--public-key",
        str(tmp_path / "vendor.pub"),
        "--rerun",
        "--sample",
        "3",
        "--seed",
        "7",
        "--json",
    )
    assert result.returncode == 0, output(result)
    verdict = json.loads(result.stdout.strip().splitlines()[-1])
    assert verdict["verdict"] == "VERIFIED" and verdict["target"] == "ort:cpu"
    assert verdict["profiles"]["core"]["status"] == "certified"
    rerun = [note for note in verdict["notes"] if note.startswith("rerun")]
    assert rerun and "3 checks re-executed" in rerun[0] and "3 agree" in rerun[0], verdict


def test_backend_target_on_the_command_line(tmp_path):
    """`--target backend:package.module:Class`: ONNX Runtime's own onnx.backend passes mlp;
    onnx's abstract Backend (prepare returns None) is an error on the target, per check (~5 s)."""
    name = "backend:onnxruntime.backend.backend:OnnxRuntimeBackend"
    run_dir = tmp_path / "ort-backend"
    result = conformance("run", "--target", name, "--model", "mlp", "--out", str(run_dir))
    assert result.returncode == 0, output(result)
    document = results(run_dir)
    assert document["targets"][name]["available"] is True
    assert document["targets"][name]["runtime"] == "onnxruntime.backend.backend:OnnxRuntimeBackend"
    mlp = Pack(PACK_DIR).model("mlp")
    assert len(document["checks"]) == len(fp32_artifacts(mlp)) * len(mlp.data_sets)
    assert {c["verdict"] for c in document["checks"]} == {"passed"}

    name = "backend:onnx.backend.base:Backend"
    run_dir = tmp_path / "abstract-backend"
    result = conformance(
        "run",
        "--target",
        name,
        "--model",
        "mlp",
        "--exporter",
        "torch-script",
        "--out",
        str(run_dir),
    )
    assert result.returncode == 1, output(result)
    checks = results(run_dir)["checks"]
    assert len(checks) == len(mlp.data_sets)
    for check in checks:
        assert check["verdict"] == "error" and check["attributed_to"] == "target"
        assert check["problems"][0].startswith("load failed: ")
        assert "prepare() returned None" in check["problems"][0]


@needs_frameworks
def test_pack_build_one_model_into_a_folder_and_run_it(tmp_path):
    """`conformance pack build --model mlp --out DIR` (~25 s here), then `run --pack DIR`."""
    built = tmp_path / "pack"
    result = conformance("pack", "build", "--model", "mlp", "--out", str(built), timeout=1800)
    assert result.returncode == 0, output(result)
    manifest = json.loads((built / "pack.json").read_text())
    assert manifest["models"] == ["mlp"]
    assert sorted(p.name for p in built.iterdir()) == ["mlp", "pack.json"]
    model = Pack(built).model("mlp")  # the built pack reads back (hashes, model.json, goldens)
    exporters = {a.exporter for a in fp32_artifacts(Pack(PACK_DIR).model("mlp"))}
    assert {a.exporter for a in fp32_artifacts(model)} == exporters
    for artifact in model.artifacts:
        assert artifact.path.is_file(), artifact.exporter
    assert len(model.data_sets) >= 2 and all(np_key.startswith("set") for np_key in model.golden)
    # (test_pack_rebuild compares rebuilt goldens with the committed ones.)

    run_dir = tmp_path / "run"
    result = conformance("run", "--pack", str(built), "--target", "ort:cpu", "--out", str(run_dir))
    assert result.returncode == 0, output(result)
    document = results(run_dir)
    assert len(document["checks"]) == len(fp32_artifacts(model)) * len(model.data_sets)
    assert {c["verdict"] for c in document["checks"]} == {"passed"}
