"""Localisation and the minimal reproducer, on negative controls that break ONE known node
(backend:conformance.localize.controls:OneNodeDefect), so the node to name is known in advance:
a small graph and a real architecture (a Keras MobileNetV3Small built with weights=None,
exported by tf2onnx from_function)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conformance.localize.controls import NODE_DEFECT_ENV, chain_model
from tests.conftest import needs_frameworks
from tests.test_compare import compare, mlp

DEFECT = "backend:conformance.localize.controls:OneNodeDefect"

KERAS_APP = r"""
import sys
import numpy as np, tensorflow as tf, keras, tf2onnx, onnx
keras.utils.set_random_seed(0)
model = keras.applications.MobileNetV3Small(
    input_shape=(32, 32, 3), weights=None, classes=10, include_preprocessing=False,
    classifier_activation=None)
rng = np.random.default_rng(0)
for layer in model.layers:  # He-scaled kernels: a random MobileNet's logits vanish otherwise
    for w in layer.weights:
        if len(w.shape) == 4:
            kh, kw, cin, _ = w.shape
            fan = kh * kw if "depthwise" in w.path else kh * kw * cin
            w.assign(rng.standard_normal(w.shape).astype("float32") * np.sqrt(2.0 / fan))
spec = (tf.TensorSpec((None, 32, 32, 3), tf.float32, name="image"),)
proto, _ = tf2onnx.convert.from_function(
    tf.function(lambda x: model(x, training=False)), input_signature=spec, opset=17)
onnx.save(proto, sys.argv[1])
"""


def localizations(run: Path) -> list[dict]:
    return json.loads((run / "results.json").read_text())["usermodel"]["localizations"]


def test_the_perturbed_node_is_named_and_its_reproducer_fails_alone(tmp_path: Path) -> None:
    model = mlp(tmp_path / "mlp.onnx")
    env = {NODE_DEFECT_ENV: "tanh"}
    run = tmp_path / "run"
    result = compare(
        str(model),
        "--shape",
        "x=4x8",
        "--samples",
        "2",
        "--target",
        DEFECT,
        "--target",
        "ort:cpu",
        "--out",
        str(run),
        env=env,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "first diverging node: tanh (Tanh, inputs 4x16) introduces" in result.stdout
    found = localizations(run)
    assert [f["sample"] for f in found] == [0, 1]  # every failing sample, ort:cpu never
    first = found[0]
    rows = {r["node"]: r for r in first["nodes"]}
    assert rows["mm1"]["introduced"]["margin"] < 1 and rows["add1"]["total"]["margin"] < 1
    assert rows["tanh"]["introduced"]["margin"] > 10
    # downstream nodes inherit the error but add none of their own
    assert rows["mm2"]["total"]["margin"] > 1 and rows["mm2"]["introduced"]["margin"] < 1
    assert first["first_diverging"]["op_type"] == "Tanh"
    assert first["first_diverging"]["inputs"] == [{"name": "h2", "shape": [4, 16]}]
    repro = first["reproducer"]
    assert repro["kind"] == "subgraph" and repro["nodes"] == 1 and repro["fails_alone"]
    folder = Path(repro["folder"])
    assert sorted(p.name for p in (folder / "test_data_set_0").iterdir()) == [
        "input_0.pb",
        "output_0.pb",
    ]
    # alone, from its folder: fails the same way on the defect, passes on an honest runtime
    again = compare(
        str(folder / "model.onnx"),
        "--inputs",
        str(folder / "test_data_set_0"),
        "--target",
        DEFECT,
        "--target",
        "ort:cpu",
        "--out",
        str(tmp_path / "again"),
        env=env,
    )
    assert again.returncode == 1, again.stdout + again.stderr
    assert "first diverging node: tanh (Tanh" in again.stdout
    assert "model-onnx-sample0-ort:cpu: passed" in again.stdout


def test_only_the_failing_sample_is_localised(tmp_path: Path) -> None:
    # Softmax over [N, 4]: a sample whose row is constant would not show a 1% scale of tanh;
    # here the defect perturbs mm2's output, which every sample shows; one sample given twice
    # with a zero row shows the failure once out of several samples.
    import numpy as np

    model = mlp(tmp_path / "mlp.onnx")
    np.savez(tmp_path / "zero.npz", x=np.zeros((1, 8), np.float32))
    np.savez(tmp_path / "ones.npz", x=np.full((1, 8), 0.5, np.float32))
    run = tmp_path / "run"
    result = compare(
        str(model),
        "--inputs",
        str(tmp_path / "zero.npz"),
        "--inputs",
        str(tmp_path / "ones.npz"),
        "--target",
        DEFECT,
        "--out",
        str(run),
        env={NODE_DEFECT_ENV: "mm1"},
    )  # mm1 of a zero input is exactly zero
    assert result.returncode == 1, result.stdout + result.stderr
    found = localizations(run)
    assert [f["sample"] for f in found] == [1]
    assert found[0]["first_diverging"]["node"] == "mm1"


@needs_frameworks
def test_a_keras_application_localises_to_the_perturbed_layer(tmp_path: Path) -> None:
    script = tmp_path / "export.py"
    script.write_text(KERAS_APP)
    model = tmp_path / "mobilenet_v3_small.onnx"
    subprocess.run(
        [sys.executable, str(script), str(model)],
        check=True,
        capture_output=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    layer = "MobileNetV3Small_1/re_lu_1_2/Relu6"  # a Relu6 (Clip) in the first block
    run = tmp_path / "run"
    result = compare(
        str(model),
        "--shape",
        "image=2x32x32x3",
        "--target",
        DEFECT,
        "--target",
        "ort:cpu",
        "--out",
        str(run),
        env={NODE_DEFECT_ENV: layer},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "mobilenet_v3_small-onnx-sample0-ort:cpu: passed" in result.stdout
    (found,) = localizations(run)
    assert found["first_diverging"]["node"] == layer
    assert found["first_diverging"]["op_type"] == "Clip"
    assert len(found["nodes"]) > 300  # every node of the graph has its row
    assert "agree" in found["marking"]  # said either way: ORT fuses differently when marked
    assert found["reproducer"]["fails_alone"] and found["reproducer"]["nodes"] <= 7


@pytest.mark.parametrize("target", ["ort:cpu"])
def test_an_honest_target_is_not_localised(tmp_path: Path, target: str) -> None:
    run = tmp_path / "run"
    result = compare(
        str(mlp(tmp_path / "m.onnx")), "--shape", "x=2x8", "--target", target, "--out", str(run)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert localizations(run) == [] and not (run / "repro").exists()


def test_the_report_shows_the_first_diverging_node_and_the_reproducer(tmp_path: Path) -> None:
    run = tmp_path / "run"
    hostile = "tanh<script>\u202e"  # node names come from the user's file: escaped
    model = mlp(tmp_path / "mlp.onnx")
    import onnx

    proto = onnx.load(str(model))
    proto.graph.node[2].name = hostile
    onnx.save(proto, str(model))
    result = compare(
        str(model),
        "--shape",
        "x=2x8",
        "--target",
        DEFECT,
        "--out",
        str(run),
        env={NODE_DEFECT_ENV: "Tanh"},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    page = (run / "report.html").read_text()
    assert 'id="usermodel"' in page and "first diverging node: tanh&lt;script&gt;" in page
    assert "<script>\u202e" not in page and "\\u202e" in page
    assert "reproducer (subgraph, 1 node(s), fails alone)" in page
    assert "onnx.reference" in page and "5 of 5 nodes in float64" in page


def test_the_pack_run_localises_its_numeric_runtime_findings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conformance.localize.pack import localize_run
    from conformance.run.session import RunRequest, RunSession
    from conformance.spec import PACK_DIR

    monkeypatch.setenv(NODE_DEFECT_ENV, "/Relu")  # a node of mlp/torch-script
    request = RunRequest(
        PACK_DIR, tmp_path / "run", targets=(DEFECT,), models=("mlp",), exporters=("torch-script",)
    )
    with RunSession.open(request) as session:
        records = session.run_checks()
        assert {r.verdict for r in records} == {"failed"}
        section = localize_run(session)
    assert section is not None
    document = json.loads((tmp_path / "run" / "results.json").read_text())
    from conformance.results.document import validate_document

    validate_document(document)
    found = document["localization"]["localizations"]
    assert found == section["localizations"]
    # one localisation per (target, artifact), standing for the artifact's other failing data sets
    (entry,) = found
    assert len(records) >= 2
    assert sorted([entry["check"], *entry["same_artifact"]]) == sorted(r.check_id for r in records)
    for entry in found:
        assert entry["first_diverging"]["node"] == "/Relu", entry.get("error")
        assert entry["first_diverging"]["op_type"] == "Relu"
        assert entry["reproducer"]["fails_alone"] and entry["reproducer"]["nodes"] == 1
        assert Path(entry["reproducer"]["model"]).is_file()
    from conformance.report.usermodel import usermodel_sections

    html = usermodel_sections(document)
    assert "Where the numeric runtime findings start" in html
    assert "first diverging node: /Relu (Relu" in html and "fails alone" in html


def test_conformance_run_names_the_first_diverging_node(tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance",
            "run",
            "--model",
            "mlp",
            "--exporter",
            "torch-script",
            "--target",
            DEFECT,
            "--out",
            str(run),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, NODE_DEFECT_ENV: "/Relu"},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "first diverging node: /Relu (Relu" in result.stdout
    page = (run / "report.html").read_text()
    assert "Where the numeric runtime findings start" in page and "fails alone" in page


def test_the_pack_iree_finding_is_localised_to_a_wrong_intermediate_shape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """IREE 3.13 on transformer_encoder/torch-dynamo with batch and sequence both dynamic: the
    outputs are silently wrong at batch > 1. Localisation names the node where the target's
    value first goes wrong: a Transpose whose output lost the batch axis."""
    import conformance.localize.pack as pack_localize
    from conformance.run.session import RunRequest, RunSession
    from conformance.spec import PACK_DIR
    from conformance.targets import get_target

    if get_target("iree:llvm-cpu").unavailable_reason():
        pytest.skip("IREE is not installed here")
    monkeypatch.setattr(pack_localize, "MAX_FINDINGS", 1)  # one compile series, not five
    request = RunRequest(
        PACK_DIR,
        tmp_path / "run",
        targets=("iree:llvm-cpu",),
        models=("transformer_encoder",),
        exporters=("torch-dynamo",),
    )
    with RunSession.open(request) as session:
        records = session.run_checks()
        failing = [r for r in records if r.verdict == "failed"]
        if not failing:
            pytest.skip("this IREE build gets transformer_encoder/torch-dynamo right")
        section = pack_localize.localize_run(session)
    assert section is not None
    (entry,) = section["localizations"]
    assert "error" not in entry, entry.get("error")
    found = entry["first_diverging"]
    assert found["op_type"] == "Transpose" and "shape" in found["note"], found
    batch = found["inputs"][0]["shape"][0]
    assert "where the node gives [" in found["note"] and batch > 1
    assert entry["reproducer"]["fails_alone"], entry["reproducer"]


def _pack_run(run: Path) -> dict:
    from conformance.localize.pack import localize_run
    from conformance.run.session import RunRequest, RunSession
    from conformance.spec import PACK_DIR

    request = RunRequest(
        PACK_DIR, run, targets=(DEFECT,), models=("mlp",), exporters=("torch-script",)
    )
    with RunSession.open(request) as session:
        session.run_checks()
        section = localize_run(session)
    assert section is not None
    (entry,) = section["localizations"]
    return dict(entry)


def test_a_second_pack_run_takes_its_localisation_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conformance.localize import cache

    monkeypatch.setenv("CONFORMANCE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(cache.NO_CACHE_ENV, raising=False)
    monkeypatch.setenv(NODE_DEFECT_ENV, "/Relu")
    first = _pack_run(tmp_path / "one")
    assert not first.get("cached") and first["first_diverging"]["node"] == "/Relu"
    stored = list((tmp_path / "cache" / cache.FOLDER).glob(f"*/*/{cache.ENTRY}"))
    assert len(stored) == 1
    second = _pack_run(tmp_path / "two")
    assert second["cached"] is True
    drop = ("cached", "reproducer")
    assert {k: v for k, v in second.items() if k not in drop} == {
        k: v for k, v in first.items() if k not in drop
    }
    # the reproducer is the second run's own folder, whole
    repro = second["reproducer"]
    assert repro["folder"].startswith(str(tmp_path / "two"))
    assert str(tmp_path / "one") not in json.dumps(second)
    assert Path(repro["model"]).is_file() and repro["fails_alone"]
    assert sorted(p.name for p in Path(repro["folder"]).rglob("*")) == sorted(
        p.name for p in Path(first["reproducer"]["folder"]).rglob("*")
    )
    from conformance.report.usermodel import usermodel_sections

    document = json.loads((tmp_path / "two" / "results.json").read_text())
    assert "(localisation cache)" in usermodel_sections(document)
    # the target now fails another way (another node perturbed): localised afresh, not served
    monkeypatch.setenv(NODE_DEFECT_ENV, "/fc2/Gemm")
    third = _pack_run(tmp_path / "three")
    assert not third.get("cached") and third["first_diverging"]["node"] == "/fc2/Gemm"
    # bypassed on request
    monkeypatch.setenv(NODE_DEFECT_ENV, "/Relu")
    monkeypatch.setenv(cache.NO_CACHE_ENV, "1")
    assert not _pack_run(tmp_path / "four").get("cached")


def test_a_damaged_localisation_entry_is_a_miss_and_removed(tmp_path: Path) -> None:
    from conformance.localize.cache import ENTRY, LocalizationCache

    run = tmp_path / "run"
    folder = run / "repro" / "t" / "case"
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"not really onnx, only bytes to copy")
    entry = {
        "check": "c",
        "summary": "first diverging node: n",
        "reproducer": {"folder": str(folder), "model": str(folder / "model.onnx")},
    }
    store = LocalizationCache(tmp_path / "cache")
    key = "ab" * 32
    assert store.put(key, entry, run)
    assert not store.put("cd" * 32, {**entry, "error": "localisation failed"}, run)
    again = store.get(key, tmp_path / "other")
    assert again is not None and again["cached"] is True
    assert (tmp_path / "other" / "repro" / "t" / "case" / "model.onnx").read_bytes() == (
        folder / "model.onnx"
    ).read_bytes()
    stored = store.folder / key[:2] / key / ENTRY
    stored.write_text(stored.read_text()[:20])  # truncated
    assert store.get(key, tmp_path / "third") is None
    assert not stored.parent.exists()
    assert not list(store.folder.rglob(".*-*")), "a temporary folder was left behind"


def test_the_float64_reference_holds_only_the_values_still_needed(tmp_path: Path) -> None:
    """The reference is evaluated node by node (the whole-graph evaluator keeps every
    intermediate value until it returns): a 60-node chain never holds more than the input,
    the value being computed and the one before it; its outputs are the evaluator's."""
    import onnx
    from onnx.reference import ReferenceEvaluator

    from conformance.usermodel.reference import reference_for

    model = onnx.load(str(chain_model(tmp_path / "chain.onnx", 60)))
    x = np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32)
    reference = reference_for(model, [{"x": x}])
    stream = reference.stream({"x": x})
    live = 0
    while not stream.done:
        stream.step()
        live = max(live, len(stream.values))
    assert live <= 3, live
    whole = ReferenceEvaluator(reference.model).run(None, {"x": x.astype(np.float64)})[0]
    (out,) = reference.run({"x": x}).values()
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, whole, rtol=1e-12, atol=1e-15)


def test_localisation_in_small_chunks_gives_the_same_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The per-node table is computed chunk by chunk (marked outputs per run of the target,
    reference values per chunk bounded in bytes): a chunk of one node at a time gives the
    same table as one chunk for the whole model."""
    from conformance.localize import marking as loc
    from conformance.usermodel import compare as check

    model = chain_model(tmp_path / "chain.onnx", 20)
    x = np.random.default_rng(2).standard_normal((2, 16)).astype(np.float32)
    monkeypatch.setenv(NODE_DEFECT_ENV, "tanh6")
    tables = []
    for chunk_bytes in (loc.CHUNK_BYTES, 1):
        monkeypatch.setattr(loc, "CHUNK_BYTES", chunk_bytes)
        results = check(model, {"x": x}, targets=[DEFECT], run_dir=tmp_path / f"r{chunk_bytes}")
        (entry,) = results.localizations
        assert entry["first_diverging"]["node"] == "tanh6", entry.get("error")
        tables.append(entry["nodes"])
    assert tables[0] == tables[1]


def test_every_chunk_gets_the_reference_values_of_all_its_tensors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reference runs ahead of the chunks (segments of nodes); a tensor a chunk reads that
    an earlier chunk gave (one chunk per node here) is still there when the chunk asks, and the
    reference holds nothing once the chunks are done."""
    import onnx

    from conformance.localize import marking
    from conformance.usermodel.reference import reference_for

    model = onnx.load(str(chain_model(tmp_path / "chain.onnx", 40)))
    x = np.random.default_rng(3).standard_normal((2, 16)).astype(np.float32)
    reference = reference_for(model, [{"x": x}])
    inputs = {i.name for i in model.graph.input} | {t.name for t in model.graph.initializer}
    known = {n: t for n, t in reference.elem_types.items() if n not in inputs}
    monkeypatch.setattr(marking, "CHUNK_BYTES", 1)
    stream = reference.stream({"x": x}, retain=known)
    count = 0
    for chunk, names, expected in marking.chunks(model.graph, known, stream):
        assert len(chunk) == 1 and set(names) <= set(expected), (chunk, names, sorted(expected))
        count += 1
    assert count == 40
    assert set(stream.values) <= {"x", model.graph.output[0].name}
