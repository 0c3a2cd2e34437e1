"""A framework model given to the Python API: a torch.nn.Module or a Keras model, exported to
ONNX here (torch: TorchScript or dynamo; Keras: tf2onnx ``from_function``), with a framework
reference where there is one: the eager torch module in float64; the Keras model cloned in
float64 (``keras.models.clone_model`` with every layer's dtype policy float64, float64 inputs and
the weights cast) where it can be cloned so. A Keras model that cannot (a subclassed model, a
layer that does not take the policy, a clone that is not the same function) is judged against
the float64 rewrite of its ONNX export, and the reference's description says why.

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


# ---- the Keras model in float64 ----------------------------------------------------------------
FLOAT64_CLONE = "the Keras model cloned in float64"
REWRITE_FALLBACK = "the float64 rewrite of the tf2onnx export"
# A clone that strays further than this from the float32 model is not the same function.
SAME_FUNCTION_RTOL = 1e-3


class CloneRefused(Exception):
    """The Keras model cannot be cloned in float64 (the message says why)."""


def _float64_layer(layer: Any) -> Any:
    config = layer.get_config()
    config["dtype"] = "float64"
    return layer.__class__.from_config(config)


def _float64_clone(model: Any) -> Any:
    """A float64 clone of a Sequential or Functional model, with the weights cast."""
    import keras

    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    try:
        keras.config.set_floatx("float64")
        keras.config.set_dtype_policy("float64")
        inputs = [
            keras.Input(
                batch_shape=tuple(t.shape),
                dtype="float64" if "float" in str(t.dtype) else t.dtype,
                name=getattr(t, "name", None),
            )
            for t in model.inputs
        ]
        clone = keras.models.clone_model(
            model,
            input_tensors=inputs if len(inputs) > 1 else inputs[0],
            clone_function=_float64_layer,
            recursive=True,
        )
    except Exception as error:  # noqa: BLE001 - any refusal means: fall back, saying why
        raise CloneRefused(f"clone_model refused it ({type(error).__name__}: {error})") from error
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)
    source, target = model.weights, clone.weights
    if [tuple(w.shape) for w in source] != [tuple(w.shape) for w in target]:
        raise CloneRefused("the clone's weights do not match the model's")
    for weight, copy_of in zip(source, target):
        value = np.asarray(weight.numpy())
        if value.dtype.kind == "f" and str(copy_of.dtype) != "float64":
            raise CloneRefused(f"weight {copy_of.path} of the clone is {copy_of.dtype}")
        copy_of.assign(value.astype(np.float64) if value.dtype.kind == "f" else value)
    return clone


def _call(model: Any, sample: Mapping[str, np.ndarray], names: Sequence[str], dtype: Any) -> list:
    import tensorflow as tf

    feeds = [
        np.asarray(sample[n], dtype=dtype)
        if np.asarray(sample[n]).dtype.kind == "f"
        else np.asarray(sample[n])
        for n in names
    ]
    result = model(feeds if len(feeds) > 1 else feeds[0], training=False)
    return [np.asarray(a) for a in tf.nest.flatten(result)]


def keras_reference(
    model: Any, samples: Sequence[Mapping[str, np.ndarray]], outputs: Sequence[str]
) -> tuple[Golden | None, str]:
    """The Keras model cloned in float64 as the golden (by ONNX output name) and what it is;
    (None, why not) when it cannot be cloned so: the float64 rewrite of the export stands."""
    import keras

    example = _first(samples)
    names = list(example)
    try:
        clone = _float64_clone(model)
        low = _call(model, example, names, np.float32)
        high = _call(clone, example, names, np.float64)
        kinds = {str(a.dtype) for a in high if a.dtype.kind == "f"}
        if kinds - {"float64"}:
            raise CloneRefused(f"the clone computes in {', '.join(sorted(kinds))}")
        if len(high) != len(outputs):
            raise CloneRefused(f"the clone gives {len(high)} outputs, the export {len(outputs)}")
        for a, b in zip(low, high):
            scale = float(np.max(np.abs(b))) if b.size else 0.0
            if a.shape != b.shape or not np.allclose(
                a, b, rtol=SAME_FUNCTION_RTOL, atol=SAME_FUNCTION_RTOL * scale
            ):
                raise CloneRefused("the clone does not compute what the model does")
    except CloneRefused as refused:
        return None, f"{REWRITE_FALLBACK} (not {FLOAT64_CLONE}: {refused})"

    def golden(sample: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = _call(clone, sample, names, np.float64)
        return {
            o: a.astype(np.float64) if a.dtype.kind == "f" else a for o, a in zip(outputs, arrays)
        }

    return golden, f"{FLOAT64_CLONE} (Keras {keras.__version__})"
