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


@needs_frameworks
def test_rebuild_reproduces_findings(pack, rebuilt):
    for model in pack.models:
        fresh = json.loads((rebuilt.directory / model.name / "model.json").read_text())
        for exporter, record in model.record["artifacts"].items():
            kinds = sorted(f["kind"] for f in record["findings"])
            assert sorted(f["kind"] for f in fresh["artifacts"][exporter]["findings"]) == kinds


@needs_frameworks
def test_rebuild_writes_the_committed_tolerance_files(pack, rebuilt):
    """data.json (onnx's loader reads rtol/atol from it) is part of what the build writes."""
    for model in pack.models:
        for artifact in model.artifacts:
            if artifact.exists:
                fresh = rebuilt.directory / model.name / artifact.exporter / "data.json"
                assert fresh.read_bytes() == (artifact.directory / "data.json").read_bytes()
