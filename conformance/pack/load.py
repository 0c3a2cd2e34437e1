"""Read the built pack: models, their artifacts and test data sets (run stage)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from conformance.compare.judge import Expected
from conformance.pack import layout
from conformance.pack.hashing import PackManifestError, read_manifest


@dataclass(frozen=True)
class TestDataSet:
    index: int
    batch: int
    seq_len: int | None

    @property
    def label(self) -> str:
        return f"batch{self.batch}" + (f"-seq{self.seq_len}" if self.seq_len else "")


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

    def inputs(self, data_set: int) -> list[tuple[str, np.ndarray]]:
        return layout.read_data_set(layout.data_set_dir(self.directory, data_set), "input")

    def expected_outputs(self, data_set: int) -> list[tuple[str, np.ndarray]]:
        return layout.read_data_set(layout.data_set_dir(self.directory, data_set), "output")


@dataclass(frozen=True, eq=False)
class PackModel:
    name: str
    directory: Path
    record: dict[str, Any]  # model.json
    golden_dir: Path | None = None  # where golden.npz is read from; default: directory

    @property
    def data_sets(self) -> list[TestDataSet]:
        return [
            TestDataSet(d["index"], d["batch"], d.get("seq_len"))
            for d in self.record["test_data_sets"]
        ]

    @property
    def artifacts(self) -> list[Artifact]:
        return [
            Artifact(self.name, exporter, self.directory / exporter, record)
            for exporter, record in self.record["artifacts"].items()
        ]

    @cached_property
    def golden(self) -> dict[str, np.ndarray]:
        with np.load(
            (self.golden_dir or self.directory) / layout.GOLDEN_NPZ, allow_pickle=False
        ) as data:
            return {key: data[key] for key in data.files}

    def expected(self, artifact: Artifact, data_set: int) -> list[Expected]:
        """The artifact's outputs with their float64 goldens, transposed to its layout."""
        return [
            Expected(
                name=out["name"],
                dtype=out["dtype"],
                golden=np.transpose(
                    self.golden[layout.golden_key(data_set, "output", out["spec_name"])],
                    out["transpose"],
                ),
            )
            for out in artifact.record["outputs"]
        ]


class Pack:
    """A pack folder. ``goldens_from``: another pack whose goldens judge this one's artifacts
    (live mode judges freshly exported artifacts against the shipped goldens)."""

    def __init__(self, directory: Path, goldens_from: Path | None = None) -> None:
        self.directory = Path(directory)
        self.manifest = read_manifest(self.directory)
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
            raise PackManifestError(f"cannot read {path}: {error}") from error
        golden_dir = self.goldens_from / name if self.goldens_from else None
        return PackModel(name, self.directory / name, record, golden_dir)
