"""Inputs of a user's model: read (.npz, a folder of input_*.pb, folders of test data sets),
checked against what the model declares, or drawn from a seeded generator."""

from __future__ import annotations

import math
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from conformance.untrusted import printable
from conformance.usermodel.model import UserInputError, UserModel

Sample = dict[str, np.ndarray]
MAX_SAMPLES = 64
MAX_DRAWN_ELEMENTS = 1 << 26  # per drawn input: 512 MiB in float64 (the reference's dtype)
_SHAPE = re.compile(r"^([^=]+)=(\d+(?:x\d+)*|)$")


@dataclass(frozen=True)
class InputSpec:
    name: str
    dtype: np.dtype
    dims: tuple[int | str | None, ...]  # a size, a symbol, or None (unknown)
    elem_type: int

    @property
    def dynamic(self) -> list[int]:
        return [i for i, d in enumerate(self.dims) if not isinstance(d, int)]

    def describe(self) -> str:
        dims = "x".join(str(d) if d is not None else "?" for d in self.dims) or "scalar"
        return f"{self.name} ({self.dtype}, {dims})"


def specs_of(model: UserModel) -> list[InputSpec]:
    out = []
    for value in model.inputs:
        tensor = value.type.tensor_type
        if not value.type.HasField("tensor_type"):
            raise UserInputError(
                f"model input {printable(value.name, 100)!r} is not a tensor; compare feeds tensors"
            )
        dims: list[int | str | None] = []
        for dim in tensor.shape.dim:
            if dim.HasField("dim_value") and dim.dim_value > 0:
                dims.append(int(dim.dim_value))
            elif dim.HasField("dim_param") and dim.dim_param:
                dims.append(dim.dim_param)
            else:
                dims.append(None)
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type))
        out.append(InputSpec(value.name, dtype, tuple(dims), tensor.elem_type))
    return out


def expected_text(specs: Sequence[InputSpec]) -> str:
    return "the model expects " + ", ".join(s.describe() for s in specs)


def parse_shapes(items: Sequence[str], specs: Sequence[InputSpec]) -> dict[str, tuple[int, ...]]:
    """``--shape name=1x3x224x224`` (repeatable): the whole shape of one input."""
    names = {s.name: s for s in specs}
    shapes: dict[str, tuple[int, ...]] = {}
    for item in items:
        match = _SHAPE.match(item)
        if not match:
            raise UserInputError(
                f"--shape {printable(item, 100)!r}: write NAME=DIMxDIMx... (e.g. image=1x3x224x224)"
                f"; {expected_text(specs)}"
            )
        name, text = match.group(1), match.group(2)
        if name not in names:
            raise UserInputError(
                f"--shape {printable(name, 100)!r}: the model has no such input; "
                f"{expected_text(specs)}"
            )
        shape = tuple(int(d) for d in text.split("x")) if text else ()
        spec = names[name]
        if len(shape) != len(spec.dims) or any(
            isinstance(d, int) and d != s for d, s in zip(spec.dims, shape)
        ):
            raise UserInputError(f"--shape {printable(item, 100)}: does not fit {spec.describe()}")
        if any(s <= 0 for s in shape):
            raise UserInputError(f"--shape {printable(item, 100)}: every size is at least 1")
        if math.prod(shape) > MAX_DRAWN_ELEMENTS:
            raise UserInputError(
                f"--shape {printable(item, 100)}: {math.prod(shape):,} elements; drawn inputs "
                f"have at most {MAX_DRAWN_ELEMENTS:,} (pass larger ones with --inputs)"
            )
        shapes[name] = shape
    return shapes


def resolved_shapes(
    specs: Sequence[InputSpec], shapes: Mapping[str, tuple[int, ...]]
) -> dict[str, tuple[int, ...]]:
    """Every input's shape: its declared sizes, or --shape; unresolved dims are bad input."""
    out: dict[str, tuple[int, ...]] = {}
    unresolved = []
    for spec in specs:
        if spec.name in shapes:
            out[spec.name] = shapes[spec.name]
        elif spec.dynamic:
            symbols = ", ".join(
                f"axis {i} ({spec.dims[i]})" if spec.dims[i] else f"axis {i}" for i in spec.dynamic
            )
            unresolved.append(f"{printable(spec.name, 100)} {symbols}")
        else:
            out[spec.name] = tuple(int(d) for d in spec.dims)  # type: ignore[arg-type]
    if unresolved:
        example = specs[0]
        raise UserInputError(
            "dynamic dimensions without a size: "
            + "; ".join(unresolved)
            + f"; give them with --shape NAME=DIMx... (e.g. --shape {example.name}="
            + "x".join(str(d) if isinstance(d, int) else "1" for d in example.dims)
            + ") or pass --inputs"
        )
    return out


def _index_bounds(model: UserModel) -> dict[str, int]:
    """Integer inputs used directly as Gather indices: the size of the gathered axis."""
    initializers = {t.name: t for t in model.proto.graph.initializer}
    bounds: dict[str, int] = {}
    for node in model.proto.graph.node:
        if node.op_type == "Gather" and len(node.input) > 1 and node.input[0] in initializers:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
            size = list(initializers[node.input[0]].dims)[axis]
            bounds[node.input[1]] = min(bounds.get(node.input[1], size), size)
    return bounds


def generate(
    model: UserModel,
    specs: Sequence[InputSpec],
    shapes: Mapping[str, tuple[int, ...]],
    seed: int,
    samples: int,
) -> list[Sample]:
    """``samples`` seeded draws: floats N(0, 1), integers in [0, bound), booleans at p 0.5."""
    rng = np.random.default_rng(seed)
    bounds = _index_bounds(model)
    shaped = resolved_shapes(specs, shapes)
    out = []
    for _ in range(samples):
        sample: Sample = {}
        for spec in specs:
            shape = shaped[spec.name]
            if spec.dtype.kind == "f":
                sample[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
            elif spec.dtype.kind in "iu":
                high = max(1, bounds.get(spec.name, 4))
                sample[spec.name] = rng.integers(0, high, shape).astype(spec.dtype)
            elif spec.dtype.kind == "b":
                sample[spec.name] = rng.random(shape) < 0.5
            else:
                raise UserInputError(
                    f"input {printable(spec.name, 100)} has dtype {spec.dtype}: compare cannot "
                    "draw it; pass --inputs"
                )
        out.append(sample)
    return out


def _read_pb(path: Path) -> tuple[str, np.ndarray]:
    tensor = onnx.TensorProto()
    try:
        tensor.ParseFromString(path.read_bytes())
        return tensor.name, numpy_helper.to_array(tensor)
    except Exception as error:  # noqa: BLE001 - untrusted bytes
        raise UserInputError(
            f"--inputs {printable(path, 200)}: not a readable ONNX TensorProto ({error})"
        ) from error


def _read_pb_folder(folder: Path, specs: Sequence[InputSpec]) -> Sample:
    paths = sorted(
        folder.glob("input_*.pb"),
        key=lambda p: int(p.stem.split("_")[1]) if p.stem.split("_")[1].isdigit() else 1 << 30,
    )
    if not paths:
        raise UserInputError(
            f"--inputs {printable(folder, 200)}: no input_*.pb files in the folder"
        )
    sample: Sample = {}
    for position, path in enumerate(paths):
        name, array = _read_pb(path)
        if not name:  # backend test data may leave the name out: take the position
            if position >= len(specs):
                raise UserInputError(
                    f"--inputs {printable(path, 200)}: an unnamed tensor beyond the model's "
                    f"{len(specs)} inputs; {expected_text(specs)}"
                )
            name = specs[position].name
        sample[name] = array
    return sample


def _read_npz(path: Path) -> Sample:
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as data:
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise UserInputError(
                    f"--inputs {printable(path, 200)}: not an .npz of named arrays"
                )
            return {key: data[key] for key in data.files}
    except UserInputError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, AttributeError) as error:
        raise UserInputError(
            f"--inputs {printable(path, 200)}: not a readable .npz of numeric arrays ({error})"
        ) from error


def read_inputs(paths: Sequence[Path], specs: Sequence[InputSpec]) -> list[Sample]:
    """One sample per .npz or input_*.pb folder; a folder of test_data_set_* folders gives one
    sample per data set."""
    samples: list[Sample] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            sets = sorted(p for p in path.glob("test_data_set_*") if p.is_dir())
            if sets and not list(path.glob("input_*.pb")):
                samples.extend(_read_pb_folder(s, specs) for s in sets)
            else:
                samples.append(_read_pb_folder(path, specs))
        elif path.is_file():
            samples.append(_read_npz(path))
        else:
            raise UserInputError(
                f"--inputs {printable(path, 200)}: no such file or folder; give an .npz or a "
                "folder of input_*.pb"
            )
    if len(samples) > MAX_SAMPLES:
        raise UserInputError(f"--inputs: {len(samples)} samples; at most {MAX_SAMPLES}")
    return samples


def check_sample(sample: Mapping[str, np.ndarray], specs: Sequence[InputSpec], where: str) -> None:
    """Names, dtypes and static sizes exactly as the model declares them."""
    names = {s.name for s in specs}
    missing = [s.name for s in specs if s.name not in sample]
    extra = [n for n in sample if n not in names]
    if missing or extra:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(printable(n, 100) for n in missing))
        if extra:
            parts.append("not model inputs: " + ", ".join(printable(n, 100) for n in extra))
        raise UserInputError(f"{where}: {'; '.join(parts)}; {expected_text(specs)}")
    for spec in specs:
        array = np.asarray(sample[spec.name])
        if array.dtype != spec.dtype:
            raise UserInputError(
                f"{where}: input {printable(spec.name, 100)} has dtype {array.dtype}; "
                f"{expected_text(specs)}"
            )
        if array.ndim != len(spec.dims) or any(
            isinstance(d, int) and d != s for d, s in zip(spec.dims, array.shape)
        ):
            shape = "x".join(str(s) for s in array.shape) or "scalar"
            raise UserInputError(
                f"{where}: input {printable(spec.name, 100)} has shape {shape}; "
                f"{expected_text(specs)}"
            )


def batch_of(sample: Mapping[str, np.ndarray], specs: Sequence[InputSpec]) -> int:
    """The batch size when every input's first axis is dynamic (batch invariance applies),
    else 1 (the check is not asked)."""
    if not specs or any(not s.dims or isinstance(s.dims[0], int) for s in specs):
        return 1
    sizes = {int(np.asarray(sample[s.name]).shape[0]) for s in specs}
    return sizes.pop() if len(sizes) == 1 else 1
