"""Read the built pack: models, their artifacts and test data sets (run stage)."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from conformance.compare.judge import Expected
from conformance.pack import layout
from conformance.pack.hashing import PackError, read_manifest

GOLDEN_KINDS = "biuf"  # numpy dtype kinds a golden may have: bool, int, unsigned, float
PRECISIONS = ("fp32", "fp16", "int8")  # an artifact's "precision" (absent: fp32)


def _problem(path: Path, where: str, what: str) -> PackError:
    return PackError(f"{path}: {where} {what}")


def _require(record: Any, key: str, kind: type | tuple[type, ...], path: Path, where: str) -> Any:
    if not isinstance(record, dict) or key not in record:
        raise _problem(path, where, f"has no {key!r}")
    value = record[key]
    if not isinstance(value, kind) or isinstance(value, bool) and bool not in _types(kind):
        names = " or ".join(t.__name__ for t in _types(kind))
        raise _problem(path, f"{where}.{key}", f"is {type(value).__name__}, not {names}")
    return value


def _types(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _check_tensors(records: Any, path: Path, where: str, artifact: bool) -> None:
    if not isinstance(records, list):
        raise _problem(path, where, f"is {type(records).__name__}, not a list")
    for i, tensor in enumerate(records):
        _require(tensor, "name", str, path, f"{where}[{i}]")
        _require(tensor, "dtype", str, path, f"{where}[{i}]")
        if artifact:
            _require(tensor, "spec_name", str, path, f"{where}[{i}]")
            transpose = _require(tensor, "transpose", list, path, f"{where}[{i}]")
            if sorted(transpose) != list(range(len(transpose))) or not all(
                type(axis) is int for axis in transpose
            ):
                raise _problem(path, f"{where}[{i}].transpose", "is not a permutation of axes")


def check_model_record(record: Any, path: Path) -> dict[str, Any]:
    """The parts of model.json the run stage reads, or a PackError naming the file and the field."""
    if not isinstance(record, dict):
        raise PackError(f"{path}: is {type(record).__name__}, not a JSON object")
    _require(record, "tolerance_class", str, path, "model")
    _check_tensors(_require(record, "inputs", list, path, "model"), path, "inputs", False)
    _check_tensors(_require(record, "outputs", list, path, "model"), path, "outputs", False)
    for i, entry in enumerate(_require(record, "test_data_sets", list, path, "model")):
        _require(entry, "index", int, path, f"test_data_sets[{i}]")
        _require(entry, "batch", int, path, f"test_data_sets[{i}]")
        if entry.get("seq_len") is not None:
            _require(entry, "seq_len", int, path, f"test_data_sets[{i}]")
        if entry.get("stress") is not None:
            _require(entry, "stress", str, path, f"test_data_sets[{i}]")
    for exporter, artifact in _require(record, "artifacts", dict, path, "model").items():
        where = f"artifacts.{exporter}"
        if not isinstance(artifact, dict):
            raise _problem(path, where, f"is {type(artifact).__name__}, not an object")
        for key in ("inputs", "outputs"):
            if key in artifact:
                _check_tensors(artifact[key], path, f"{where}.{key}", True)
        precision = artifact.get("precision", "fp32")
        if precision not in PRECISIONS:
            raise _problem(
                path, f"{where}.precision", f"is {precision!r}, not one of {', '.join(PRECISIONS)}"
            )
        if "derived_from" in artifact:
            _require(artifact, "derived_from", str, path, where)
        for j, found in enumerate(artifact.get("findings", [])):
            _require(found, "message", str, path, f"{where}.findings[{j}]")
        if not isinstance(artifact.get("fidelity", []), list):
            raise _problem(path, f"{where}.fidelity", "is not a list")
        for j, result in enumerate(artifact.get("fidelity", [])):
            _require(result, "test_data_set", int, path, f"{where}.fidelity[{j}]")
            _require(result, "passed", bool, path, f"{where}.fidelity[{j}]")
    if record.get("task") is not None:
        task = _require(record, "task", dict, path, "model")
        for key in ("kind", "output", "labels"):
            _require(task, key, str, path, "task")
        held_out = _require(task, "held_out_data_set", int, path, "task")
        if held_out not in {e["index"] for e in record["test_data_sets"]}:
            raise _problem(path, "task.held_out_data_set", f"{held_out} is not a test data set")
        _require(task, "fp32_accuracy", float, path, "task")
    if record.get("calibration") is not None:
        _require(record, "calibration", str, path, "model")
    return record


def load_golden(path: Path) -> dict[str, np.ndarray]:
    """Every array of golden.npz (or labels.npz, calibration.npz), read without pickle; a
    PackError names the file and the array when one cannot be read or is not numeric (an object
    array, a string array)."""
    try:
        with open(path, "rb") as handle:
            data = np.load(handle, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise PackError(f"{path}: a single array, not an .npz of named arrays")
            with data:
                return {key: _golden_array(path, data, key) for key in data.files}
    except PackError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise PackError(f"{path}: not a readable .npz of numeric arrays ({error})") from error


def _golden_array(path: Path, data: Any, key: str) -> np.ndarray:
    try:
        array = data[key]
    except ValueError as error:  # "Object arrays cannot be loaded when allow_pickle=False"
        raise PackError(f"{path}: array {key!r} cannot be read ({error})") from error
    if array.dtype.kind not in GOLDEN_KINDS:
        raise PackError(f"{path}: array {key!r} has dtype {array.dtype}; a golden is numeric")
    return array


@dataclass(frozen=True)
class TestDataSet:
    index: int
    batch: int
    seq_len: int | None
    stress: str | None = None  # a stress set's name (SPEC.stress); None for an ordinary set

    @property
    def label(self) -> str:
        """Part of the check id: "batch4-seq20"; a stress set adds its name, so two sets of
        the same shape never share an id ("batch2-large_exp_and_logits")."""
        label = f"batch{self.batch}" + (f"-seq{self.seq_len}" if self.seq_len else "")
        return label + (f"-{self.stress}" if self.stress else "")


@dataclass(frozen=True)
class Artifact:
    """One exported ONNX file of one model, as the pack records it."""

    model: str
    exporter: str
    directory: Path
    record: dict[str, Any]  # the artifact's entry in model.json

    @property
    def path(self) -> Path:
        return self.directory / layout.MODEL_ONNX

    @property
    def exists(self) -> bool:
        return self.path.is_file()

    @property
    def findings(self) -> list[dict[str, Any]]:
        return self.record.get("findings", [])

    @property
    def precision(self) -> str:
        """ "fp32", or "fp16" / "int8" for an artifact derived from an fp32 one (contract P1)."""
        return str(self.record.get("precision", "fp32"))

    @property
    def derived_from(self) -> str | None:
        """The key of the fp32 artifact this one was converted from; None for an export."""
        return self.record.get("derived_from")

    @property
    def runnable(self) -> bool:
        """The file exists and the pack recorded its outputs (a failed export has neither)."""
        return "outputs" in self.record and self.exists

    def exporter_at_fault(self, data_set: int) -> bool:
        """The pack records this artifact as invalid, or as failing this data set on the
        reference evaluator: a failure there is the exporter's, not the runtime's."""
        if not self.exists or not self.record.get("valid_onnx", False):
            return True
        return any(
            f["test_data_set"] == data_set and not f["passed"]
            for f in self.record.get("fidelity", [])
        )

    def inputs(self, data_set: int) -> list[tuple[str, np.ndarray]]:
        return layout.read_data_set(layout.data_set_dir(self.directory, data_set), "input")


@dataclass(frozen=True, eq=False)
class PackModel:
    name: str
    directory: Path
    record: dict[str, Any]  # model.json
    golden_dir: Path | None = None  # where golden.npz is read from; default: directory

    @property
    def data_sets(self) -> list[TestDataSet]:
        return [
            TestDataSet(d["index"], d["batch"], d.get("seq_len"), d.get("stress"))
            for d in self.record["test_data_sets"]
        ]

    @property
    def artifacts(self) -> list[Artifact]:
        return [
            Artifact(self.name, exporter, self.directory / exporter, record)
            for exporter, record in self.record["artifacts"].items()
        ]

    @property
    def task(self) -> dict[str, Any] | None:
        """The model's task record (contract P2: kind, output, held_out_data_set, labels,
        fp32_accuracy, calibration, source, split); None for a model without real task data."""
        return self.record.get("task")

    def labels(self, data_set: int) -> np.ndarray:
        """The int64 labels of one test data set (one per sample), from the task's labels.npz;
        a PackError when the model has no task or that set has no labels."""
        task = self.task
        if task is None:
            raise PackError(f"{self.directory / layout.MODEL_JSON}: model {self.name} has no task")
        path = self.directory / task["labels"]
        key = layout.labels_key(data_set)
        labels = load_golden(path)
        if key not in labels:
            raise PackError(f"{path}: has no array {key!r}")
        return labels[key].astype(np.int64)

    def calibration(self) -> dict[str, np.ndarray]:
        """The inputs the int8 artifacts were calibrated on (torch layout, keyed by the model's
        input names); never a test data set. Empty when the pack has none for this model."""
        name = self.record.get("calibration")
        return load_golden(self.directory / name) if name else {}

    @property
    def golden_path(self) -> Path:
        return (self.golden_dir or self.directory) / layout.GOLDEN_NPZ

    @cached_property
    def golden(self) -> dict[str, np.ndarray]:
        return load_golden(self.golden_path)

    def expected(self, artifact: Artifact, data_set: int) -> list[Expected]:
        """The artifact's outputs with their float64 goldens, transposed to its layout."""
        expected = []
        for out in artifact.record["outputs"]:
            key = layout.golden_key(data_set, "output", out["spec_name"])
            if key not in self.golden:
                raise PackError(f"{self.golden_path}: has no array {key!r}")
            golden = self.golden[key]
            if golden.ndim != len(out["transpose"]):
                raise PackError(
                    f"{self.golden_path}: array {key!r} has {golden.ndim} axes; "
                    f"{artifact.exporter}'s output {out['name']!r} has {len(out['transpose'])}"
                )
            expected.append(
                Expected(
                    name=out["name"],
                    dtype=out["dtype"],
                    golden=np.transpose(golden, out["transpose"]),
                )
            )
        return expected


class Pack:
    """A pack folder. ``goldens_from``: another pack whose goldens judge this one's artifacts
    (live mode judges freshly exported artifacts against the shipped goldens)."""

    def __init__(self, directory: Path, goldens_from: Path | None = None) -> None:
        self.directory = Path(directory)
        self.manifest = read_manifest(self.directory)
        where = self.directory / "pack.json"
        if not isinstance(self.manifest, dict):
            raise PackError(f"{where}: is not a JSON object")
        models = _require(self.manifest, "models", list, where, "manifest")
        if not all(isinstance(m, str) and m and "/" not in m and m != ".." for m in models):
            raise PackError(f"{where}: manifest.models is not a list of model folder names")
        _require(self.manifest, "digest", str, where, "manifest")
        self.goldens_from = goldens_from

    @property
    def digest(self) -> str:
        return self.manifest["digest"]

    @cached_property
    def models(self) -> list[PackModel]:
        return [self._load_model(name) for name in self.manifest["models"]]

    def model(self, name: str) -> PackModel:
        for model in self.models:
            if model.name == name:
                return model
        raise KeyError(
            f"model {name!r} is not in the pack; it has {', '.join(self.manifest['models'])}"
        )

    def _load_model(self, name: str) -> PackModel:
        path = self.directory / name / layout.MODEL_JSON
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise PackError(f"{path}: not readable JSON ({error})") from error
        check_model_record(record, path)
        golden_dir = self.goldens_from / name if self.goldens_from else None
        return PackModel(name, self.directory / name, record, golden_dir)
