"""Third-party targets (entry points, onnx.backend Backends) and the negative controls (defect:)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

from conformance.pack.layout import read_data_set
from conformance.targets import all_target_names, get_target, listing
from conformance.targets.defects import KINDS, MARKERS_ENV, DefectTarget
from conformance.targets.interface import (
    AdapterError,
    InvalidTargetError,
    Option,
    TargetError,
    TargetUnavailable,
)
from conformance.targets.plugins import ENTRY_POINT_GROUP, PluginError, scan_entry_points

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "vendor_adapter"
MLP = REPO / "spec" / "pack" / "mlp" / "torch-script"  # outputs logits, probs; set 1 has batch 4
GRU = REPO / "spec" / "pack" / "gru" / "torch-script"  # a single output


def data(artifact: Path, index: int, kind: str) -> list[tuple[str, np.ndarray]]:
    return read_data_set(artifact / f"test_data_set_{index}", kind)


def assert_expected(outputs, artifact: Path, index: int) -> None:
    expected = data(artifact, index, "output")
    assert [name for name, _ in outputs] == [name for name, _ in expected]
    for (name, got), (_, want) in zip(outputs, expected):
        assert got.dtype == want.dtype, name
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=name)


def run(target_name: str, artifact: Path = MLP, index: int = 1):
    session = get_target(target_name).load(artifact / "model.onnx")
    try:
        return session.run(dict(data(artifact, index, "input")))
    finally:
        session.close()


# -- entry points ---------------------------------------------------------------------------


def fake_distribution(root: Path, name: str, entry_points: dict[str, str]) -> None:
    """An installed distribution as importlib.metadata sees one: <name>-0.1.dist-info on path."""
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")


@pytest.fixture
def site(tmp_path, monkeypatch) -> Path:
    """A folder on sys.path holding the example adapter, installed as acme_runtime 0.1."""
    root = tmp_path / "site"
    root.mkdir()
    shutil.copy(EXAMPLE / "acme_runtime.py", root / "acme_runtime.py")
    declared = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]["entry-points"]
    fake_distribution(root, "acme_runtime", declared[ENTRY_POINT_GROUP])
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, "acme_runtime", raising=False)
    yield root
    sys.modules.pop("acme_runtime", None)


def test_entry_point_target_is_found_and_runs(site):
    target = get_target("acme")
    assert type(target).__name__ == "AcmeTarget"
    assert Path(sys.modules[type(target).__module__].__file__).parent == site
    assert target.describe().runtime == "acme"
    assert_expected(run("acme"), MLP, 1)
    valid, rejected = scan_entry_points()
    assert {name: plugin.value for name, plugin in valid.items()} == {
        "acme": "acme_runtime:AcmeTarget"
    }
    assert rejected == {}
    names = all_target_names()
    assert "ort:cpu" in names and "acme" in names
    assert not any(name.startswith("defect:") for name in names)


def test_entry_point_options_reach_the_adapter(site):
    with pytest.raises(TargetError, match="takes no options"):
        get_target("acme:precision=fp16")


def test_broken_entry_points_give_clear_errors(site):
    fake_distribution(
        site,
        "broken_vendor",
        {
            "broken": "no_such_vendor_module:Target",
            "bad": "not a module path",
            "ort:cpu": "acme_runtime:AcmeTarget",
            "notarget": "acme_runtime:AcmeSession",
        },
    )
    with pytest.raises(TargetError) as missing:
        get_target("broken")
    message = str(missing.value)
    assert isinstance(missing.value, PluginError)
    assert "cannot import module 'no_such_vendor_module'" in message
    assert "broken_vendor 0.1" in message and "Traceback" not in message

    with pytest.raises(PluginError, match="must be 'module:Class'"):
        get_target("bad")
    with pytest.raises(PluginError, match="is not a conformance.targets.interface.Target subclass"):
        get_target("notarget")
    assert (
        type(get_target("ort:cpu")).__name__ == "OrtCpuTarget"
    )  # a plugin never shadows a built-in
    listed = "\n".join(scan_entry_points()[1].values())
    assert "reserved for a built-in target" in listed
    assert "must be 'module:Class'" in listed

    # The broken ones cost only themselves, and `conformance targets` says what is wrong.
    rows = {row.name: row for row in listing()}
    assert rows["acme"].available
    assert "cannot import module 'no_such_vendor_module'" in (rows["broken"].reason or "")
    assert "must be 'module:Class'" in (rows["bad"].reason or "")
    assert "not a conformance.targets.interface.Target subclass" in (rows["notarget"].reason or "")
    assert rows["ort:cpu"].available and "reserved" in (rows["ort:cpu (entry point)"].reason or "")
    assert_expected(run("acme"), MLP, 1)
    names = all_target_names()
    assert "acme" in names and "bad" not in names


def test_unknown_target_names_the_alternatives(site):
    with pytest.raises(TargetError, match=r"unknown target 'acmee' \(did you mean 'acme'\?\)"):
        get_target("acmee")


# -- onnx.backend ---------------------------------------------------------------------------

BACKEND = "backend:tests.backend_fixture:OrtBackend"


@pytest.fixture
def repo_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))


def test_backend_target_runs_a_backend(repo_on_path):
    target = get_target(BACKEND)
    assert target.unavailable_reason() is None
    info = target.describe()
    assert info.device == "cpu" and info.options["backend"] == "tests.backend_fixture:OrtBackend"
    assert_expected(run(BACKEND), MLP, 1)
    assert_expected(run(BACKEND, GRU, 1), GRU, 1)


def test_backend_target_refusals(repo_on_path):
    with pytest.raises(TargetError, match="backend:package.module:Class"):
        get_target("backend:not a path")
    with pytest.raises(TargetError, match="unknown options"):
        get_target(BACKEND + ":precision=fp16")
    with pytest.raises(TargetUnavailable, match="no_such_backend_pkg"):
        get_target("backend:no_such_backend_pkg.mod:Backend").load(MLP / "model.onnx")
    with pytest.raises(TargetError, match="is not a onnx.backend.base.Backend subclass"):
        get_target("backend:conformance.targets.ort:OrtCpuTarget").load(MLP / "model.onnx")
    with pytest.raises(TargetUnavailable, match="does not support device 'CUDA'"):
        get_target(BACKEND + ":device=CUDA").load(MLP / "model.onnx")


# -- negative controls ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def honest():
    outputs = run("ort:cpu")
    assert_expected(outputs, MLP, 1)
    return outputs


def test_defect_targets_describe_themselves():
    import onnxruntime

    for kind in KINDS:
        info = get_target(f"defect:{kind}").describe()
        assert (info.runtime, info.version, info.device) == (
            "defect",
            onnxruntime.__version__,
            "cpu",
        )
        assert info.options == {"defect": kind} and info.deterministic


def test_defect_targets_reject_unknown_kinds_and_options():
    with pytest.raises(TargetError, match="not a negative control"):
        DefectTarget("defect:bogus", {})
    with pytest.raises(TargetError, match="unknown target"):
        get_target("defect:bogus")
    with pytest.raises(TargetError, match="takes? no options"):  # said by the base class now
        get_target("defect:noise:seed=1")


def test_noise(honest):
    outputs = run("defect:noise")
    again = run("defect:noise")
    relative = []
    for (name, got), (_, want), (_, repeat) in zip(outputs, honest, again):
        assert got.dtype == want.dtype and np.array_equal(got, repeat), name  # seeded
        relative.append((got.astype(np.float64) / want - 1).ravel())
    relative = np.concatenate(relative)
    assert 5e-4 < relative.std() < 2e-3 and np.abs(relative).max() < 1e-2


def test_fp16(honest):
    outputs = run("defect:fp16")
    errors = [
        np.abs(got.astype(np.float64) - want).max() for (_, got), (_, want) in zip(outputs, honest)
    ]
    assert all(got.dtype == np.float32 for _, got in outputs)  # keep_io_types: float32 outside
    assert 1e-6 < max(errors) < 1e-1


def test_first_sample(honest):
    for (name, got), (_, want) in zip(run("defect:first-sample"), honest):
        assert got.shape == want.shape == (4, 10)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-6)
        assert all(np.array_equal(got[i], got[0]) for i in range(1, 4)), name
        assert not np.allclose(want[1:], want[0]), name  # the honest rows differ


def test_swap_outputs(honest):
    outputs = run("defect:swap-outputs")
    assert [n for n, _ in outputs] == [n for n, _ in honest] == ["logits", "probs"]
    assert np.array_equal(outputs[0][1], honest[1][1]) and np.array_equal(
        outputs[1][1], honest[0][1]
    )
    # One output: the rows come back in reverse batch order (each request gets another's result).
    single = run("defect:swap-outputs", GRU, 1)
    want = run("ort:cpu", GRU, 1)
    assert np.array_equal(single[0][1], want[0][1][::-1]) and not np.array_equal(
        single[0][1], want[0][1]
    )


def test_nan(honest):
    outputs = run("defect:nan")
    (_, first), (_, second) = outputs
    assert np.isnan(first).sum() == 1 and not np.isnan(second).any()
    mask = ~np.isnan(first)
    assert np.array_equal(first[mask], honest[0][1][mask]) and np.array_equal(second, honest[1][1])


def test_stale(honest):
    session = get_target("defect:stale").load(MLP / "model.onnx")
    ((name, image),) = data(MLP, 1, "input")
    first = session.run({name: image})
    second = session.run({name: image[::-1].copy()})
    for (_, a), (_, b), (_, want) in zip(first, second, honest):
        assert np.array_equal(a, want) and np.array_equal(b, want)  # first honest, then stale
    honest_second = get_target("ort:cpu").load(MLP / "model.onnx").run({name: image[::-1].copy()})
    assert not np.array_equal(honest_second[0][1], second[0][1])


def test_dtype(honest):
    for (name, got), (_, want) in zip(run("defect:dtype"), honest):
        assert got.dtype == np.float64 and want.dtype == np.float32, name
        assert np.array_equal(got, want.astype(np.float64)), name


CHILD = textwrap.dedent("""
    import resource, sys
    from pathlib import Path
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file from the abort
    from conformance.pack.layout import read_data_set
    from conformance.targets import get_target
    session = get_target(sys.argv[1]).load(Path(sys.argv[2]) / "model.onnx")
    feeds = dict(read_data_set(Path(sys.argv[2]) / "test_data_set_1", "input"))
    print("running", flush=True)
    session.run(feeds)
    print("returned", flush=True)
""")


def child(kind: str) -> list[str]:
    return [sys.executable, "-c", CHILD, f"defect:{kind}", str(MLP)]


def child_env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }


def test_crash_aborts_the_process():
    result = subprocess.run(
        child("crash"), cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == -signal.SIGABRT, result.stderr[-2000:]
    assert result.stdout.split() == ["running"]  # died inside run, no exception, no return


def test_hang_never_returns(tmp_path):
    process = subprocess.Popen(
        child("hang"),
        cwd=REPO,
        env={**child_env(), MARKERS_ENV: str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    running = tmp_path / "hang.running"  # touched by the control as it enters run
    try:
        deadline = time.monotonic() + 120
        while not running.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert running.exists(), f"run never began (exit code {process.poll()})"
        time.sleep(1.0)
        assert process.poll() is None
    finally:
        process.kill()
        process.wait(timeout=30)
        printed = process.stdout.read()  # the process is gone: read() ends
        process.stdout.close()
    assert printed.split() == ["running"]  # inside run, never returned


# -- adapter contract: options validated for every plug-in, adapter bugs named as such --------

PRETEND = '''
from pathlib import Path

from conformance.targets.interface import Session, Target, TargetInfo


class PretendTarget(Target):
    """Old style: swallows whatever options it is given and never says so."""

    def __init__(self, name, options):
        super().__init__(name, {})

    def unavailable_reason(self):
        return None

    def describe(self):
        return TargetInfo(self.name, "pretend", "1.0", "cpu")

    def _load(self, model_path: Path) -> Session:
        raise NotImplementedError


class NoRuntimeTarget(PretendTarget):
    def describe(self):
        return TargetInfo(self.name, "1.0", "cpu")  # forgot runtime


class NotASessionTarget(PretendTarget):
    def _load(self, model_path):
        return object()


class ForgetfulSession(Session):
    def __init__(self):
        pass  # forgot super().__init__(input_names)

    def _run(self, inputs):
        return []


class OldStyleOptionsTarget(PretendTarget):
    OPTIONS = ("threads",)  # names instead of Option declarations


class DictSession(Session):
    def _run(self, inputs):
        return {"logits": None}
'''


@pytest.fixture
def pretend(site):
    (site / "pretend_runtime.py").write_text(PRETEND)
    fake_distribution(
        site,
        "pretend_vendor",
        {
            "pretend": "pretend_runtime:PretendTarget",
            "noruntime": "pretend_runtime:NoRuntimeTarget",
            "oldstyle": "pretend_runtime:OldStyleOptionsTarget",
        },
    )
    yield __import__("pretend_runtime")
    sys.modules.pop("pretend_runtime", None)


def test_plugin_with_an_unknown_option_is_refused(pretend):
    assert get_target("pretend").options == {}
    with pytest.raises(InvalidTargetError, match=r"unknown options \['fastmath'\]"):
        get_target("pretend:fastmath=1")
    with pytest.raises(InvalidTargetError, match="pretend takes no options"):
        get_target("pretend:fastmath=1")
    with pytest.raises(InvalidTargetError, match="acme takes no options"):
        get_target("acme:fastmath=1")


def test_backend_target_with_an_unknown_option_is_invalid(repo_on_path):
    with pytest.raises(InvalidTargetError, match=r"unknown options \['fastmath'\]; known: device"):
        get_target(BACKEND + ":fastmath=1")


def test_describe_without_a_required_field_is_an_adapter_error(pretend):
    with pytest.raises(AdapterError) as raised:
        get_target("noruntime").info()
    message = str(raised.value)
    assert "missing 1 required positional argument" in message
    assert "TargetInfo takes name, runtime, version, device" in message
    assert get_target("pretend").info().runtime == "pretend"


def test_adapter_contract_breaches_are_adapter_errors(pretend):
    with pytest.raises(AdapterError, match=r"did not call super\(\).__init__\(input_names\)"):
        pretend.ForgetfulSession().run({})
    with pytest.raises(AdapterError, match="must return a list of"):
        pretend.DictSession(["x"]).run({"x": np.zeros(1)})
    with pytest.raises(AdapterError, match="must return a Session"):
        pretend.NotASessionTarget("notasession", {}).load(MLP / "model.onnx")
    # An adapter error is never mistaken for the runtime's own refusal type.
    assert issubclass(AdapterError, TargetError) and not issubclass(AdapterError, TargetUnavailable)


def test_option_declarations_are_checked(pretend):
    with pytest.raises(AdapterError, match="OPTIONS must be a tuple of"):
        get_target("oldstyle:threads=2")
    for bad in (
        dict(name="threads", type=float),
        dict(name="threads", type=int, default="0"),
        dict(name="mode", type=str, default="x", choices=("a", "b")),
        dict(name="bad name", type=str),
    ):
        with pytest.raises(TypeError):
            Option(**bad)
