"""A user's ONNX model, read as untrusted input: every refusal is one line (exit 2).

Refused: a file that is not there or not ONNX, a model over the protobuf limit of 2 GB in one
file (save it with external data), external-data locations that leave the model's folder (the
ONNX external-data path-traversal CVEs: absolute paths, ``..``, symbolic links out), missing
external-data files, and a model that fails ``onnx.checker`` (with the checker's message).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import external_data_helper

from conformance.untrusted import printable

PROTOBUF_LIMIT = 2**31  # bytes: protobuf cannot parse one message this large


class UserInputError(ValueError):
    """Bad input to compare: one line naming the input and what is allowed (exit 2)."""


@dataclass(frozen=True)
class UserModel:
    path: Path | None  # None for a ModelProto given in memory
    proto: onnx.ModelProto  # external data loaded
    name: str
    external_data: bool

    @property
    def inputs(self) -> list[onnx.ValueInfoProto]:
        """Graph inputs the caller feeds (not initializers)."""
        initialized = {t.name for t in self.proto.graph.initializer}
        return [i for i in self.proto.graph.input if i.name not in initialized]

    @property
    def outputs(self) -> list[onnx.ValueInfoProto]:
        return list(self.proto.graph.output)


def _gb(size: int) -> str:
    return f"{size / 2**30:.2f} GB"


def external_locations(model: onnx.ModelProto) -> list[str]:
    return [
        info.location
        for tensor in external_data_helper._get_all_tensors(model)
        if external_data_helper.uses_external_data(tensor)
        for info in [external_data_helper.ExternalDataInfo(tensor)]
    ]


def check_external_paths(model: onnx.ModelProto, folder: Path, where: str) -> None:
    """Every external-data file is a file inside the model's folder (symbolic links resolved)."""
    root = folder.resolve()
    for location in external_locations(model):
        shown = printable(location, 200)
        candidate = Path(location)
        if candidate.is_absolute() or ".." in candidate.parts or not location:
            raise UserInputError(
                f"{where}: external data location {shown!r} leaves the model's folder; "
                "external data must be a relative path inside the model's folder"
            )
        resolved = (folder / candidate).resolve()
        if root not in resolved.parents:
            raise UserInputError(
                f"{where}: external data location {shown!r} resolves outside the model's folder "
                f"({printable(resolved, 200)}); external data must stay inside {root}"
            )
        if not resolved.is_file():
            raise UserInputError(
                f"{where}: external data file {shown!r} is missing next to the model"
            )


def check_model(proto: onnx.ModelProto, where: str) -> None:
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        first = " ".join(str(error).split())
        raise UserInputError(
            f"{where} is not a valid ONNX model (onnx.checker): {printable(first, 400)}"
        ) from error
    except ValueError as error:  # e.g. a model too large for the in-memory checker
        raise UserInputError(f"{where}: onnx.checker cannot check it: {error}") from error


def load_user_model(path: Path | str) -> UserModel:
    path = Path(path)
    where = printable(path, 300)
    if not path.is_file():
        raise UserInputError(f"model {where} is not a file; give the path of an .onnx file")
    size = path.stat().st_size
    if size >= PROTOBUF_LIMIT:
        raise UserInputError(
            f"model {where} is {_gb(size)} in one file, over protobuf's 2 GB limit; save it "
            "with its weights as external data (onnx.save_model(model, path, "
            "save_as_external_data=True)) and give that file"
        )
    try:
        proto = onnx.load_model(str(path), load_external_data=False)
    except Exception as error:  # noqa: BLE001 - a parse failure of untrusted bytes
        raise UserInputError(
            f"model {where} is not an ONNX model ({type(error).__name__}: {printable(error, 200)})"
        ) from error
    external = bool(external_locations(proto))
    if external:
        check_external_paths(proto, path.parent, f"model {where}")
        try:
            external_data_helper.load_external_data_for_model(proto, str(path.parent))
        except (OSError, ValueError) as error:
            raise UserInputError(
                f"model {where}: its external data cannot be read ({printable(error, 200)})"
            ) from error
    _check_full(proto, path, where, external)
    return UserModel(path, proto, _name(path.stem), external)


def _check_full(proto: onnx.ModelProto, path: Path, where: str, external: bool) -> None:
    if proto.ByteSize() >= PROTOBUF_LIMIT:
        # too large for the in-memory checker: check the file by path (external data allowed)
        try:
            onnx.checker.check_model(str(path), full_check=False)
        except onnx.checker.ValidationError as error:
            raise UserInputError(
                f"{where} is not a valid ONNX model (onnx.checker): "
                f"{printable(' '.join(str(error).split()), 400)}"
            ) from error
        return
    check_model(proto, f"model {where}")


def user_model(proto: onnx.ModelProto, name: str = "model") -> UserModel:
    """A ModelProto given in memory (the Python API)."""
    check_model(proto, f"model {name!r}")
    return UserModel(None, proto, _name(name), False)


def _name(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "_." else "_" for c in text).strip("._")
    return cleaned[:64] or "model"


def file_size(path: Path) -> int:
    return os.stat(path).st_size
