"""A framework model given to the Python API: a torch.nn.Module or a Keras model, exported to
ONNX here (torch: TorchScript or dynamo; Keras: tf2onnx ``from_function``), with a framework
reference where there is one: the eager torch module in float64. A Keras model is judged
against the float64 rewrite of its ONNX export (cloning it to float64 is not done here; the
reference's description says so).

Imported only on this path: the run stage never imports torch or TensorFlow.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from conformance.usermodel.model import UserInputError

Golden = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]
TORCH_EXPORTERS = ("torch-script", "torch-dynamo")


def is_torch_module(model: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def is_keras_model(model: object) -> bool:
    keras = sys.modules.get("keras")
    return keras is not None and isinstance(model, keras.Model)


def _first(samples: Sequence[Mapping[str, np.ndarray]]) -> Mapping[str, np.ndarray]:
    if not samples:
        raise UserInputError(
            "a framework model needs example inputs: pass inputs={name: array} (names become the "
            "ONNX input names)"
        )
    return samples[0]


def export_torch(
    module: Any, samples: Sequence[Mapping[str, np.ndarray]], folder: Path, exporter: str
) -> tuple[Path, list[str], Golden, str]:
    """The module exported to folder/model.onnx (batch axis dynamic), its output names, and
    the eager module in float64 as the golden."""
    import torch

    if exporter not in TORCH_EXPORTERS:
        raise UserInputError(f"exporter {exporter!r}: one of {', '.join(TORCH_EXPORTERS)}")
    example = _first(samples)
    names = list(example)
    args = tuple(torch.from_numpy(np.ascontiguousarray(example[n])) for n in names)
    module = module.eval()
    with torch.no_grad():
        out = module(*args)
    count = len(out) if isinstance(out, (tuple, list)) else 1
    outputs = [f"output_{i}" for i in range(count)]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    if exporter == "torch-script":
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=names,
            output_names=outputs,
            dynamo=False,
            dynamic_axes={n: {0: "batch"} for n in [*names, *outputs]},
            opset_version=17,
        )
    else:
        batch = torch.export.Dim("batch", min=1, max=1024)
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=names,
            output_names=outputs,
            dynamo=True,
            dynamic_shapes=tuple({0: batch} for _ in names),
            external_data=False,
        )
    twin = copy.deepcopy(module).double().eval()

    def golden(sample: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = [
            torch.from_numpy(np.asarray(sample[n], dtype=np.float64))
            if np.asarray(sample[n]).dtype.kind == "f"
            else torch.from_numpy(np.asarray(sample[n]))
            for n in names
        ]
        with torch.no_grad():
            result = twin(*feeds)
        arrays = result if isinstance(result, (tuple, list)) else (result,)
        return {o: a.detach().numpy().astype(np.float64) for o, a in zip(outputs, arrays)}

    return path, outputs, golden, f"the eager torch module in float64 (torch {torch.__version__})"


def export_keras(model: Any, samples: Sequence[Mapping[str, np.ndarray]], folder: Path) -> Path:
    """The Keras model exported by tf2onnx from_function (from_keras fails on Keras 3)."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    example = _first(samples)
    spec = tuple(
        tf.TensorSpec((None, *np.asarray(a).shape[1:]), tf.as_dtype(np.asarray(a).dtype), name=n)
        for n, a in example.items()
    )
    function = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False))
    proto, _ = tf2onnx.convert.from_function(function, input_signature=spec, opset=17)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    onnx.save(proto, str(path))
    return path
