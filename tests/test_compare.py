"""`conformance compare` on a user's own model: the float64 reference, the checks through the
run session, bad input (exit 2, one line), and the Python API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from conformance.pack.load import Pack
from conformance.results.document import load_document, validate_document
from conformance.spec import PACK_DIR
from conformance.usermodel.command import compare_command
from conformance.usermodel.reference import FLOAT32, FLOAT64, reference_for
from tests.conftest import needs_frameworks

COMPARE = [sys.executable, "-m", "conformance.usermodel"]


def mlp(path: Path, batch: str | int | None = "N", seed: int = 0) -> Path:
    """x[N,8] -> MatMul -> Add -> Tanh -> MatMul -> Softmax (random weights, named nodes)."""
    rng = np.random.default_rng(seed)

    def init(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["h"], name="mm1"),
        helper.make_node("Add", ["h", "b1"], ["h2"], name="add1"),
        helper.make_node("Tanh", ["h2"], ["h3"], name="tanh"),
        helper.make_node("MatMul", ["h3", "W2"], ["y"], name="mm2"),
        helper.make_node("Softmax", ["y"], ["p"], name="soft", axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 8])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, [batch, 4])],
        [init("W1", 8, 16), init("b1", 16), init("W2", 16, 4)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def compare(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMPARE, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


# ---- 1. the float64 reference ---------------------------------------------------------------
def test_reference_of_a_pack_artifact_matches_its_golden() -> None:
    model = Pack(PACK_DIR).model("cnn")
    artifact = next(a for a in model.artifacts if a.exporter == "torch-script")
    feeds = dict(artifact.inputs(1))
    reference = reference_for(onnx.load(str(artifact.path)), [feeds])
    out = reference.run(feeds)
    assert not reference.fallbacks and "9 of 9 nodes in float64" in reference.describe()
    for expected in model.expected(artifact, 1):
        assert out[expected.name].dtype == np.float64
        # the golden is the torch twin in float64; the file folds BatchNorm in float32
        np.testing.assert_allclose(out[expected.name], expected.golden, rtol=1e-4, atol=1e-5)


def test_reference_lifts_cast_targets_and_falls_back_where_double_is_not_allowed() -> None:
    scale = numpy_helper.from_array(np.ones(4, np.float32), "scale")
    nodes = [
        helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT, name="cast"),
        # Mean/InvStdDev outputs are type U (float, bfloat16): double is not valid here
        helper.make_node(
            "LayerNormalization", ["xf", "scale"], ["y", "mean", "inv"], name="ln", axis=-1
        ),
        helper.make_node("Mul", ["y", "y"], ["z"], name="square"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [2, 4])],
        [
            helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 4]),
            helper.make_tensor_value_info("mean", TensorProto.FLOAT, [2, 1]),
        ],
        [scale],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.arange(8, dtype=np.float16).reshape(2, 4)
    reference = reference_for(model, [{"x": x}])
    precisions = {p.node: p.precision for p in reference.precisions}
    assert precisions == {"cast": FLOAT64, "ln": FLOAT32, "square": FLOAT64}
    assert "float32: ln (LayerNormalization" in reference.describe()
    casts = [n for n in reference.model.graph.node if n.name == "cast"]
    assert casts[0].attribute[0].i == TensorProto.DOUBLE
    out = reference.run({"x": x})
    assert out["z"].dtype == np.float64
    assert reference.as_dict()["fallbacks"][0]["node"] == "ln"


def loop_model(per_iteration: list[int]) -> onnx.ModelProto:
    """Loop 3 times; the body's scan output is ``x`` (of shape ``per_iteration``) times the
    iteration number."""
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Cast", ["i"], ["fi"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["x", "fi"], ["scan"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("scan", TensorProto.FLOAT, per_iteration),
        ],
    )
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "cond"], ["y"], body=body)],
        "loop",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, per_iteration)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [
            numpy_helper.from_array(np.array(3, np.int64), "trips"),
            numpy_helper.from_array(np.array(True), "cond"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def gather_elements_model(data: list[int], index: list[int], axis: int) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("GatherElements", ["data", "index"], ["y"], axis=axis)],
        "gather",
        [
            helper.make_tensor_value_info("data", TensorProto.FLOAT, data),
            helper.make_tensor_value_info("index", TensorProto.INT64, index),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, index)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def correction_cases() -> dict[str, list[tuple[onnx.ModelProto, dict[str, np.ndarray]]]]:
    """Per corrected op, models on which onnx.reference as it is was seen wrong."""
    rng = np.random.default_rng(0)
    loops = [
        (loop_model(shape), {"x": rng.standard_normal(shape).astype(np.float32)})
        for shape in ([1, 10], [])  # rank 2: vstack joins; rank 0: vstack adds an axis
    ]
    gathers = []
    for data, index, axis in (([70, 3], [5, 3], 0), ([3, 4], [2, 2], 1)):
        feeds = {
            "data": rng.standard_normal(data).astype(np.float32),
            "index": rng.integers(-data[axis], data[axis], index).astype(np.int64),
        }
        gathers.append((gather_elements_model(data, index, axis), feeds))
    return {"Loop": loops, "GatherElements": gathers}


def test_each_reference_correction_is_still_needed_and_agrees_with_onnxruntime() -> None:
    """Every correction in spec/reference-corrections.json: onnx.reference as installed is
    still wrong on a case (a wrong shape or no answer), and the corrected evaluator agrees with
    ONNX Runtime, an independent implementation, to float32 rounding."""
    import onnxruntime as ort
    from onnx.reference import ReferenceEvaluator

    from conformance.usermodel.corrected import corrections, reference_evaluator

    in_force = [entry["op_type"] for entry in corrections()]
    assert sorted(in_force) == ["GatherElements", "Loop"]  # for onnx 1.23.2, the pinned one
    cases = correction_cases()
    for op_type in in_force:
        still_wrong = 0
        for model, feeds in cases[op_type]:
            expected = ort.InferenceSession(model.SerializeToString()).run(None, feeds)[0]
            (corrected,) = reference_evaluator(model).run(None, feeds)
            assert corrected.shape == expected.shape, (op_type, corrected.shape, expected.shape)
            scale = max(1.0, float(np.abs(expected).max()))
            assert np.abs(corrected - expected).max() <= 1e-6 * scale, op_type
            try:
                (plain,) = ReferenceEvaluator(model).run(None, feeds)
                still_wrong += plain.shape != expected.shape
            except Exception:  # noqa: BLE001 - no answer is a wrong one (ValueError, IndexError)
                still_wrong += 1
        assert still_wrong, f"onnx.reference now gets {op_type} right: drop its correction"


@pytest.mark.parametrize(
    ("model_name", "exporter"), [("gru", "tf2onnx"), ("detection_head", "torch-script")]
)
def test_pack_models_that_onnx_reference_gets_wrong_have_a_right_reference(
    model_name: str, exporter: str, tmp_path: Path
) -> None:
    """gru/tf2onnx (a Loop) got a reference of another shape, so compare blamed an honest ORT;
    detection_head/torch-script (GatherElements over 64 boxes) got none (exit 2). Now both
    references agree with the pack's float64 golden, and compare says ORT conforms."""
    model = Pack(PACK_DIR).model(model_name)
    artifact = next(a for a in model.artifacts if a.exporter == exporter)
    feeds = dict(artifact.inputs(1))
    reference = reference_for(onnx.load(str(artifact.path)), [feeds])
    out = reference.run(feeds)
    for expected in model.expected(artifact, 1):
        assert out[expected.name].shape == expected.golden.shape, expected.name
        scale = max(1.0, float(np.abs(expected.golden).max()))
        # the file folds constants in float32: agreement to float32 rounding, not to float64's
        assert np.abs(out[expected.name] - expected.golden).max() <= 1e-6 * scale, expected.name
    assert "corrected: spec/reference-corrections.json" in reference.describe()
    result = compare(
        str(artifact.path),
        "--inputs",
        str(artifact.directory / "test_data_set_1"),
        "--target",
        "ort:cpu",
        "--out",
        str(tmp_path / "run"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    document = load_document(tmp_path / "run" / "results.json")
    assert document["usermodel"]["reference"]["corrected_ops"] == ["Loop", "GatherElements"]


# ---- 2. compare through the run session -----------------------------------------------------
def test_compare_a_pack_artifact_on_ort_conforms_with_every_check(tmp_path: Path) -> None:
    artifact = Pack(PACK_DIR).model("cnn").artifacts[1]  # torch-script: batch is dynamic
    out = tmp_path / "run"
    result = compare(
        str(artifact.path),
        "--shape",
        "image=3x3x32x32",
        "--samples",
        "2",
        "--seed",
        "7",
        "--target",
        "ort:cpu",
        "--target",
        "ort:cpu:opt=disabled",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    document = load_document(out / "results.json")
    validate_document(document)
    checks = document["checks"]
    assert len(checks) == 4 and {c["verdict"] for c in checks} == {"passed"}
    assert all(c["determinism"]["checked"] and c["batch_invariance"]["checked"] for c in checks)
    assert all(0 < c["margin"] < 1 for c in checks)
    extra = document["usermodel"]
    assert "in float64" in extra["reference"]["description"]
    assert extra["samples"] == [{"image": [3, 3, 32, 32]}] * 2


def test_compare_finds_a_defective_target_and_exits_1(tmp_path: Path) -> None:
    model = mlp(tmp_path / "mlp.onnx")
    result = compare(
        str(model),
        "--shape",
        "x=2x8",
        "--target",
        "defect:noise",
        "--target",
        "ort:cpu",
        "--out",
        str(tmp_path / "run"),
        "--no-localize",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "mlp-onnx-sample0-defect:noise: failed" in result.stdout
    assert "mlp-onnx-sample0-ort:cpu: passed" in result.stdout


def test_compare_catches_batch_variance_only_when_the_batch_is_dynamic(tmp_path: Path) -> None:
    dynamic = mlp(tmp_path / "dynamic.onnx")
    static = mlp(tmp_path / "static.onnx", batch=3)
    ran = compare(
        str(dynamic),
        "--shape",
        "x=3x8",
        "--target",
        "defect:batch-variant",
        "--out",
        str(tmp_path / "a"),
        "--no-localize",
    )
    assert ran.returncode == 1 and "batch invariance" in ran.stdout, ran.stdout + ran.stderr
    ran = compare(str(static), "--target", "defect:batch-variant", "--out", str(tmp_path / "b"))
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_tolerance_flags_judge_the_values(tmp_path: Path) -> None:
    model = mlp(tmp_path / "mlp.onnx")
    loose = compare(
        str(model),
        "--shape",
        "x=2x8",
        "--target",
        "defect:noise",
        "--atol",
        "1",
        "--rtol",
        "1",
        "--out",
        str(tmp_path / "a"),
    )
    assert loose.returncode == 0, loose.stdout + loose.stderr
    checks = load_document(tmp_path / "a" / "results.json")["checks"]
    assert checks[0]["tolerance"] == {"atol": 1.0, "rtol": 1.0}


# ---- 3. bad input: one line, exit 2 ----------------------------------------------------------
def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(compare_command, list(args))
    return result.exit_code, result.output


def one_line_error(code: int, output: str) -> str:
    assert code == 2, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


def test_a_model_failing_the_checker_is_named_with_its_message(tmp_path: Path) -> None:
    node = helper.make_node("Relu", ["x", "extra"], ["y"])  # Relu takes one input
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    line = one_line_error(*run_cli(str(path), "--out", str(tmp_path / "r")))
    assert "not a valid ONNX model (onnx.checker)" in line and "Relu" in line
    line = one_line_error(*run_cli(str(tmp_path / "nothing.onnx")))
    assert "is not a file" in line
    (tmp_path / "junk.onnx").write_bytes(b"\xff\x00junk" * 10)
    assert "not an ONNX model" in one_line_error(*run_cli(str(tmp_path / "junk.onnx")))


def test_inputs_that_do_not_fit_list_what_the_model_expects(tmp_path: Path) -> None:
    model = str(mlp(tmp_path / "mlp.onnx"))
    expects = "the model expects x (float32, Nx8)"
    np.savez(tmp_path / "missing.npz", y=np.zeros((1, 8), np.float32))
    line = one_line_error(*run_cli(model, "--inputs", str(tmp_path / "missing.npz")))
    assert "missing x" in line and "not model inputs: y" in line and expects in line
    np.savez(tmp_path / "dtype.npz", x=np.zeros((1, 8), np.float64))
    line = one_line_error(*run_cli(model, "--inputs", str(tmp_path / "dtype.npz")))
    assert "has dtype float64" in line and expects in line
    np.savez(tmp_path / "shape.npz", x=np.zeros((1, 9), np.float32))
    line = one_line_error(*run_cli(model, "--inputs", str(tmp_path / "shape.npz")))
    assert "has shape 1x9" in line and expects in line
    line = one_line_error(*run_cli(model, "--shape", "x=2x9"))
    assert "does not fit x (float32, Nx8)" in line
    line = one_line_error(*run_cli(model, "--shape", "nope=2x8"))
    assert "no such input" in line
    line = one_line_error(*run_cli(model, "--shape", "x=99999999999x8"))  # 6 TiB if drawn
    assert "799,999,999,992 elements; drawn inputs have at most" in line


def test_unresolved_dynamic_dims_are_named(tmp_path: Path) -> None:
    line = one_line_error(*run_cli(str(mlp(tmp_path / "mlp.onnx"))))
    assert "dynamic dimensions without a size: x axis 0 (N)" in line and "--shape x=1x8" in line


def test_bad_targets_and_tolerances_are_bad_input(tmp_path: Path) -> None:
    model = str(mlp(tmp_path / "mlp.onnx"))
    assert "unknown target" in one_line_error(
        *run_cli(model, "--shape", "x=1x8", "--target", "nope")
    )
    assert "--atol" in one_line_error(*run_cli(model, "--shape", "x=1x8", "--atol", "-1"))
    line = one_line_error(*run_cli(model, "--shape", "x=1x8", "--tolerance-class", "wild"))
    assert "classes are default" in line


def external_model(folder: Path, location: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = mlp(folder / "m.onnx")
    model = onnx.load(str(path))
    onnx.save_model(
        model, str(path), save_as_external_data=True, location="w.bin", size_threshold=0
    )
    model = onnx.load(str(path), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    path.write_bytes(model.SerializeToString())  # onnx.save would write the data itself
    return path


def test_external_data_is_loaded_and_paths_leaving_the_folder_are_refused(
    tmp_path: Path,
) -> None:
    good = external_model(tmp_path / "good", "w.bin")
    code, output = run_cli(
        str(good), "--shape", "x=1x8", "--target", "ort:cpu", "--out", str(tmp_path / "r")
    )
    assert code == 0, output
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\x00" * 4096)
    for location in ("../secret.bin", str(secret)):
        path = external_model(tmp_path / "evil", location)
        line = one_line_error(*run_cli(str(path), "--shape", "x=1x8"))
        assert "leaves the model's folder" in line
    link = tmp_path / "linked"
    path = external_model(link, "w.bin")
    (link / "w.bin").unlink()
    (link / "w.bin").symlink_to(secret)
    assert "resolves outside" in one_line_error(*run_cli(str(path), "--shape", "x=1x8"))
    missing = external_model(tmp_path / "missing", "gone.bin")
    assert "is missing" in one_line_error(*run_cli(str(missing), "--shape", "x=1x8"))


def test_a_model_over_2_gb_in_one_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge.onnx"
    with open(path, "wb") as handle:  # sparse: costs no disk
        handle.truncate(2**31 + 1)
    line = one_line_error(*run_cli(str(path)))
    assert "over protobuf's 2 GB limit" in line and "external data" in line


def test_an_existing_run_folder_is_refused(tmp_path: Path) -> None:
    model = str(mlp(tmp_path / "mlp.onnx"))
    out = tmp_path / "run"
    assert run_cli(model, "--shape", "x=1x8", "--target", "ort:cpu", "--out", str(out))[0] == 0
    line = one_line_error(
        *run_cli(model, "--shape", "x=1x8", "--target", "ort:cpu", "--out", str(out))
    )
    assert "exists" in line


# ---- 6. the Python API ------------------------------------------------------------------------
def test_python_api_on_a_path_and_a_model_proto(tmp_path: Path) -> None:
    import conformance.compare
    from conformance.usermodel import compare as check

    assert callable(
        conformance.compare
    )  # `conformance.compare(model, inputs, ...)`, the name
    path = mlp(tmp_path / "mlp.onnx")
    x = np.random.default_rng(1).standard_normal((2, 8)).astype(np.float32)
    results = conformance.compare(str(path), {"x": x}, targets=["ort:cpu"], run_dir=tmp_path / "a")
    results.assert_conforms()
    assert [r.verdict for r in results.records] == ["passed"]
    proto = onnx.load(str(path))
    failing = check(
        proto,
        [{"x": x}, {"x": x * 2}],
        targets=["defect:noise"],
        tolerance=(1e-5, 1e-4),
        run_dir=tmp_path / "b",
        localize=False,
    )
    with pytest.raises(AssertionError) as raised:
        failing.assert_conforms()
    text = str(raised.value)
    assert "2 of 2 checks did not pass" in text and "defect:noise: failed" in text
    assert "values out of tolerance" in text
    from conformance.usermodel.model import UserInputError

    with pytest.raises(UserInputError, match="missing x"):
        check(proto, {"y": x}, targets=["ort:cpu"], run_dir=tmp_path / "c")


TORCH_API = r"""
import sys
import numpy as np, torch
from conformance.usermodel import compare

if __name__ == "__main__":  # the targets' children are spawned

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8),
                              torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(8, 5))
    net[1].running_mean.uniform_(-1, 1); net[1].running_var.uniform_(0.5, 2)
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    for exporter in ("torch-script", "torch-dynamo"):
        results = compare(net, {"image": x}, targets=["ort:cpu"], exporter=exporter,
                          run_dir=f"{sys.argv[1]}/{exporter}")
        results.assert_conforms()
        assert "eager torch module in float64" in results.outcome.golden_source
        print(exporter, [r.verdict for r in results.records])
    bad = compare(net, {"image": x}, targets=["defect:fp16"], run_dir=f"{sys.argv[1]}/bad")
    try:
        bad.assert_conforms()
    except AssertionError as error:
        print("caught:", str(error).splitlines()[1])
"""

KERAS_API = r"""
import json, sys
import numpy as np, keras
from conformance.usermodel import compare


class Doubler(keras.Model):  # subclassed: clone_model cannot clone it
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3)

    def call(self, x):
        return self.dense(x) * 2.0


def mobilenet():
    # a library architecture, weights=None; BatchNorm statistics set from a batch (momentum 0,
    # one training-mode call) so the logits vary with the input instead of vanishing (~1e-17)
    net = keras.applications.MobileNet(input_shape=(32, 32, 3), alpha=0.25, weights=None,
                                       classes=10, classifier_activation=None)
    for layer in net.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    net(np.random.default_rng(1).standard_normal((8, 32, 32, 3)).astype(np.float32),
        training=True)
    return net


if __name__ == "__main__":  # the targets' children are spawned

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="tanh"),
                              keras.layers.Dense(3)])
    results = compare(model, {"features": x}, targets=["ort:cpu"], run_dir=sys.argv[1] + "/seq")
    results.assert_conforms()
    print("sequential", [r.verdict for r in results.records], results.outcome.golden_source)
    doubler = Doubler()
    doubler(x)
    results = compare(doubler, {"features": x}, targets=["ort:cpu"], run_dir=sys.argv[1] + "/sub")
    results.assert_conforms()
    print("keras", [r.verdict for r in results.records], results.outcome.golden_source)
    image = np.random.default_rng(2).standard_normal((2, 32, 32, 3)).astype(np.float32)
    net = mobilenet()
    results = compare(net, {"image": image}, targets=["ort:cpu", "defect:noise"],
                      run_dir=sys.argv[1] + "/mobilenet", localize=False)
    print("mobilenet", [r.verdict for r in results.records], results.outcome.golden_source)
    golden = np.load(sys.argv[1] + "/mobilenet/pack/model/golden.npz")
    clone = golden[[k for k in golden if ".output." in k][0]]
    float32 = np.asarray(net(image, training=False))
    rewrite = next(iter(results.outcome.reference.run({"image": image}).values()))
    scale = float(np.abs(clone).max())
    # the clone is float64 (not the float32 model's values) and the same function as the
    # export (whose rewrite carries the BatchNorm folded in float32: ~1e-7 apart)
    print("scale", scale > 0.1, "clone-vs-float32", 1e-12 < np.abs(clone - float32).max() / scale,
          "clone-vs-rewrite", np.abs(clone - rewrite).max() / scale < 1e-4)
    print("figures", np.abs(clone - float32).max() / scale, np.abs(clone - rewrite).max() / scale)
    section = json.load(open(sys.argv[1] + "/mobilenet/results.json"))["usermodel"]
    html = open(sys.argv[1] + "/mobilenet/report.html").read()
    print("report", "cloned in float64" in section["reference"]["golden"],
          "reference: the Keras model cloned in float64" in html)
"""


@needs_frameworks
@pytest.mark.parametrize(
    "script,expect",
    [
        (
            TORCH_API,
            [
                "torch-script ['passed']",
                "torch-dynamo ['passed']",
                "caught: - model-onnx-sample0-defect:fp16: failed",
            ],
        ),
        (
            KERAS_API,
            [
                "sequential ['passed'] the Keras model cloned in float64 (Keras 3",
                "keras ['passed'] the float64 rewrite of the tf2onnx export (not the Keras model "
                "cloned in float64: clone_model refused it",
                "mobilenet ['passed', 'failed'] the Keras model cloned in float64",
                "scale True clone-vs-float32 True clone-vs-rewrite True",
                "report True True",
            ],
        ),
    ],
)
def test_python_api_takes_a_torch_module_or_a_keras_model(
    tmp_path: Path, script: str, expect: list[str]
) -> None:
    path = tmp_path / "api.py"
    path.write_text(script)
    result = subprocess.run(
        [sys.executable, str(path), str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    for line in expect:
        assert line in result.stdout, result.stdout


def test_a_folder_of_test_data_sets_gives_one_sample_each(tmp_path: Path) -> None:
    artifact = next(a for a in Pack(PACK_DIR).model("cnn").artifacts if a.exporter == "tf2onnx")
    code, output = run_cli(
        str(artifact.path),
        "--inputs",
        str(artifact.directory),
        "--target",
        "ort:cpu",
        "--out",
        str(tmp_path / "run"),
    )
    assert code == 0, output
    document = load_document(tmp_path / "run" / "results.json")
    data_sets = Pack(PACK_DIR).model("cnn").data_sets
    labels = [c["data_set_label"] for c in document["checks"]]
    assert labels == [f"sample{i}" for i in range(len(data_sets))]
    shapes = [s[next(iter(s))][0] for s in document["usermodel"]["samples"]]
    assert shapes == [d.batch for d in data_sets]  # one sample per data set of the pack
    # the reference of the file agrees with the pack's own golden for it
    golden = Pack(PACK_DIR).model("cnn").expected(artifact, 1)[0].golden
    from conformance.pack.layout import read_tensor

    run_set = tmp_path / "run" / "pack" / "model" / "onnx" / "test_data_set_1"
    _, reference = read_tensor(run_set / "output_0.pb")
    np.testing.assert_allclose(reference, golden, rtol=1e-4, atol=1e-5)


def test_no_compile_cache_reaches_the_targets_children(tmp_path: Path) -> None:
    model = mlp(tmp_path / "m.onnx", batch=2)
    env = {"CONFORMANCE_CACHE_DIR": str(tmp_path / "cache")}
    result = compare(
        str(model), "--target", "openvino:cpu:model_cache=on", "--out", str(tmp_path / "a"), env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    cached = load_document(tmp_path / "a" / "results.json")["checks"][0]
    assert cached.get("compile_cache") in ("hit", "miss"), cached
    result = compare(
        str(model),
        "--target",
        "openvino:cpu:model_cache=on",
        "--no-compile-cache",
        "--out",
        str(tmp_path / "b"),
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert load_document(tmp_path / "b" / "results.json")["checks"][0]["compile_cache"] == "off"


def test_targets_run_side_by_side_and_their_records_keep_plan_order(tmp_path: Path) -> None:
    model = mlp(tmp_path / "m.onnx")
    targets = ["ort:cpu", "defect:noise", "reference"]
    result = compare(
        str(model),
        "--shape",
        "x=3x8",
        "--samples",
        "2",
        *[a for t in targets for a in ("--target", t)],
        "--no-localize",
        "--out",
        str(tmp_path / "run"),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    checks = load_document(tmp_path / "run" / "results.json")["checks"]
    assert [c["id"] for c in checks] == [f"m-onnx-sample{k}-{t}" for t in targets for k in range(2)]
    assert [c["verdict"] for c in checks] == ["passed"] * 2 + ["failed"] * 2 + ["passed"] * 2
    # progress: each check once, as it comes; the summary at the end: in plan order
    lines = result.stdout.splitlines()
    progress = [line[: -len(": passed")] for line in lines if line.endswith(": passed")]
    summary = [line.split(": ")[0] for line in lines if ": passed margin" in line]
    passed = [c["id"] for c in checks if c["verdict"] == "passed"]
    assert sorted(progress) == sorted(passed) and summary == passed, result.stdout


def test_worst_elements_are_the_largest_ratios_ties_by_index_nan_last() -> None:
    """The five worst elements come from a partition, not a full sort of the output: the same
    elements in the same order as a stable sort, with ties, NaN and inf among them."""
    from conformance.compare.stats import WORST_ELEMENTS, _worst_flat

    rng = np.random.default_rng(0)
    for trial in range(400):
        ratio = rng.standard_normal(int(rng.integers(1, 300)))
        if trial % 4 == 1:
            ratio = np.round(ratio, 1)  # many ties
        elif trial % 4 == 2:
            ratio[rng.integers(0, ratio.size, size=ratio.size // 3)] = np.nan
        elif trial % 4 == 3:
            ratio[rng.integers(0, ratio.size, size=2)] = np.inf
        full = np.argsort(-ratio, kind="stable")[:WORST_ELEMENTS]
        np.testing.assert_array_equal(_worst_flat(ratio, WORST_ELEMENTS), full)


def test_an_overflowed_output_has_an_infinite_margin() -> None:
    """An output that overflows to inf (an fp16 artifact) is infinitely wrong: its margin and
    worst element say inf (recorded as null), never the largest float."""
    from conformance.compare.stats import error_stats, margin_and_max_abs
    from conformance.compare.tolerance import Tolerance

    tolerance = Tolerance(1e-3, 1e-3)
    stats = error_stats(np.array([np.inf, 1.0], np.float16), np.array([5.0, 1.0]), tolerance)
    assert stats.margin == np.inf and stats.max_abs == np.inf
    assert stats.worst_elements[0]["abs_error"] == np.inf
    assert stats.as_dict()["margin"] is None
    assert margin_and_max_abs(np.array([np.nan]), np.array([1.0]), tolerance) == (np.inf, np.inf)


def test_the_report_templates_are_compiled_while_the_checks_run():
    """issue 12 (compare's speed): compare compiles the report's templates in a thread while it
    waits on the targets' children; the report at the end finds them compiled (the process's
    environment keeps them)."""
    from conformance.report.html import environment
    from conformance.usermodel.comparison import warm_report_templates

    env = environment()
    names = env.list_templates(filter_func=lambda n: n.endswith(".j2"))
    warm_report_templates().join(timeout=120)
    assert names and env.cache is not None
    compiled = {key[1] for key in env.cache.keys()}
    assert set(names) <= compiled, (names, compiled)
