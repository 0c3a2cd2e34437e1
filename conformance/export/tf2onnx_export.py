"""tf2onnx exporter: Keras twin -> tf.function with an input signature -> ONNX.

``from_keras`` is broken on Keras 3 (KeyError on keras_tensor names), so the Keras
model is wrapped in a tf.function and converted with ``from_function``.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from conformance.export.interface import ExportError, ExportResult
from reference_models.interface import BATCH, SEQ, Params, keras_layout, layout_permutation

TF2ONNX_OPSET = 17

# Named exporter option: tf2onnx cannot convert TF's Erfc (Keras' exact GELU) and emits an
# undefined `Erfc` node; this handler rewrites it to 1 - Erf(x), which ONNX defines.
ERFC_OPTION = "erfc_as_one_minus_erf"


def _erfc_as_one_minus_erf(ctx, node, name, args):
    from tf2onnx import utils

    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
    node.type = "Erf"
    one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1, dtype=dtype))
    ctx.insert_new_node_on_output(
        "Sub",
        node.output[0],
        name=utils.make_name(f"{node.name}_erfc"),
        inputs=[one.output[0], node.output[0]],
    )
    return node


def _keras_shape(shape: tuple, layout: str) -> list[int | None]:
    permuted = [shape[i] for i in layout_permutation(layout, keras_layout(layout))]
    return [None if d in (BATCH, SEQ) else d for d in permuted]


def export_tf2onnx(
    family: ModuleType, params: Params, path: Path, options: dict[str, Any]
) -> ExportResult:
    import keras
    import tensorflow as tf
    import tf2onnx

    # tf2onnx and Keras number generated names from process-wide counters; reset them so an
    # artifact's names do not depend on what was exported before it in the same process.
    keras.backend.clear_session()
    tf2onnx.utils.INTERNAL_NAME = 1
    spec = family.SPEC
    model = family.build_keras(params, "float32")
    signature = [
        tf.TensorSpec(_keras_shape(t.shape, t.layout), tf.dtypes.as_dtype(t.dtype), name=t.name)
        for t in spec.inputs
    ]

    @tf.function(input_signature=signature)
    def forward(*args):
        return model(list(args) if len(args) > 1 else args[0], training=False)

    opset = options.get("opset", TF2ONNX_OPSET)
    handlers: dict[str, tuple[Any, list[Any]]] | None = (
        {"Erfc": (_erfc_as_one_minus_erf, [])} if options.get(ERFC_OPTION) else None
    )
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    logging.getLogger("tf2onnx").addHandler(handler)
    try:
        tf2onnx.convert.from_function(
            forward,
            input_signature=signature,
            opset=opset,
            custom_op_handlers=handlers,
            output_path=str(path),
        )
    except Exception as error:
        raise ExportError(f"{type(error).__name__}: {error}") from error
    finally:
        logging.getLogger("tf2onnx").removeHandler(handler)
    return ExportResult(tf2onnx.__version__, "keras", {"opset": opset, **options}, log.getvalue())
