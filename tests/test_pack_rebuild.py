"""`conformance pack build` reproduces the committed pack (goldens to 1e-12 of each output's
scale, bytes where stable)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conformance.pack.artifact import without_metadata
from conformance.pack.goldens import golden_mismatches
from conformance.pack.hashing import sha256_file
from conformance.pack.load import Pack
from tests.conftest import needs_frameworks


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    out = tmp_path_factory.mktemp("rebuild") / "not-yet" / "pack"  # its parent is created too
    result = subprocess.run(
        [sys.executable, "-m", "conformance", "pack", "build", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return Pack(out)


@needs_frameworks
def test_rebuild_reproduces_goldens(pack, rebuilt):
    for model in pack.models:
        fresh = rebuilt.model(model.name)
        assert fresh.golden.keys() == model.golden.keys()
        # Float64 differs across CPUs in the last bits: the rule is relative to each output's
        # scale (conformance/pack/goldens.py; tests/test_pack.py shows it still catches 1e-9).
        assert golden_mismatches(fresh.golden, model.golden) == [], model.name


@needs_frameworks
def test_rebuild_reproduces_bytes_where_the_exporter_is_deterministic(pack, rebuilt):
    differing = []
    for model in pack.models:
        for artifact in model.artifacts:
            if not artifact.exists:
                continue
            fresh = rebuilt.directory / model.name / artifact.exporter / "model.onnx"
            same = sha256_file(fresh) == sha256_file(artifact.path)
            if artifact.record["reproducible_bytes"]:
                # Stack traces with this checkout's paths sit in metadata: compare what computes.
                assert without_metadata(fresh) == without_metadata(artifact.path), (
                    f"{model.name}/{artifact.exporter} claims reproducible bytes"
                )
                assert same or artifact.record["embeds_source_paths"], (
                    f"{model.name}/{artifact.exporter}"
                )
            elif not same:
                differing.append(f"{model.name}/{artifact.exporter}")
    noted = {note.split(":")[0] for note in pack.manifest["notes"]}
    assert set(differing) <= noted, "every artifact whose bytes moved is named in the pack notes"


# A derived (fp16/int8) artifact's fidelity margin within this of 1 may pass on one CPU and fail
# on another (the reference evaluator's float16 arithmetic, calibration scales moved in the last
# bits): its pass/fail is not compared, every other fact is.
DERIVED_MARGIN_SLACK = 0.1


@needs_frameworks
def test_rebuild_reproduces_findings(pack, rebuilt):
    for model in pack.models:
        fresh = json.loads((rebuilt.directory / model.name / "model.json").read_text())
        for exporter, record in model.record["artifacts"].items():
            again = fresh["artifacts"][exporter]
            if record.get("precision", "fp32") == "fp32":
                kinds = sorted(f["kind"] for f in record["findings"])
                assert sorted(f["kind"] for f in again["findings"]) == kinds
                continue
            where = f"{model.name}/{exporter}"
            kinds = sorted(f["kind"] for f in record["findings"] if f["kind"] != "fidelity")
            assert sorted(f["kind"] for f in again["findings"] if f["kind"] != "fidelity") == kinds
            old = {r["test_data_set"]: r for r in record.get("fidelity", [])}
            new = {r["test_data_set"]: r for r in again.get("fidelity", [])}
            assert old.keys() == new.keys(), where
            for index, result in old.items():
                margin = result.get("margin")
                if margin is not None and abs(margin - 1.0) <= DERIVED_MARGIN_SLACK:
                    continue
                assert new[index]["passed"] == result["passed"], (where, index, margin)


@needs_frameworks
def test_rebuild_writes_the_committed_tolerance_files(pack, rebuilt):
    """data.json (onnx's loader reads rtol/atol from it) is part of what the build writes."""
    for model in pack.models:
        for artifact in model.artifacts:
            if artifact.exists:
                fresh = rebuilt.directory / model.name / artifact.exporter / "data.json"
                assert fresh.read_bytes() == (artifact.directory / "data.json").read_bytes()


# Scales of a rebuilt int8 artifact: activation scales come from ONNX Runtime float32
# calibration runs, whose last bits differ across CPUs (AVX2 vs AVX-512 kernels); weight scales
# from the weights alone. Bound per array: max |rebuilt - committed| <= this x max |committed|.
INT8_SCALE_RTOL = 1e-4


@needs_frameworks
def test_rebuild_reproduces_int8_artifacts_at_scale_aware_bounds(pack, rebuilt):
    import numpy as np
    import onnx
    from onnx import numpy_helper

    compared = 0
    for model in pack.models:
        for artifact in model.artifacts:
            if artifact.precision != "int8" or not artifact.exists:
                continue
            fresh = onnx.load(
                str(rebuilt.directory / model.name / artifact.exporter / "model.onnx")
            )
            committed = onnx.load(str(artifact.path))
            where = f"{model.name}/{artifact.exporter}"
            assert [n.op_type for n in fresh.graph.node] == [
                n.op_type for n in committed.graph.node
            ], where
            new = {i.name: numpy_helper.to_array(i) for i in fresh.graph.initializer}
            old = {i.name: numpy_helper.to_array(i) for i in committed.graph.initializer}
            assert new.keys() == old.keys(), where
            for name, value in old.items():
                again = new[name]
                assert (again.dtype, again.shape) == (value.dtype, value.shape), (where, name)
                if value.size == 0:
                    continue
                if np.issubdtype(value.dtype, np.floating):
                    finite = np.isfinite(value)  # an inf scale is a recorded converter finding
                    assert np.array_equal(np.isfinite(again), finite), (where, name)
                    assert np.array_equal(again[~finite], value[~finite]), (where, name)
                    if not finite.any():
                        continue
                    value, again = value[finite].astype(np.float64), again[finite]
                    scale = float(np.max(np.abs(value))) or 1.0
                    error = float(np.max(np.abs(again.astype(np.float64) - value)))
                    assert error <= INT8_SCALE_RTOL * scale, (where, name, error, scale)
                else:  # quantised weights and zero points: one step at most
                    step = np.abs(again.astype(np.int64) - value.astype(np.int64))
                    assert int(step.max()) <= 1, (where, name)
            compared += 1
    assert compared >= 20
