"""A negative control for localisation: ONNX Runtime CPU with ONE node's output perturbed.

``backend:conformance.localize.controls:OneNodeDefect`` is an ``onnx.backend`` Backend that
runs ORT after rewriting the model so that the output of one node, the node named (or the first
node of the op type named) by ``CONFORMANCE_NODE_DEFECT``, is multiplied by
``1 + NODE_DEFECT_SCALE``. Marking outputs does not hide it: the perturbed value keeps the
node's output name. With the variable unset the backend is honest. Which node is wrong is
known in advance, so a test can ask localisation to name it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from onnx.backend.base import Backend, BackendRep

NODE_DEFECT_ENV = "CONFORMANCE_NODE_DEFECT"
NODE_DEFECT_SCALE = 1e-2  # 100x the fp32 rtol: far out of tolerance wherever the value is not ~0


def chain_model(path: Path, nodes: int, width: int = 16) -> Path:
    """x[N, width] through nodes/2 (MatMul, Tanh) pairs named mm<i> and tanh<i>, saved at
    ``path``: a model of ``nodes`` nodes whose every node the control can perturb by name."""
    import onnx

    rng = np.random.default_rng(0)
    graph_nodes, weights, current = [], [], "x"
    for i in range(nodes // 2):
        w = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        weights.append(numpy_helper.from_array(w, f"w{i}"))
        graph_nodes.append(helper.make_node("MatMul", [current, f"w{i}"], [f"m{i}"], name=f"mm{i}"))
        graph_nodes.append(helper.make_node("Tanh", [f"m{i}"], [f"t{i}"], name=f"tanh{i}"))
        current = f"t{i}"
    graph = helper.make_graph(
        graph_nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, ["N", width])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def perturb(model: Any, wanted: str) -> Any:
    """The model with the chosen node's first output multiplied by 1 + NODE_DEFECT_SCALE."""
    matches = [
        i for i, n in enumerate(model.graph.node) if wanted and wanted in (n.name, n.op_type)
    ]
    if not matches:
        return model
    index = matches[0]
    node = model.graph.node[index]
    honest = f"{node.output[0]}__honest"
    scale = numpy_helper.from_array(
        np.array(1 + NODE_DEFECT_SCALE, dtype=np.float32), f"{node.output[0]}__defect_scale"
    )
    model.graph.initializer.append(scale)
    out = node.output[0]
    node.output[0] = honest
    mul = helper.make_node("Mul", [honest, scale.name], [out], name=f"{node.name}__defect")
    model.graph.node.insert(index + 1, mul)
    model.graph.value_info.append(helper.make_tensor_value_info(honest, TensorProto.FLOAT, None))
    return model


class OrtRep(BackendRep):
    def __init__(self, session: Any) -> None:
        self._session = session
        self._names = [i.name for i in session.get_inputs()]

    def run(self, inputs: Any, **kwargs: Any) -> Any:
        return self._session.run(None, dict(zip(self._names, inputs)))


class OneNodeDefect(Backend):
    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"

    @classmethod
    def prepare(cls, model: Any, device: str = "CPU", **kwargs: Any) -> OrtRep:
        import onnxruntime

        model = perturb(model, os.environ.get(NODE_DEFECT_ENV, ""))
        session = onnxruntime.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        return OrtRep(session)
