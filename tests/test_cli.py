"""The `conformance` command and `pytest --conformance`, driven as a user would, in subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from conformance.results.document import load_document, validate_document
from conformance.spec import PACK_DIR
from conformance.targets.defects import MARKERS_ENV
from tests.conftest import needs_frameworks

CLI = [sys.executable, "-m", "conformance"]


def conformance(*args, **kwargs):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, **kwargs)


@pytest.mark.parametrize(
    "args,message",
    [
        (["run", "--target", "ort:cpux"], "did you mean 'ort:cpu'"),
        (["run", "--target", "ort:cpu:fast=1"], "unknown options"),
        (["run", "--target", "ort:cpu", "--model", "nope"], "unknown model"),
        (["run", "--pack", "/nonexistent"], "no pack at /nonexistent"),
    ],
)
def test_bad_input_is_one_line(tmp_path, args, message):
    result = conformance(*args, "--out", str(tmp_path / "run"))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 2


def test_targets_lists_availability():
    result = conformance("targets")
    assert result.returncode == 0
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "available" in lines["ort:cpu"] and "reference" in lines
    assert "unavailable: " in lines["ort:cuda"]  # no GPU here: a reason, not a traceback


def fp32_artifacts(pack, model: str):
    """A default (fp32) run's artifacts of a model: the pack's fp16/int8 ones are other runs'."""
    from conformance.run.plan import artifact_precision

    return [a for a in pack.model(model).artifacts if artifact_precision(a) == "fp32"]


def checks_of(pack, model: str, exporter: str | None = None) -> int:
    """How many checks a model (one exporter's artifact, or all) has per target in a default
    run (its values checks: the models named in these tests have no task accuracy check)."""
    artifacts = [a for a in fp32_artifacts(pack, model) if exporter in (None, a.exporter)]
    return len(artifacts) * len(pack.model(model).data_sets)


def exporter_findings_of(pack, models: tuple[str, ...]) -> int:
    """The checks per target that the pack records as the exporter's (artifact or data set)."""
    return sum(
        1
        for model in models
        for a in fp32_artifacts(pack, model)
        for d in pack.model(model).data_sets
        if a.exporter_at_fault(d.index)
    )


def test_run_writes_valid_results_and_exits_zero_on_known_findings(tmp_path, pack):
    run_dir = tmp_path / "run"
    result = conformance(
        "run", "--target", "ort:cpu", "--model", "transformer_encoder", "--out", str(run_dir)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "exporter findings" in result.stdout
        and "transformer_encoder-torch-script-batch4-seq20-ort:cpu" in result.stdout
    )
    document = load_document(run_dir / "results.json")
    validate_document(document)
    assert document["run"]["status"] == "complete"
    assert len(document["checks"]) == checks_of(pack, "transformer_encoder")


def test_run_exits_one_on_a_runtime_finding(tmp_path):
    result = conformance(
        "run", "--target", "defect:noise", "--model", "mlp", "--out", str(tmp_path / "run")
    )
    assert result.returncode == 1
    assert "runtime findings" in result.stdout


def wait_for_checks(path: Path, count: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and len(json.loads(path.read_text())["checks"]) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} never reached {count} checks")


def test_interrupted_run_keeps_its_checks_and_resumes(tmp_path, pack):
    """Ctrl-C while a target hangs: finished checks stay; --resume runs only the rest."""
    run_dir = tmp_path / "run"
    args = [
        "run",
        "--target",
        "ort:cpu",
        "--target",
        "defect:hang",
        "--model",
        "mlp",
        "--exporter",
        "torch-script",
        "--out",
        str(run_dir),
    ]
    markers = tmp_path / "markers"
    markers.mkdir()
    process = subprocess.Popen(
        [*CLI, *args, "--timeout", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, MARKERS_ENV: str(markers)},
    )
    sets = checks_of(pack, "mlp", "torch-script")  # ort:cpu's checks, finished before the hang
    wait_for_checks(run_dir / "results.json", sets)
    # The hanging control touches hang.running as it enters run: the check is in flight now.
    running = markers / "hang.running"
    deadline = time.monotonic() + 120
    while not running.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running.exists(), "the hanging check never started"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "--resume" in stderr
    interrupted = load_document(run_dir / "results.json")
    assert interrupted["run"]["status"] == "interrupted"
    kept = interrupted["checks"]
    assert [c["target"] for c in kept] == ["ort:cpu"] * sets

    result = conformance("run", "--resume", "--out", str(run_dir), "--timeout", "1")
    assert f"{sets} already done" in result.stdout, result.stdout + result.stderr
    finished = load_document(run_dir / "results.json")
    assert finished["run"]["status"] == "complete"
    assert finished["checks"][:sets] == kept  # not re-run: identical records, durations included
    assert [c["verdict"] for c in finished["checks"][sets:]] == ["timed-out"] * sets


def pytest_conformance(tmp_path, *extra):
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--conformance",
            "--target",
            "ort:cpu",
            "--target",
            "reference",
            "--model",
            "mlp",
            "--model",
            "transformer_encoder",
            "--conformance-out",
            str(out),
            "--junitxml",
            str(tmp_path / "junit.xml"),
            "--rootdir",
            str(tmp_path),
            *extra,
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    return result, load_document(out / "results.json")


def test_pytest_plugin_items_junit_and_xdist_give_the_same_results(tmp_path, pack):
    (tmp_path / "serial").mkdir()
    (tmp_path / "xdist").mkdir()
    serial, serial_doc = pytest_conformance(tmp_path / "serial")
    parallel, parallel_doc = pytest_conformance(tmp_path / "xdist", "-n", "2")
    assert serial.returncode == 0, serial.stdout[-2000:]
    # the exporter findings the pack records (torch-script at seq 20 and more), on both targets
    xfailed = 2 * exporter_findings_of(pack, ("mlp", "transformer_encoder"))
    assert f"{xfailed} xfailed" in serial.stdout
    junit = (tmp_path / "serial" / "junit.xml").read_text()
    assert 'name="mlp-tf2onnx-batch4-ort:cpu"' in junit
    assert parallel.returncode == 0, parallel.stdout[-2000:]

    def comparable(document):
        return [{k: v for k, v in c.items() if k != "duration_s"} for c in document["checks"]]

    assert comparable(serial_doc) == comparable(parallel_doc)
    validate_document(parallel_doc)


def test_pytest_plugin_fails_a_defective_target(tmp_path, pack):
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--conformance",
            "--target",
            "defect:nan",
            "--model",
            "mlp",
            "--exporter",
            "torch-script",
            "--conformance-out",
            str(out),
            "--rootdir",
            str(tmp_path),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    failed = checks_of(pack, "mlp", "torch-script")
    assert f"{failed} failed" in result.stdout and "NaN" in result.stdout


def test_run_accepts_any_onnx_backend_class(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [
            *CLI,
            "run",
            "--backend",
            "tests.backend_fixture:OrtBackend",
            "--model",
            "mlp",
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        cwd=repo,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    document = load_document(tmp_path / "run" / "results.json")
    assert {c["target"] for c in document["checks"]} == {"backend:tests.backend_fixture:OrtBackend"}
    assert all(c["verdict"] == "passed" for c in document["checks"])


@needs_frameworks
def test_live_mode_reexports_and_adds_the_native_targets(tmp_path):
    run_dir = tmp_path / "live"
    result = conformance(
        "run", "--live", "--target", "ort:cpu", "--model", "mlp", "--out", str(run_dir)
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    # the frameworks' start-up lines (absl, TF's I0000...) stay in the run folder's log
    assert "absl" not in result.stderr and "I0000" not in result.stderr, result.stderr[-2000:]
    document = load_document(run_dir / "results.json")
    validate_document(document)
    live = document["run"]["live"]
    assert (
        live["golden_drift"]["max_rel_drift"] <= 1e-12
    )  # same toolchain: the shipped goldens again
    assert (
        live["live_pack_digest"] != live["goldens_from_digest"]
    )  # a fresh export, judged on shipped goldens
    by_target = {}
    for check in document["checks"]:
        by_target.setdefault(check["target"], set()).add(check["exporter"])
    assert by_target == {
        "ort:cpu": {"torch-dynamo", "torch-script", "tf2onnx"},
        "torch": {"native"},
        "tf": {"native"},
    }
    assert all(c["verdict"] == "passed" for c in document["checks"])


def test_compile_cache_serves_the_second_run_and_no_compile_cache_reaches_the_children(tmp_path):
    """The isolated children compile: the cache folder and the bypass reach them through the
    environment, and the run says where its compiled models came from."""
    cache = tmp_path / "cache"
    env = {**os.environ, "CONFORMANCE_CACHE_DIR": str(cache)}
    env.pop("CONFORMANCE_NO_COMPILE_CACHE", None)
    select = ["--target", "iree:llvm-cpu", "--model", "mlp", "--exporter", "torch-script"]
    lines, options = [], []
    for index, extra in enumerate(([], [], ["--no-compile-cache"])):
        if extra:
            shutil.rmtree(cache)
        run_dir = tmp_path / f"run{index}"
        result = conformance("run", *select, *extra, "--out", str(run_dir), env=env, timeout=600)
        if "iree:llvm-cpu: unavailable" in result.stderr:
            pytest.skip("IREE is not available here")
        assert result.returncode == 0, result.stderr[-3000:]
        lines.append(next(line for line in result.stdout.splitlines() if "compile cache" in line))
        document = load_document(run_dir / "results.json")
        options.append(document["targets"]["iree:llvm-cpu"]["options"]["compile_cache"])
    assert "0 of 1 loads from the cache" in lines[0], lines
    assert "1 of 1 loads from the cache" in lines[1], lines
    assert "off (1 loads compiled afresh)" in lines[2], lines
    assert options == ["on", "on", "off"]
    assert not cache.exists() or not any(cache.rglob("*.bin"))


LAZY_IMPORTS = """
import json, sys
import conformance.cli as cli
heavy = ("conformance.bench", "conformance.certify", "conformance.ops", "conformance.usermodel.c")
def loaded():
    return sorted(m for m in sys.modules if m.startswith(heavy))
at_start, names = loaded(), sorted(cli.main.commands)
ops = cli.main.commands["ops"]
print(json.dumps({"at_start": at_start, "names": names, "ops": [ops.name, loaded()]}))
"""


def test_the_cli_imports_a_subcommands_modules_when_the_command_is_looked_up():
    """issue 12 (compare's start-up): importing the CLI (as every command, and the children's
    fork server, do) lists every command but imports none of bench's, certify's, ops' or
    compare's modules; looking one up imports it."""
    result = subprocess.run(
        [sys.executable, "-c", LAZY_IMPORTS], capture_output=True, text=True, check=True
    )
    seen = json.loads(result.stdout)
    assert seen["at_start"] == []
    assert {"compare", "bench", "certify", "verify", "ops", "report", "run"} <= set(seen["names"])
    name, modules = seen["ops"]
    assert name == "ops" and "conformance.ops.command" in modules
    assert not [m for m in modules if m.startswith(("conformance.bench", "conformance.certify"))]
    help_text = subprocess.run(
        [*CLI, "compare", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--tolerance-class" in help_text


EARLY_START = """
import json, os, sys
sys.argv = [sys.argv[1], *sys.argv[2:]]
import conformance.cli
from multiprocessing import forkserver
print(json.dumps(forkserver._forkserver._forkserver_pid is not None))
print(json.dumps(os.environ.get("OPENBLAS_NUM_THREADS")))
"""


@pytest.mark.parametrize(
    "argv, started",
    [
        (["/venv/bin/conformance", "compare", "model.onnx"], True),
        (["/src/conformance/__main__.py", "compare"], True),
        (["/venv/bin/conformance", "report", "results.json"], False),
        (["/venv/bin/pytest", "compare"], False),
    ],
)
@pytest.mark.parametrize("blas", [None, "3"])
def test_compare_starts_its_childrens_fork_server_with_the_clis_imports(argv, started, blas):
    """issue 12 (compare's start-up): under `conformance compare` the fork server of the
    targets' children starts as the CLI is imported (its start-up overlaps the CLI's) and
    numpy's BLAS gets one thread unless the user set it; under any other command or program
    that imports the CLI, nothing starts and nothing is set."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if blas is not None:
        env["OPENBLAS_NUM_THREADS"] = blas
    result = subprocess.run(
        [sys.executable, "-c", EARLY_START, *argv],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    server, threads = (json.loads(line) for line in result.stdout.splitlines())
    assert server is started
    assert threads == (blas or ("1" if started else None))


@pytest.mark.parametrize(
    "args, named",
    [
        (("run", "--jobs", "0"), "--jobs"),
        (("run", "--jobs", "x"), "--jobs"),
        (("run", "--profile", "fp8"), "--profile"),
        (("calibrate", "--precision", "fp8"), "--precision"),
        (("run", "--target", "iree:llvm-cpu:threads=-1"), "threads"),
        (("run", "--target", "iree:llvm-cpu:driver=../x"), "driver"),
        (("run", "--target", "openvino:cpu:model_cache=maybe"), "model_cache"),
        (("run", "--target", "ort:cuda:tf32=2"), "tf32"),
    ],
)
def test_hostile_values_of_the_new_options_are_one_line_and_exit_2(tmp_path, args, named):
    result = conformance(*args, "--out", str(tmp_path / "run"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert named in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()  # refused before any run folder is made


def wait_until_none(found: Callable[[], list[int]], bound_s: float = 10.0) -> bool:
    deadline = time.monotonic() + bound_s
    while found() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not found()


def processes_marked(mark: str) -> list[int]:
    """Processes whose environment holds ``CONFORMANCE_TEST_MARK=mark``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if f"CONFORMANCE_TEST_MARK={mark}".encode() in environ.split(b"\0"):
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize(
    ("target", "code", "last"),
    [("ort:cpu", 0, "report: "), ("defect:noise", 1, "report: "), ("nope", 2, "error: ")],
)
def test_compare_leaves_at_once_with_its_exit_code_every_line_and_no_process(
    tmp_path, target, code, last
):
    """The console script's compare skips the interpreter's teardown and ends the fork server
    (issue 12's speed): what it printed still all arrives, the exit code is compare's, and no
    process of its own (server, children) is left once its output is closed."""
    model = tmp_path / "m.onnx"
    graph = helper.make_graph(
        [helper.make_node("Tanh", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    mark = f"{os.getpid()}-{target}"
    result = subprocess.run(
        [*CLI, "compare", str(model), "--target", target, "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CONFORMANCE_TEST_MARK": mark},
    )
    assert result.returncode == code, result.stdout + result.stderr
    lines = (result.stdout if code < 2 else result.stderr).splitlines()
    assert lines and lines[-1].startswith(last), result.stdout + result.stderr
    if code < 2:
        assert (tmp_path / "run" / "report.html").stat().st_size > 0
        assert load_document(tmp_path / "run" / "results.json")["run"]["status"] == "complete"
    assert wait_until_none(lambda: processes_marked(mark)), processes_marked(mark)


PACK_MLP = PACK_DIR / "mlp" / "torch-script" / "model.onnx"


@pytest.mark.parametrize("command", ["run", "compare", "ops", "bench"])
def test_a_malformed_cache_bound_is_refused_before_anything_runs(tmp_path, command):
    """CONFORMANCE_CACHE_MAX_MB=abc used to be ignored in silence (the default bound held)."""
    model = PACK_MLP if command == "compare" else None
    args = [command, *([str(model)] if model else []), "--target", "ort:cpu"]
    result = conformance(
        *args,
        "--out",
        str(tmp_path / "run"),
        env={**os.environ, "CONFORMANCE_CACHE_MAX_MB": "abc"},
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "CONFORMANCE_CACHE_MAX_MB must be a whole number of megabytes, not abc" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


def test_an_unwritable_cache_folder_is_said_and_the_run_goes_on(tmp_path):
    """An unwritable CONFORMANCE_CACHE_DIR used to compile without the cache in silence."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
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
        env={**os.environ, "CONFORMANCE_CACHE_DIR": str(blocker / "cache")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    warning = f"warning: the compile cache folder {blocker / 'cache'} cannot be written ("
    assert warning in result.stderr, result.stderr  # then the system's reason, in its words
    assert "): every model is compiled afresh" in result.stderr, result.stderr
    assert load_document(tmp_path / "run" / "results.json")["run"]["status"] == "complete"
