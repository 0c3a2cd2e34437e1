"""The model marked chunk by chunk: its weights saved once beside small marked variants, the
graph cut into chunks of tensors marked together in one run of the target, each chunk with the
float64 reference values of its tensors (evaluated as the chunks go, bounded in bytes), and the
values a node reads layered (the target's, the inputs, the weights read when needed)."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from conformance.isolation import IsolatedTarget
from conformance.localize.nodes import node_inputs, with_outputs
from conformance.targets.interface import TargetError
from conformance.usermodel.evaluate import NodeStream
from conformance.usermodel.inputs import Sample

CHUNK_TENSORS = 256  # tensors marked per run of the target (a compile each on IREE)
CHUNK_BYTES = 32 * 1024 * 1024  # float64 reference values held per chunk (the target's: half)
WEIGHTS = "weights.data"


def as64(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    return array.astype(np.float64) if array.dtype.kind == "f" else array


class MarkedModel:
    """The model saved once with its weights as external data in the localisation folder, so
    each marked variant is a small file beside the same weights."""

    def __init__(self, model: onnx.ModelProto, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        base = folder / "model.onnx"
        onnx.save_model(
            copy.deepcopy(model),  # saving as external data rewrites the proto it is given
            str(base),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=WEIGHTS,
            size_threshold=1024,
        )
        self.skeleton = onnx.load_model(str(base), load_external_data=False)
        self.base = base
        self.count = 0

    def marked(self, names: Sequence[str], types: Mapping[str, int]) -> Path:
        self.count += 1
        path = self.folder / f"marked_{self.count}.onnx"
        onnx.save_model(with_outputs(self.skeleton, names, types), str(path))
        return path


def chunks(
    graph: onnx.GraphProto, known: Mapping[str, int], stream: NodeStream
) -> Iterator[tuple[list[int], list[str], dict[str, np.ndarray]]]:
    """Node indices in order, with the tensors they read and give (marked together in one run
    of the target) and those tensors' float64 reference values; cut so a chunk marks at most
    CHUNK_TENSORS tensors and holds at most about CHUNK_BYTES of reference values (the
    reference is evaluated as the chunks go: no more of it is held at once)."""
    last_use: dict[str, int] = {}  # the last node that reads or gives each tensor
    for index, node in enumerate(graph.node):
        for name in [*node.output, *node_inputs(node)]:
            last_use[name] = index
    chunk: list[int] = []
    names: list[str] = []
    expected: dict[str, np.ndarray] = {}
    size = 0
    for index, node in enumerate(graph.node):
        read_or_given = [n for n in [*node.output, *node_inputs(node)] if n in known]
        wanted = [n for n in read_or_given if n not in names]
        if chunk and (len(names) + len(wanted) > CHUNK_TENSORS or size >= CHUNK_BYTES):
            yield chunk, names, expected
            chunk, names, expected, size = [], [], {}, 0
            wanted = list(dict.fromkeys(read_or_given))
        found = stream.collect(wanted)
        expected.update(found)
        size += sum(np.asarray(v).nbytes for v in found.values())
        names.extend(wanted)
        chunk.append(index)
        stream.release(n for n in read_or_given if last_use.get(n) == index)
    if chunk:
        yield chunk, names, expected


def output_change(got: np.ndarray, unmarked: np.ndarray) -> float:
    """How far a final output of a marked run is from the unmarked run's."""
    a, b = np.asarray(got), np.asarray(unmarked)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(as64(a) - as64(b)))) if a.size else 0.0


class Initializers(Mapping[str, np.ndarray]):
    """The model's initializers as arrays, each converted when read and not kept: a second
    copy of every weight is not held for the whole localisation."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self._tensors = {t.name: t for t in model.graph.initializer}

    def __getitem__(self, name: str) -> np.ndarray:
        return numpy_helper.to_array(self._tensors[name])

    def __contains__(self, name: object) -> bool:
        return name in self._tensors

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)


class Layered(Mapping[str, np.ndarray]):
    """The first layer that holds a name gives its value (the target's, the inputs, weights)."""

    def __init__(self, *layers: Mapping[str, np.ndarray]) -> None:
        self._layers = layers

    def __getitem__(self, name: str) -> np.ndarray:
        for layer in self._layers:
            if name in layer:
                return layer[name]
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(name in layer for layer in self._layers)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(n for layer in self._layers for n in layer))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def marked_run(
    runner: IsolatedTarget,
    marked: MarkedModel,
    names: Sequence[str],
    types: Mapping[str, int],
    sample: Sample,
    unmarkable: list[str],
) -> dict[str, np.ndarray]:
    """The target's values of ``names`` (and the model's outputs). When the target cannot run
    the model with all of them marked (IREE refuses outputs that alias one another), the set
    is bisected; a tensor that fails alone is listed in ``unmarkable``."""
    try:
        runner.load(marked.marked(names, types))
        return dict(runner.run(dict(sample)))
    except TargetError:
        if len(names) <= 1:
            unmarkable.extend(names)
            return {}
    half = len(names) // 2
    return {
        **marked_run(runner, marked, names[:half], types, sample, unmarkable),
        **marked_run(runner, marked, names[half:], types, sample, unmarkable),
    }
