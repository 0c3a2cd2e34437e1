"""Build the conformance pack: twin check -> goldens -> ONNX exports -> test data -> pack.json.

Build stage: needs torch, TensorFlow and tf2onnx. A failing artifact stays in the pack with
its finding recorded in model.json; the build never drops or quietly patches one.
"""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
import time
import zlib
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from conformance.pack import layout
from conformance.pack.artifact import build_artifact
from conformance.pack.derive import (
    BASE_PREFERENCE,
    VARIANTS,
    derive_artifact,
    pick_base,
    task_accuracy,
)
from conformance.pack.hashing import MANIFEST, file_hashes, pack_digest
from conformance.spec import load_json
from reference_models import FAMILIES, load_family
from reference_models.interface import ModelSpec, Params, stress_inputs
from reference_models.twin import TWIN_MAX_REL_L2, rel_l2, run_keras, run_torch

Progress = Callable[[str], None]
PACK_PRECISION = "fp32"  # every exported artifact is float32; fp16/int8 ones are derived
CALIBRATION_BATCH = 8  # calibration inputs per model without task data (seeded, not a test set)
CALIBRATION_SEED_OFFSET = 5000  # their seed: the model's data seed + this (no test set uses it)
# Reduced-precision variants per model (conformance/pack/derive.py); a model not listed gets all.
# Chosen to keep the pack under 20 MB (spec/SPEC.md, section 5); a model not listed gets all four.
# - mlp: none. digits is the same kind of model (Gemm, ReLU) with trained weights and real data,
#   where an fp16/int8 accuracy means something; mlp would add only a wider random Gemm.
# - lstm, gru: fp16 only. ONNX Runtime's static QDQ quantisation leaves LSTM/GRU in float (it
#   quantises only the head): their int8 artifact would be an fp32 one with an int8 Gemm.
# - transformer_encoder, decoder_block: fp16 only. Attention blocks are deployed in int8 with
#   dynamic (per-token) quantisation, not with static QDQ scales from a calibration set.
# - resnet_block, mobilenet_block: int8 only. They are the int8 cases (strided conv + batch norm
#   + residual add; depthwise conv, where per-tensor and per-channel scales differ most); every
#   op they hold is in another model's fp16 artifacts (cnn, unet_tiny, mobile_se_block).
FP16_ONLY = ("fp16", "fp16-io", "fp16-native")
INT8_ONLY = ("int8-tensor", "int8-channel")
DERIVED: dict[str, tuple[str, ...]] = {
    "mlp": (),
    "lstm": FP16_ONLY,
    "gru": FP16_ONLY,
    "transformer_encoder": FP16_ONLY,
    "decoder_block": FP16_ONLY,
    "resnet_block": INT8_ONLY,
    "mobilenet_block": INT8_ONLY,
}
TOOLCHAIN = (
    "torch",
    "tensorflow",
    "keras",
    "tf2onnx",
    "onnx",
    "onnxscript",
    "onnxruntime",
    "numpy",
    "protobuf",
    "onnxconverter-common",
    "scikit-learn",
)


class TwinMismatchError(RuntimeError):
    """The torch and Keras twins disagree: the two definitions are not the same function."""


def model_seed(base_seed: int, name: str) -> int:
    """A stable per-model seed (crc32 of the name), so adding a model changes no other."""
    return base_seed + zlib.crc32(name.encode())


def data_set_plan(spec: ModelSpec, batches: list[int]) -> list[dict[str, Any]]:
    """Set 0: batch 1; set 1: the largest batch; then the largest batch at each further length;
    then one set per stress set of the model (``SPEC.stress``), named by ``stress``."""
    seq_lens: list[int | None] = [*spec.seq_lens] or [None]
    big = max(batches)
    plan: list[dict[str, Any]] = [
        {"batch": 1, "seq_len": seq_lens[0]},
        {"batch": big, "seq_len": seq_lens[0]},
    ]
    plan += [{"batch": big, "seq_len": s} for s in seq_lens[1:]]
    plan += [
        {
            "batch": stress.batch,
            "seq_len": stress.seq_len if stress.seq_len is not None else seq_lens[0],
            "stress": stress.name,
            "reaches": stress.reaches,
        }
        for stress in spec.stress
    ]
    return [{"index": i, **entry} for i, entry in enumerate(plan)]


def float32_exact(array: np.ndarray) -> np.ndarray:
    """Round float inputs to float32 so the float64 golden is computed on exactly what runtimes
    see."""
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float32).astype(np.float64)
    return array.astype(np.int64)


def draw_inputs(
    family: ModuleType, plan: list[dict[str, Any]], seed: int
) -> list[dict[str, np.ndarray]]:
    """Per data set inputs; the batch-1 input is sample 0 of the batch-N input at the same
    length. A stress set draws its own inputs (seed + 100 + its index), so adding one changes
    no other set."""
    ordinary = [e for e in plan if "stress" not in e]
    by_len = {
        entry["seq_len"]: family.make_inputs(
            max(e["batch"] for e in ordinary), entry["seq_len"], seed + i
        )
        for i, entry in enumerate(ordinary)
        if entry["batch"] > 1
    }
    stresses = {s.name: s for s in family.SPEC.stress}
    drawn = []
    for entry in plan:
        if "stress" in entry:
            arrays = stress_inputs(
                family,
                stresses[entry["stress"]],
                entry["batch"],
                entry["seq_len"],
                seed + 100 + entry["index"],
            )
        else:
            arrays = {
                name: array[: entry["batch"]] for name, array in by_len[entry["seq_len"]].items()
            }
        drawn.append({name: float32_exact(array) for name, array in arrays.items()})
    return drawn


def golden_and_twin(family: ModuleType, params: Params, inputs: list[dict[str, np.ndarray]]):
    """The torch float64 golden of every data set, and the twin check's figures."""
    spec = family.SPEC
    torch_model, keras_model = family.build_torch(params), family.build_keras(params, "float64")
    golden: dict[str, np.ndarray] = {}
    twin: list[dict[str, Any]] = []
    for index, data in enumerate(inputs):
        expected = run_torch(torch_model, data, spec)
        mirrored = run_keras(keras_model, data, spec)
        for name, array in data.items():
            golden[layout.golden_key(index, "input", name)] = array
        for name, array in expected.items():
            golden[layout.golden_key(index, "output", name)] = array
            error = rel_l2(mirrored[name], array)
            twin.append({"test_data_set": index, "output": name, "rel_l2": error})
            if not error <= TWIN_MAX_REL_L2:
                raise TwinMismatchError(
                    f"{spec.name}: twin check failed on set {index} output {name}: "
                    f"relative L2 {error:.3g} > {TWIN_MAX_REL_L2:g}"
                )
    return golden, twin


def parameter_count(params: Params) -> int:
    return int(
        sum(
            np.asarray(v).size
            for k, v in params.items()
            if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
        )
    )


def task_data_set(plan: list[dict[str, Any]], samples: int) -> dict[str, Any]:
    """The held-out split as one more data set, after the others."""
    return {"index": len(plan), "batch": samples, "seq_len": None, "split": "held_out"}


def calibration_inputs(family: ModuleType, task, seed: int) -> dict[str, Any]:
    """int8 calibration inputs: the task's (training split) or a seeded draw like the test
    inputs from a seed no test data set uses."""
    if task is not None:
        arrays = task.calibration
    else:
        seq_len = family.SPEC.seq_lens[0] if family.SPEC.seq_lens else None
        arrays = family.make_inputs(CALIBRATION_BATCH, seq_len, seed + CALIBRATION_SEED_OFFSET)
    return {name: stored_dtype(float32_exact(array)) for name, array in arrays.items()}


def stored_dtype(array: np.ndarray) -> np.ndarray:
    """float32-exact float64 values stored as float32 (no loss, half the bytes)."""
    return array.astype(np.float32) if array.dtype == np.float64 else array


def task_record(task, plan: list[dict[str, Any]], golden: dict[str, np.ndarray]) -> dict[str, Any]:
    held_out = plan[-1]["index"]
    logits = golden[layout.golden_key(held_out, "output", task.output)]
    return {
        "kind": task.kind,
        "output": task.output,
        "held_out_data_set": held_out,
        "labels": layout.LABELS_NPZ,
        "fp32_accuracy": float(np.mean(np.argmax(logits, axis=1) == task.held_out_labels)),
        "fp32_accuracy_source": "argmax of the float64 golden on the held-out data set",
        "samples": int(task.held_out_labels.size),
        "calibration": layout.CALIBRATION_NPZ,
        "source": task.source,
        "split": {
            **task.split,
            "held_out_indices": [int(i) for i in task.held_out_indices],
            "calibration_indices": [int(i) for i in task.calibration_indices],
        },
    }


def build_model(
    name: str,
    out_dir: Path,
    exporters: list[str],
    seed: int,
    batches: list[int],
    progress: Progress,
    precision: str = PACK_PRECISION,
    derive: bool = True,
) -> None:
    family = load_family(name)
    spec: ModelSpec = family.SPEC
    params = family.make_params(model_seed(seed, name))
    plan = data_set_plan(spec, batches)
    data_seed = model_seed(seed, name) + 1000
    inputs = draw_inputs(family, plan, data_seed)
    make_task = getattr(family, "make_task", None)
    task = make_task(data_seed) if make_task is not None else None
    if task is not None:
        plan.append(task_data_set(plan, int(task.held_out_labels.size)))
        inputs.append({k: float32_exact(v) for k, v in task.held_out.items()})
    golden, twin = golden_and_twin(family, params, inputs)
    model_dir = out_dir / name
    model_dir.mkdir(parents=True, exist_ok=True)
    with open(model_dir / layout.GOLDEN_NPZ, "wb") as handle:
        np.savez_compressed(handle, **golden)
    calibration = calibration_inputs(family, task, data_seed)
    with open(model_dir / layout.CALIBRATION_NPZ, "wb") as handle:
        np.savez_compressed(handle, **calibration)
    if task is not None:
        with open(model_dir / layout.LABELS_NPZ, "wb") as handle:
            key = layout.labels_key(plan[-1]["index"])
            np.savez_compressed(handle, allow_pickle=False, **{key: task.held_out_labels})
    artifacts: dict[str, dict[str, Any]] = {}

    def report(key: str, started: float) -> None:
        found = artifacts[key]["findings"]
        verdict = "ok" if not found else f"{len(found)} finding(s)"
        progress(f"  {name:20s} {key:26s} {time.perf_counter() - started:5.1f}s  {verdict}")

    for exporter in exporters:
        started = time.perf_counter()
        artifacts[exporter] = build_artifact(
            family, params, exporter, model_dir / exporter, plan, golden, precision
        )
        report(exporter, started)
    base = pick_base(artifacts) if derive else None
    if base is not None:
        for variant in DERIVED.get(name, tuple(VARIANTS)):
            started = time.perf_counter()
            key = f"{base}.{variant}"
            artifacts[key] = derive_artifact(
                family,
                base,
                artifacts[base],
                model_dir / base,
                variant,
                model_dir / key,
                plan,
                golden,
                calibration,
                params,
            )
            report(key, started)
    record = {
        "name": name,
        "description": spec.description,
        "tags": list(spec.tags),
        "tolerance_class": spec.tolerance_class,
        "parameter_count": parameter_count(params),
        "seed": model_seed(seed, name),
        "inputs": [
            {"name": t.name, "dtype": t.dtype, "shape": list(t.shape), "layout": t.layout}
            for t in spec.inputs
        ],
        "outputs": [
            {"name": t.name, "dtype": t.dtype, "shape": list(t.shape), "layout": t.layout}
            for t in spec.outputs
        ],
        "golden": {"source": "torch twin, float64", "file": layout.GOLDEN_NPZ, "layout": "torch"},
        "twin_check": {"max_rel_l2_allowed": TWIN_MAX_REL_L2, "results": twin},
        "test_data_sets": plan,
        "calibration": layout.CALIBRATION_NPZ,
        "derived": {
            "base": base,
            "rule": "the first of " + ", ".join(BASE_PREFERENCE) + " that is valid ONNX and "
            "has no finding",
            "variants": [f"{base}.{v}" for v in DERIVED.get(name, tuple(VARIANTS))] if base else [],
        },
        "artifacts": artifacts,
    }
    if task is not None:
        record["task"] = task_record(task, plan, golden)
        for key, artifact in artifacts.items():
            if "outputs" in artifact and (model_dir / key / layout.MODEL_ONNX).is_file():
                artifact["task_accuracy"] = task_accuracy(
                    model_dir / key,
                    artifact,
                    golden,
                    plan[-1]["index"],
                    task.held_out_labels,
                    task.output,
                )
    (model_dir / layout.MODEL_JSON).write_text(
        json.dumps(record, indent=1) + "\n", encoding="utf-8"
    )


def toolchain_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in TOOLCHAIN:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def write_manifest(
    out_dir: Path, models: list[str], exporters: list[str], notes: list[str]
) -> dict[str, Any]:
    spec = load_json("spec.json")
    hashes = file_hashes(out_dir)
    manifest = {
        "pack_version": spec["pack_version"],
        "spec_version": spec["spec_version"],
        "models": models,
        "exporters": exporters,
        "toolchain": toolchain_versions(),
        "notes": notes,
        "files": hashes,
        "digest": pack_digest(hashes),
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def reproducibility_notes(out_dir: Path, models: list[str]) -> list[str]:
    """Which artifacts re-export to different bytes (measured during this build)."""
    notes = []
    for name in models:
        record = json.loads((out_dir / name / layout.MODEL_JSON).read_text())
        for exporter, artifact in record["artifacts"].items():
            if artifact.get("embeds_source_paths"):
                notes.append(
                    f"{name}/{exporter}: the exporter writes Python stack traces (absolute source "
                    "paths, line numbers) into node metadata, so its bytes depend on the checkout; "
                    "compare it with metadata stripped"
                )
            for result in artifact.get("fidelity", []):
                if result.get("reference_error"):
                    notes.append(
                        f"{name}/{exporter}: set {result['test_data_set']}: onnx.reference "
                        f"failed ({result['reference_error'][:200]}); export fidelity was judged "
                        "on ONNX Runtime, which matches the golden: a limitation of the reference "
                        "evaluator (its own checks fail), not of the exporter"
                    )
            if artifact.get("bytes_note"):
                notes.append(f"{name}/{exporter}: {artifact['bytes_note']}")
            elif artifact.get("reproducible_bytes") is False:
                notes.append(
                    f"{name}/{exporter}: exporting twice in one process gave different bytes "
                    "(generated names and metadata come from process-wide counters); "
                    "compare this artifact by its outputs, not by its hash"
                )
    return notes


def left_out(out_dir: Path, models: list[str], exporters: list[str]) -> list[str]:
    """What the pack already in ``out_dir`` holds that a build of these models and exporters
    would not (a build replaces the whole folder): models, then exporters, by name."""
    try:
        held = json.loads((Path(out_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []  # no pack there (or not a readable one): nothing of one to lose
    if not isinstance(held, dict):
        return []
    lost = [m for m in held.get("models") or [] if isinstance(m, str) and m not in models]
    lost += [e for e in held.get("exporters") or [] if isinstance(e, str) and e not in exporters]
    return lost


def build_pack(
    out_dir: Path,
    models: list[str] | None = None,
    exporters: list[str] | None = None,
    progress: Progress = print,
    precision: str = PACK_PRECISION,
) -> dict[str, Any]:
    """Build into a fresh temporary folder, then move it into place: a failed build leaves the
    old pack. ``precision``: the artifacts' precision, whose tolerance judges export fidelity."""
    spec = load_json("spec.json")
    models = models or list(FAMILIES)
    exporters = exporters or list(spec["exporters"])
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)  # staged beside it: one rename at the end
    staging = Path(tempfile.mkdtemp(prefix=".pack-", dir=out_dir.parent))
    try:
        for name in models:
            build_model(
                name,
                staging,
                exporters,
                spec["seed"],
                spec["test_data_sets"]["batches"],
                progress,
                precision,
            )
        manifest = write_manifest(
            staging, models, exporters, reproducibility_notes(staging, models)
        )
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest
