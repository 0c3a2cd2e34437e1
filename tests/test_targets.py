"""Every built-in target keeps the adapter contract: names, availability, description, a real
model's outputs under their graph names and within float32 error, clean errors on bad input.

Unavailable targets (no GPU, package missing) skip with their own reason.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conformance.pack import layout
from conformance.spec import PACK_DIR
from conformance.targets import (
    BUILTIN_TARGETS,
    DEFAULT_TARGETS,
    InvalidTargetError,
    TargetError,
    TargetInfo,
    choose_targets,
    get_target,
    listing,
    parse_target_name,
    render_listing,
    target_class,
)
from conformance.targets.interface import ARTIFACTS_ENV

TARGETS = sorted(BUILTIN_TARGETS)
MODEL = PACK_DIR / "mlp" / "torch-script"  # two outputs, dynamic batch; test set 1 is batch 4
RTOL, ATOL = 1e-4, 1e-5


def declared_options(name: str) -> tuple[str, ...]:
    """The options a built-in target accepts, read from its adapter's declarations."""
    return tuple(option.name for option in target_class(parse_target_name(name)).OPTIONS)


# Derived, never copied: a copy of this table once drifted from openvino.py.
KNOWN_OPTIONS = {name: declared_options(name) for name in BUILTIN_TARGETS}


def available(name: str):
    target = get_target(name)
    reason = target.unavailable_reason()
    assert reason is None or (isinstance(reason, str) and reason.strip())
    if reason:
        pytest.skip(reason)
    return target


def test_known_options_table_names_only_registered_targets():
    assert set(KNOWN_OPTIONS) <= set(BUILTIN_TARGETS)


@pytest.mark.parametrize("name", TARGETS)
def test_target_is_constructed_and_says_whether_it_is_available(name):
    target = get_target(name)
    assert target.name == name
    reason = target.unavailable_reason()
    assert reason is None or (isinstance(reason, str) and reason.strip())


@pytest.mark.parametrize("name", TARGETS)
def test_unknown_option_is_refused_naming_the_known_ones(name):
    with pytest.raises(TargetError) as raised:
        get_target(f"{name}:bogus=1")
    message = str(raised.value)
    assert "bogus" in message
    assert "known:" in message or "no options" in message, message
    known = KNOWN_OPTIONS.get(name)
    if known:
        assert all(option in message for option in known), message
    elif known == ():
        assert "no options" in message, message


@pytest.mark.parametrize("name", TARGETS)
def test_describe_fills_runtime_version_device(name):
    target = available(name)
    info = target.describe()
    assert isinstance(info, TargetInfo)
    assert info.name == name
    assert info.runtime and info.version and info.device
    assert isinstance(info.options, dict)


@pytest.mark.parametrize("name", TARGETS)
def test_runs_the_mlp_within_float32_error(name):
    target = available(name)
    data = layout.data_set_dir(MODEL, 1)
    inputs = dict(layout.read_data_set(data, "input"))
    expected = layout.read_data_set(data, "output")
    session = target.load(MODEL / layout.MODEL_ONNX)
    try:
        outputs = session.run(inputs)
        again = session.run(inputs)  # a second call must not disturb the first's arrays
    finally:
        session.close()
    assert [n for n, _ in outputs] == [n for n, _ in expected]
    for (name_, actual), (_, want), (_, second) in zip(outputs, expected, again):
        assert str(actual.dtype) == str(want.dtype), name_
        assert actual.shape == want.shape, name_
        np.testing.assert_allclose(actual, want, rtol=RTOL, atol=ATOL, err_msg=name_)
        np.testing.assert_array_equal(actual, second, err_msg=name_)


@pytest.mark.parametrize("name", TARGETS)
def test_a_missing_input_is_a_target_error(name):
    target = available(name)
    session = target.load(MODEL / layout.MODEL_ONNX)
    try:
        with pytest.raises(TargetError):
            session.run({})
    finally:
        session.close()


@pytest.mark.parametrize("name", TARGETS)
def test_garbage_file_is_a_target_error(name, tmp_path: Path):
    target = available(name)
    garbage = tmp_path / layout.MODEL_ONNX
    garbage.write_bytes(b"this is not an ONNX model\x00\x01\x02" * 8)
    with pytest.raises(TargetError):
        target.load(garbage)


def test_tract_ties_per_input_batch_symbols_only_where_they_differ():
    import onnx

    from conformance.targets.tract import tied_batch_facts

    def facts(artifact: str) -> dict[str, str]:
        path = PACK_DIR / artifact / layout.MODEL_ONNX
        return tied_batch_facts(onnx.load(str(path), load_external_data=False).graph)

    # tf2onnx: item_ids [unk__23, 8], dense_features [unk__24, 13] -> one symbol
    assert facts("embedding_mlp/tf2onnx") == {"item_ids": "B,8,i64", "dense_features": "B,13,f32"}
    assert facts("embedding_mlp/torch-script") == {}  # both already "batch"
    assert facts("transformer_encoder/tf2onnx") == {}  # one input: its seq symbol is left alone


# -- target names and declared options (issue 9 §3, issue 10 item 4) -------------------------


@pytest.mark.parametrize(
    ("name", "option", "allowed"),
    [
        ("ort:cpu:threads=abc", "threads", "whole number from 0 to 1024"),
        ("ort:cpu:threads=-1", "threads", "whole number from 0 to 1024"),
        ("ort:cpu:threads=99999999999999999", "threads", "whole number from 0 to 1024"),
        ("ort:cpu:threads=1:threads=2", "threads", "given twice"),
        ("ort:cpu:opt=fast", "opt", "one of all, extended, basic, disabled"),
        ("openvino:cpu:precision=int4", "precision", "one of f32, bf16, f16"),
        ("openvino:gpu:threads=2", "threads", "known: precision"),
        ("iree:llvm-cpu:target=a b", "target", "text matching"),
        ("tract:threads=2", "threads", "tract takes no options"),
    ],
)
def test_bad_option_is_refused_when_the_target_is_built(name, option, allowed):
    with pytest.raises(InvalidTargetError) as raised:
        get_target(name)
    message = str(raised.value)
    assert option in message and allowed in message, message
    assert "\n" not in message


@pytest.mark.parametrize(
    "name",
    ["", "ort::cpu", "ort:cpu:", ":ort", "ort:cpu:=1", "ort:cpu:threads=", "ort:opt=all:cpu"],
)
def test_malformed_names_are_invalid(name):
    with pytest.raises(InvalidTargetError):
        parse_target_name(name)


def test_one_parser_gives_base_and_options():
    parsed = parse_target_name("ort:cpu:opt=basic:threads=2")
    assert (parsed.raw, parsed.base, dict(parsed.options)) == (
        "ort:cpu:opt=basic:threads=2",
        "ort:cpu",
        {"opt": "basic", "threads": "2"},
    )
    assert parsed.parts == ("ort", "cpu")
    backend = parse_target_name("backend:pkg.mod:Cls:device=CPU")
    assert backend.base == "backend:pkg.mod:Cls" and dict(backend.options) == {"device": "CPU"}
    with pytest.raises(TypeError):
        parsed.options["opt"] = "all"  # type: ignore[index]  # read-only


def test_options_are_typed_and_defaulted_from_the_declarations():
    target = get_target("ort:cpu:threads=3")
    assert target.options == {"opt": "all", "threads": 3}
    assert target.base_name == "ort:cpu"
    info = target.describe()
    assert info.options["intra_op_num_threads"] == 3  # as recorded before: an int
    assert info.options["graph_optimization_level"] == "all"


def test_every_declared_option_is_listed():
    rows = {row.name: row for row in listing()}
    assert set(BUILTIN_TARGETS) <= set(rows)
    text = render_listing(list(rows.values()))
    for name in BUILTIN_TARGETS:
        for option in declared_options(name):
            assert option in {o.name for o in rows[name].options}
            assert f"{option}=" in text
    assert "one of all, extended, basic, disabled" in text


def test_choose_targets_with_and_without_names():
    chosen = choose_targets(["tract", "ort:cpu:opt=basic", "tract"], extra=["reference"])
    assert [t.name for t in chosen] == ["tract", "ort:cpu:opt=basic", "reference"]
    defaults = choose_targets([])
    assert defaults and all(t.unavailable_reason() is None for t in defaults)
    assert [t.name for t in defaults] == [
        name for name in DEFAULT_TARGETS if name in {t.name for t in defaults}
    ]
    with pytest.raises(InvalidTargetError):
        choose_targets(["ort:cpu:threads=abc"])


def test_native_targets_say_whose_test_data_they_borrow():
    assert get_target("torch").borrowed_test_data == "torch-script"
    assert get_target("tf").borrowed_test_data == "tf2onnx"
    assert get_target("ort:cpu").borrowed_test_data is None


def test_bad_option_on_the_command_line_is_exit_2_before_any_check(tmp_path: Path):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "conformance", "run", "--target", "ort:cpu:threads=abc"]
        + ["--model", "mlp", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "threads" in result.stderr and "whole number" in result.stderr, result.stderr
    assert not (out / "results.json").exists() or '"checks": []' in (
        out / "results.json"
    ).read_text().replace(" ", "").replace("\n", "")


# -- what the options change, observed on the runtime (issue 9 §7) ---------------------------

PROBE = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    import numpy as np
    from conformance.pack import layout
    from conformance.targets import get_target
    model = Path(sys.argv[2])
    threads_before = len(os.listdir("/proc/self/task"))
    session = get_target(sys.argv[1]).load(model / layout.MODEL_ONNX)
    state = {"threads_started": len(os.listdir("/proc/self/task")) - threads_before}
    data = layout.data_set_dir(model, 1)
    outputs = session.run(dict(layout.read_data_set(data, "input")))
    expected = layout.read_data_set(data, "output")
    state["max_error"] = max(
        float(np.abs(a.astype(np.float64) - b).max()) for (_, a), (_, b) in zip(outputs, expected)
    )
    if hasattr(session, "graph_optimization_level"):  # ORT reports its own session options
        state["ort_level"] = str(session.graph_optimization_level())
        state["ort_threads"] = session.intra_op_num_threads()
    if hasattr(session, "compiled_property"):  # OpenVINO reports its compiled model's
        state["ov_precision"] = session.compiled_property("INFERENCE_PRECISION_HINT")
        state["ov_threads"] = session.compiled_property("INFERENCE_NUM_THREADS")
    print(json.dumps(state))
""")


def probe(name: str) -> dict:
    """Load the mlp in a fresh process and read back what the runtime itself reports."""
    available(name)
    result = subprocess.run(
        [sys.executable, "-c", PROBE, name, str(MODEL)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_ort_threads_option_sizes_the_runtimes_thread_pool():
    one, four = probe("ort:cpu:threads=1"), probe("ort:cpu:threads=4")
    assert (one["ort_threads"], four["ort_threads"]) == (1, 4)
    # The intra-op pool has threads - 1 workers (the caller is the first): 3 more OS threads.
    assert four["threads_started"] - one["threads_started"] == 3


@pytest.mark.parametrize(
    ("opt", "level"),
    [
        ("all", "ORT_ENABLE_ALL"),
        ("extended", "ORT_ENABLE_EXTENDED"),
        ("basic", "ORT_ENABLE_BASIC"),
        ("disabled", "ORT_DISABLE_ALL"),
    ],
)
def test_ort_opt_level_is_the_sessions_own_level(opt, level):
    assert probe(f"ort:cpu:opt={opt}")["ort_level"] == f"GraphOptimizationLevel.{level}"


def test_openvino_precision_hint_is_in_force_and_changes_numerics():
    f32 = probe("openvino:cpu")
    assert f32["ov_precision"] == "f32" and f32["max_error"] < 1e-4
    bf16 = probe("openvino:cpu:precision=bf16")
    if bf16["ov_precision"] == "f32":
        pytest.skip("this CPU has no bf16 path: OpenVINO runs the bf16 hint as f32")
    assert bf16["ov_precision"] == "bf16"
    assert bf16["max_error"] > 10 * f32["max_error"]  # fewer mantissa bits, visibly
    described = get_target("openvino:cpu:precision=bf16").describe().options
    assert described["inference_precision"] == bf16["ov_precision"]


def test_openvino_threads_option_is_in_force():
    assert probe("openvino:cpu:threads=1")["ov_threads"] == 1


# -- artefacts a user can act on (issue 9 §4) ------------------------------------------------


def unsupported_by_iree(folder: Path) -> Path:
    """A valid one-op ONNX model that IREE imports but cannot compile (Col2Im)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Col2Im", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    path = folder / "col2im" / "handmade" / layout.MODEL_ONNX
    path.parent.mkdir(parents=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    return path


def test_iree_compile_failure_names_a_kept_mlir(tmp_path: Path, monkeypatch):
    target = available("iree:llvm-cpu")
    monkeypatch.setenv(ARTIFACTS_ENV, str(tmp_path / "artifacts"))
    with pytest.raises(TargetError) as raised:
        target.load(unsupported_by_iree(tmp_path / "pack"))
    message = str(raised.value)
    named = {Path(p) for p in re.findall(r"(/[^\s\"':]+\.mlir)", message)}
    assert named, message
    for path in named:
        assert path.is_file(), f"{path} named in the message does not exist"
        assert "onnx.Col2Im" in path.read_text()
    kept = tmp_path / "artifacts" / "iree" / "llvm-cpu" / "col2im" / "handmade" / "model.mlir"
    assert kept in named


def test_targets_command_lists_every_option_and_keeps_runtime_noise_off_the_terminal():
    result = subprocess.run(
        [sys.executable, "-m", "conformance", "targets"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # TensorFlow's absl start-up lines (imported to list tf:gpu) ignore TF_CPP_MIN_LOG_LEVEL.
    assert "absl" not in result.stderr and "I0000" not in result.stderr, result.stderr[-3000:]
    for name in BUILTIN_TARGETS:
        assert re.search(rf"^{re.escape(name)}\s+(available|unavailable: )", result.stdout, re.M)
    for option in {o for name in BUILTIN_TARGETS for o in declared_options(name)}:
        assert re.search(rf"^\s+{option}=: ", result.stdout, re.M), option


def test_iree_failure_in_a_run_names_an_mlir_kept_in_the_run_folder(tmp_path: Path):
    available("iree:llvm-cpu")
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "conformance", "run", "--target", "iree:llvm-cpu"]
        + ["--model", "gru", "--exporter", "tf2onnx", "--out", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    checks = json.loads((run_dir / "results.json").read_text())["checks"]
    failed = [c for c in checks if c["verdict"] == "error"]
    assert failed, checks  # IREE 3.13 cannot lower tf2onnx's GRU Loop
    for check in failed:
        problem = check["problems"][0]
        assert "(operator onnx.Loop)" in problem.splitlines()[0], problem[:500]
        named = {Path(p) for p in re.findall(r"(/[^\s\"':;]+\.mlir)", problem)}
        assert named, problem[:2000]
        for path in named:
            assert path.is_file() and run_dir.resolve() in path.parents, path


# Targets that load the ONNX file (live mode's native targets rebuild the model instead).
ONNX_TARGETS = [name for name in TARGETS if get_target(name).borrowed_test_data is None]


@pytest.mark.parametrize("name", ONNX_TARGETS)
def test_initializer_backed_inputs_are_optional(name, tmp_path: Path):
    """IR < 4 lists weights as graph inputs with an initializer: ONNX makes their feeds optional."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 3]) for n in ("x", "w")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        initializer=[numpy_helper.from_array(np.full((2, 3), 2.0, np.float32), "w")],
    )
    path = tmp_path / layout.MODEL_ONNX
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=3)
    onnx.save(model, path)
    session = available(name).load(path)
    try:
        assert session.input_names == ["x"]
        ((output, value),) = session.run({"x": np.ones((2, 3), np.float32)})
    finally:
        session.close()
    assert output == "y" and np.array_equal(value, np.full((2, 3), 3.0, np.float32))


@pytest.mark.parametrize("name", ONNX_TARGETS)
def test_scalar_inputs_stay_scalars(name, tmp_path: Path):
    """A 0-d input reaches the runtime as 0-d (numpy's ascontiguousarray would make it 1-d)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["c"])],
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, []) for n in ("a", "b")],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [])],
    )
    path = tmp_path / layout.MODEL_ONNX
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    session = available(name).load(path)
    try:
        ((output, value),) = session.run(
            {"a": np.array(1.5, np.float32), "b": np.array(2.0, np.float32)}
        )
    finally:
        session.close()
    assert output == "c" and value.shape == () and float(value) == 3.5


@pytest.mark.parametrize("name", ONNX_TARGETS)
def test_inputs_and_outputs_keep_their_graph_names(name, tmp_path: Path):
    """Tensors folded together (an Identity's input and output) keep the graph's names: OpenVINO
    ports carry both and its ``any_name`` picks the alphabetically first."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["x"], ["a_copy"]),
            helper.make_node("Relu", ["a_copy"], ["a_relu"]),
            helper.make_node("Identity", ["a_relu"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    path = tmp_path / layout.MODEL_ONNX
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    session = available(name).load(path)
    try:
        assert session.input_names == ["x"]
        ((output, value),) = session.run({"x": np.array([-1.0, 2.0], np.float32)})
    finally:
        session.close()
    assert output == "y" and value.tolist() == [0.0, 2.0]


def test_tract_refusals_capture_no_rust_backtrace(tmp_path: Path):
    """RUST_BACKTRACE=1 makes tract capture a backtrace on every refusal (the costly part); the
    adapter turns it off, so the runtime's own error carries none."""
    available("tract")
    path = unsupported_by_iree(tmp_path)  # Col2Im: tract has no translator for it either
    script = textwrap.dedent("""
        import sys
        from conformance.targets import get_target
        from conformance.targets.interface import TargetError
        try:
            get_target("tract").load(sys.argv[1])
        except TargetError as error:
            print("refused", "Stack backtrace" in str(error.__cause__), "Col2Im" in str(error))
    """)
    result = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "RUST_BACKTRACE": "1"},
    )
    assert result.stdout.split() == ["refused", "False", "True"], result.stdout + result.stderr


# -- the compile cache (issue 15 item 5) and IREE's thread count (item 4) --------------------


@pytest.fixture
def compile_cache_dir(tmp_path: Path, monkeypatch) -> Path:
    from conformance.targets import compile_cache

    folder = tmp_path / "cache"
    monkeypatch.setenv(compile_cache.CACHE_ENV, str(folder))
    monkeypatch.delenv(compile_cache.NO_CACHE_ENV, raising=False)
    monkeypatch.delenv(compile_cache.MAX_MB_ENV, raising=False)
    return folder


def test_compile_cache_serves_a_whole_entry_and_recompiles_a_damaged_one(
    compile_cache_dir: Path, tmp_path: Path
):
    from conformance.targets.compile_cache import HIT, MISS, CompileCache, cache_key

    compiled: list[Path] = []

    def compile_to(path: Path) -> None:
        compiled.append(path)
        path.write_bytes(b"module " * 4096)

    cache = CompileCache("demo")
    key = cache_key("0" * 64, "democc", "1.0", ["-O2"])
    assert key != cache_key("0" * 64, "democc", "1.1", ["-O2"])  # the version is in the key
    assert key != cache_key("0" * 64, "democc", "1.0", ["-O3"])  # so are the flags
    workdir = tmp_path / "work"
    workdir.mkdir()
    first = cache.compiled(key, compile_to, workdir)
    assert first.cache == MISS and compile_cache_dir in first.path.parents
    assert cache.compiled(key, compile_to, workdir).cache == HIT and len(compiled) == 1
    whole = first.path.read_bytes()

    damages = {
        "truncated": lambda p: p.write_bytes(whole[: len(whole) // 2]),
        "corrupted": lambda p: p.write_bytes(b"X" + whole[1:]),  # same size, other bytes
        "record lost": lambda p: p.with_suffix(".json").unlink(),
    }
    for what, damage in damages.items():
        damage(first.path)
        again = cache.compiled(key, compile_to, workdir)
        assert again.cache == MISS, what
        assert again.path.read_bytes() == whole, what
    assert len(compiled) == 1 + len(damages)
    assert not list(compile_cache_dir.rglob("*.tmp")), "a temporary file was left behind"


def test_compile_cache_keeps_within_its_bound(compile_cache_dir: Path, tmp_path: Path, monkeypatch):
    from conformance.targets.compile_cache import MAX_MB_ENV, CompileCache, cache_key

    monkeypatch.setenv(MAX_MB_ENV, "1")
    cache = CompileCache("demo")
    keys = [cache_key(str(i) * 64, "democc", "1.0", []) for i in range(3)]
    for key in keys:
        cache.compiled(key, lambda p: p.write_bytes(os.urandom(600 * 1024)), tmp_path)
    sizes = [p.stat().st_size for p in (compile_cache_dir / "compile").rglob("*.bin")]
    assert sum(sizes) <= 1024 * 1024, sizes
    assert cache.get(keys[-1]) is not None  # the newest entry stays


def mlp_outputs(session) -> list[np.ndarray]:
    feeds = dict(layout.read_data_set(MODEL / "test_data_set_1", "input"))
    return [value for _, value in session.run(feeds)]


def test_iree_loads_a_compiled_model_from_the_cache_the_second_time(compile_cache_dir: Path):
    from conformance.targets.compile_cache import HIT, MISS

    target = available("iree:llvm-cpu")
    first = target.load(MODEL / layout.MODEL_ONNX)
    try:
        assert first.load_facts() == {"compile_cache": MISS}
        expected = mlp_outputs(first)
        entry = first.vmfb_path
    finally:
        first.close()
    assert entry.is_file() and compile_cache_dir in entry.parents
    for cache, damage in ((HIT, None), (MISS, b"not a module")):
        if damage is not None:
            entry.write_bytes(damage)  # a truncated or foreign entry is recompiled, not loaded
        session = target.load(MODEL / layout.MODEL_ONNX)
        try:
            assert session.load_facts() == {"compile_cache": cache}
            for got, want in zip(mlp_outputs(session), expected):
                np.testing.assert_array_equal(got, want)
        finally:
            session.close()
    assert target.describe().options["compile_cache"] == "on"


def test_no_compile_cache_compiles_afresh_and_writes_nothing(compile_cache_dir: Path, monkeypatch):
    from conformance.targets.compile_cache import NO_CACHE_ENV, OFF

    monkeypatch.setenv(NO_CACHE_ENV, "1")
    for name, key in (
        ("iree:llvm-cpu", "compile_cache"),
        ("openvino:cpu:model_cache=on", "model_cache"),
    ):
        target = available(name)
        session = target.load(MODEL / layout.MODEL_ONNX)
        try:
            assert session.load_facts() == {"compile_cache": OFF}, name
        finally:
            session.close()
        assert target.describe().options[key] == "off", name
    assert not compile_cache_dir.exists() or not any(compile_cache_dir.rglob("*.*"))


def test_openvino_model_cache_follows_the_bytes_not_the_path(compile_cache_dir: Path, tmp_path):
    """OpenVINO caches a model compiled from a path by that path: new bytes at the same path
    got the old compiled blob (and its old weights). The adapter compiles from memory."""
    import onnx

    from conformance.targets.compile_cache import HIT, MISS

    target = available("openvino:cpu:model_cache=on")
    path = tmp_path / "mlp" / "copy" / layout.MODEL_ONNX
    path.parent.mkdir(parents=True)
    model = onnx.load(str(MODEL / layout.MODEL_ONNX))
    onnx.save(model, str(path))
    seen = []
    for _ in range(2):
        session = target.load(path)
        seen.append((session.load_facts()["compile_cache"], mlp_outputs(session)))
        session.close()
    assert [cache for cache, _ in seen] == [MISS, HIT]
    weights = next(t for t in model.graph.initializer if len(t.dims) == 2)
    array = onnx.numpy_helper.to_array(weights)
    weights.CopyFrom(onnx.numpy_helper.from_array(array * 2, weights.name))
    onnx.save(model, str(path))  # the same path and size, other weights
    session = target.load(path)
    try:
        assert session.load_facts()["compile_cache"] == MISS
        changed = mlp_outputs(session)
    finally:
        session.close()
    assert any(not np.allclose(a, b) for a, b in zip(changed, seen[0][1]))


def test_iree_threads_option_sets_the_task_workers():
    available("iree:llvm-cpu")
    described = get_target("iree:llvm-cpu:threads=1").describe().options
    assert described["threads"] == 1
    assert described["runtime_flags"] == ["--task_topology_max_group_count=1"]
    assert get_target("iree:llvm-cpu").describe().options["runtime_flags"] == []
    # IREE's flags are process-wide: count the threads a load starts, each in its own process.
    script = textwrap.dedent(f"""
        import os, sys
        from conformance.targets import get_target
        count = lambda: len(os.listdir("/proc/self/task"))
        before = count()
        session = get_target(sys.argv[1]).load({str(MODEL / layout.MODEL_ONNX)!r})
        print(count() - before)
    """)
    if not Path("/proc/self/task").is_dir():
        pytest.skip("counting threads needs /proc")
    started = {}
    names = (
        "iree:llvm-cpu:threads=1",
        "iree:llvm-cpu:threads=2",
        "iree:llvm-cpu:driver=local-sync",
    )
    for name in names:
        result = subprocess.run(
            [sys.executable, "-c", script, name], capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr[-3000:]
        started[name] = int(result.stdout.split()[-1])
    # local-sync has no task system: no worker at all, one fewer thread than one worker
    assert started["iree:llvm-cpu:driver=local-sync"] == started["iree:llvm-cpu:threads=1"] - 1
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one CPU: two workers are capped to one")
    assert started["iree:llvm-cpu:threads=2"] == started["iree:llvm-cpu:threads=1"] + 1, started


def test_iree_local_sync_driver_computes_what_local_task_does_and_takes_no_thread_count():
    available("iree:llvm-cpu")
    outputs = []
    for name in ("iree:llvm-cpu", "iree:llvm-cpu:driver=local-sync"):
        target = get_target(name)
        expected = name.partition("driver=")[2] or "local-task"
        assert target.describe().options["driver"] == expected
        session = target.load(MODEL / layout.MODEL_ONNX)
        try:
            outputs.append(mlp_outputs(session))
        finally:
            session.close()
    for sync, task in zip(*outputs):
        np.testing.assert_allclose(sync, task, rtol=1e-6, atol=1e-7)
    with pytest.raises(InvalidTargetError, match="drop threads="):
        get_target("iree:llvm-cpu:driver=local-sync:threads=1")


def test_targets_listing_does_not_import_the_frameworks_without_a_cuda_driver():
    """torch takes ~2 s and TensorFlow ~5 s to import: asking them for a GPU on a machine with
    no CUDA driver made `conformance targets` take ~10 s."""
    from conformance.targets.native import cuda_driver_missing

    if cuda_driver_missing("torch") is None or cuda_driver_missing("tensorflow") is None:
        pytest.skip("this machine has a CUDA driver (or a ROCm build): the frameworks are asked")
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "conformance", "targets"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert not {"torch", "tensorflow", "keras"} & imported
    for name in ("torch:cuda", "tf:gpu"):
        assert re.search(rf"^{re.escape(name)}\s+unavailable: no CUDA driver", result.stdout, re.M)


def test_ort_spinning_is_off_when_the_environment_says_so(monkeypatch):
    from conformance.targets.ort import ALLOW_SPINNING_ENV

    key = "session.intra_op.allow_spinning"
    for value, expected in (("0", False), ("", True)):
        monkeypatch.setenv(ALLOW_SPINNING_ENV, value)
        target = available("ort:cpu")
        assert target.describe().options["allow_spinning"] is expected
        session = target.load(MODEL / layout.MODEL_ONNX)
        options = session.native.get_session_options()
        try:
            entry = options.get_session_config_entry(key)
        except Exception:  # ORT raises when the entry was never set: its default, spinning
            entry = None
        assert (entry == "0") is (not expected), entry


def test_iree_compile_failure_is_recorded_and_given_again_without_compiling(
    compile_cache_dir: Path, tmp_path: Path, monkeypatch
):
    """A compiler diagnostic is deterministic: the same bytes, compiler and flags fail the same
    way, so the cache records the failure (the ops profile's ~700 failing node cases recompiled
    every run) and names a kept copy of the compiler's input each time."""
    from conformance.targets.compile_cache import NO_CACHE_ENV

    target = available("iree:llvm-cpu")
    model = unsupported_by_iree(tmp_path / "pack")
    messages = []
    for run in ("first", "second", "bypassed"):
        monkeypatch.setenv(ARTIFACTS_ENV, str(tmp_path / run))
        if run == "bypassed":
            monkeypatch.setenv(NO_CACHE_ENV, "1")
        with pytest.raises(TargetError) as raised:
            target.load(model)
        messages.append(str(raised.value))
        kept = tmp_path / run / "iree" / "llvm-cpu" / "col2im" / "handmade" / "model.mlir"
        assert f"its input is kept at {kept}" in messages[-1].splitlines()[0]
        assert "onnx.Col2Im" in kept.read_text()
    assert len(list(compile_cache_dir.rglob("*.failed.json"))) == 1
    recorded = "as the compile cache recorded it"
    assert [recorded in m for m in messages] == [False, True, False]
    first, second, bypassed = (m.splitlines()[0] for m in messages)
    # the first line is the fresh compile's, so an artifact's data sets group into one line
    assert first.split("; its input")[0] == second.split("; its input")[0]
    assert recorded not in second


def test_openvino_compiles_afresh_unless_its_model_cache_is_asked_for(compile_cache_dir: Path):
    """OpenVINO 2026.4's cached blobs computed RotaryEmbedding wrongly (7 of onnx's node cases,
    exact when compiled afresh): the default target compiles every load itself."""
    from conformance.targets.compile_cache import OFF

    target = available("openvino:cpu")
    assert target.describe().options["model_cache"] == "off"
    for _ in range(2):
        session = target.load(MODEL / layout.MODEL_ONNX)
        try:
            assert session.load_facts() == {"compile_cache": OFF}
        finally:
            session.close()
    assert not (compile_cache_dir / "openvino").exists()


def test_openvino_names_inputs_from_the_model_even_from_a_cached_blob(
    compile_cache_dir: Path, tmp_path: Path
):
    """A blob from OpenVINO's cache kept only the output's name on the port of an Einsum that
    passes its input through ("inputs missing: y" on the second run)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Einsum", ["x"], ["y"], equation="->")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
    )
    path = tmp_path / "einsum" / "handmade" / layout.MODEL_ONNX
    path.parent.mkdir(parents=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    target = available("openvino:cpu:model_cache=on")
    for cache in ("miss", "hit"):
        session = target.load(path)
        try:
            assert session.load_facts() == {"compile_cache": cache}
            assert session.input_names == ["x"], cache
            (name, value), *_ = session.run({"x": np.array(3.0, np.float32)})
            assert name == "y" and float(value) == 3.0
        finally:
            session.close()
