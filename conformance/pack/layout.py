"""File names inside the pack, and reading/writing ONNX backend test data (.pb)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from conformance.pack.hashing import PackError

MODEL_JSON = "model.json"
GOLDEN_NPZ = "golden.npz"
MODEL_ONNX = "model.onnx"
LABELS_NPZ = "labels.npz"  # a task model's labels: data_set_<k> -> int64, one per sample
CALIBRATION_NPZ = "calibration.npz"  # int8 calibration inputs (input name -> array)
# In each artifact folder: the pack's tolerance for it, in the keys onnx's own test loader reads
# (onnx.backend.test.loader.load_model_tests), so third-party runners judge it by our rule.
DATA_JSON = "data.json"


def data_set_dir(artifact_dir: Path, index: int) -> Path:
    return artifact_dir / f"test_data_set_{index}"


def golden_key(data_set: int, kind: str, name: str) -> str:
    """Key of one array in golden.npz: kind is "input" or "output", name the spec's tensor name."""
    return f"set{data_set}.{kind}.{name}"


def labels_key(data_set: int) -> str:
    return f"data_set_{data_set}"


def write_case_tolerance(artifact_dir: Path, rtol: float, atol: float) -> None:
    """data.json: ``{"rtol": ..., "atol": ...}`` (the loader's defaults are 1e-3 and 1e-7)."""
    text = json.dumps({"rtol": rtol, "atol": atol}) + "\n"
    (artifact_dir / DATA_JSON).write_text(text, encoding="utf-8")


def write_tensor(path: Path, array: np.ndarray, name: str) -> None:
    path.write_bytes(numpy_helper.from_array(np.ascontiguousarray(array), name).SerializeToString())


def read_tensor(path: Path) -> tuple[str, np.ndarray]:
    tensor = onnx.TensorProto()
    try:
        tensor.ParseFromString(path.read_bytes())
        return tensor.name, numpy_helper.to_array(tensor)
    except (OSError, DecodeError, ValueError, TypeError) as error:
        raise PackError(f"{path}: not a readable ONNX TensorProto ({error})") from error


def read_data_set(directory: Path, kind: str) -> list[tuple[str, np.ndarray]]:
    """All ``<kind>_<i>.pb`` tensors of one test data set, in index order."""
    paths = sorted(directory.glob(f"{kind}_*.pb"), key=lambda p: int(p.stem.split("_")[1]))
    return [read_tensor(path) for path in paths]
