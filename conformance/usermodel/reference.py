"""The float64 reference of an arbitrary ONNX model.

The model is rewritten to float64 (float inputs, initializers, Constant values, Cast targets,
``dtype`` / ``to`` / ``value`` attributes, the same in subgraphs and local functions) and run on
the ONNX reference evaluator (``onnx.reference``). Where float64 is not valid for a node (its
schema's type constraint does not allow ``tensor(double)`` for a tensor it takes or gives, or the
evaluator cannot run the node in float64), that node runs in float32 between two Casts, and
the reference records which nodes ran in what precision: it says what the reference was.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from conformance.pack.hashing import arrays_digest
from conformance.usermodel.evaluate import NodeError, NodeStream

FLOAT64 = "float64"
FLOAT32 = "float32"
# Float types the rewrite lifts to double.
LIFTED = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16}
_DTYPE_ATTRIBUTES = ("dtype", "to")  # RandomNormal/RandomUniform/EyeLike/Multinomial..., Cast
_SUBGRAPH_ATTRIBUTES = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)


class ReferenceError(ValueError):
    """No reference could be computed for the model (an op the evaluator cannot run at all)."""


def node_label(node: onnx.NodeProto, index: int) -> str:
    """A node's name in tables: its own name, or its position and op type when it has none."""
    return node.name or f"#{index} {node.op_type}"


@dataclass(frozen=True)
class NodePrecision:
    node: str
    op_type: str
    precision: str  # FLOAT64 or FLOAT32
    why: str = ""  # why a node did not run in float64


@dataclass
class Reference:
    """The rewritten model and what ran in which precision."""

    source: onnx.ModelProto
    model: onnx.ModelProto  # the float64 rewrite (fallback nodes wrapped in Casts)
    precisions: list[NodePrecision] = field(default_factory=list)
    elem_types: dict[str, int] = field(default_factory=dict)  # tensor -> source elem type
    # tensor -> its dims in the source as declared or inferred (a size, a symbol or None)
    dims: dict[str, list[int | str | None]] = field(default_factory=dict)
    _last: tuple[str, dict[str, np.ndarray]] | None = field(default=None, repr=False)

    @property
    def fallbacks(self) -> list[NodePrecision]:
        return [p for p in self.precisions if p.precision != FLOAT64]

    def describe(self) -> str:
        """One line for the terminal and the report: what the reference was."""
        total = len(self.precisions)
        low = self.fallbacks
        from conformance.usermodel.corrected import describe_corrections

        evaluator = f"onnx.reference {onnx.__version__}{describe_corrections()}"
        text = f"{evaluator}, the model rewritten to float64"
        if not low:
            return f"{text} ({total} of {total} nodes in float64)"
        names = ", ".join(f"{p.node} ({p.op_type}: {p.why})" for p in low[:5])
        more = f" and {len(low) - 5} more" if len(low) > 5 else ""
        return f"{text} ({total - len(low)} of {total} nodes in float64; float32: {names}{more})"

    def as_dict(self) -> dict[str, Any]:
        from conformance.usermodel.corrected import corrections

        return {
            "evaluator": f"onnx.reference {onnx.__version__}",
            "corrected_ops": [e["op_type"] for e in corrections()],
            "rewrite": FLOAT64,
            "description": self.describe(),
            "nodes": {
                FLOAT64: sum(p.precision == FLOAT64 for p in self.precisions),
                FLOAT32: sum(p.precision == FLOAT32 for p in self.precisions),
            },
            "fallbacks": [
                {"node": p.node, "op_type": p.op_type, "precision": p.precision, "why": p.why}
                for p in self.fallbacks
            ],
        }

    def evaluator(self) -> Any:
        from conformance.usermodel.corrected import reference_evaluator

        return reference_evaluator(self.model)

    def feeds(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The user's inputs as the rewritten model takes them (float inputs as float64)."""
        declared = {i.name: i.type.tensor_type.elem_type for i in self.source.graph.input}
        return {
            name: np.asarray(value, dtype=np.float64)
            if declared.get(name) in LIFTED
            else np.asarray(value)
            for name, value in inputs.items()
        }

    def stream(self, inputs: Mapping[str, np.ndarray], retain: Iterable[str] = ()) -> NodeStream:
        """The rewrite evaluated in order on ``inputs``, as far as a caller asks (``collect``:
        the ``retain`` names are kept until collected), holding only the values still needed
        (conformance.usermodel.evaluate)."""
        return NodeStream(self.model, self.feeds(inputs), retain)

    def run(
        self, inputs: Mapping[str, np.ndarray], intermediate: bool = False
    ) -> dict[str, np.ndarray]:
        """The model's outputs (or every value, ``intermediate``) in float64, by name. The
        outputs are evaluated in segments of nodes, each value dropped after its last reader
        (the whole-graph evaluator holds every intermediate value until it returns)."""
        if intermediate:
            try:
                result = self.evaluator().run(None, self.feeds(inputs), intermediate=True)
            except Exception as error:  # noqa: BLE001 - the evaluator's failure is the message
                raise ReferenceError(
                    f"onnx.reference cannot run the float64 rewrite: "
                    f"{type(error).__name__}: {error}"
                ) from error
            assert isinstance(result, dict)
            return {k: np.asarray(v) for k, v in result.items() if v is not None}
        key = arrays_digest(inputs)
        if self._last is not None and self._last[0] == key:
            return dict(self._last[1])
        try:
            outputs = self.stream(inputs).outputs()
        except NodeError as failed:
            cause = failed.error
            raise ReferenceError(
                f"onnx.reference cannot run the float64 rewrite: {type(cause).__name__}: {cause}"
            ) from cause
        names = [o.name for o in self.model.graph.output]
        result = {name: np.asarray(outputs[name]) for name in names if name in outputs}
        self._last = (key, result)  # the check run of reference_for is the first golden
        return dict(result)


# ---- the rewrite -----------------------------------------------------------------------------
def _lift_tensor(tensor: TensorProto) -> TensorProto:
    if tensor.data_type not in LIFTED:
        return tensor
    array = numpy_helper.to_array(tensor).astype(np.float64)
    lifted = numpy_helper.from_array(array, tensor.name)
    return lifted


def _lift_value_info(value: onnx.ValueInfoProto) -> None:
    tensor_type = value.type.tensor_type
    if value.type.HasField("tensor_type") and tensor_type.elem_type in LIFTED:
        tensor_type.elem_type = TensorProto.DOUBLE


def _opsets(model: onnx.ModelProto) -> dict[str, int]:
    return {(o.domain or ""): o.version for o in model.opset_import}


def _schema(node: onnx.NodeProto, opsets: Mapping[str, int]) -> Any:
    domain = node.domain or ""
    if domain not in opsets:
        return None
    try:
        return onnx.defs.get_schema(node.op_type, opsets[domain], domain)
    except onnx.defs.SchemaError:
        return None


def _bindings(formals: Sequence[Any], count: int) -> list[str]:
    """The type parameter of each actual position (the last formal may be variadic)."""
    out = []
    for position in range(count):
        if not formals:
            break
        formal = formals[min(position, len(formals) - 1)]
        if position >= len(formals) and formal.option != formal.option.Variadic:
            break
        out.append(formal.type_str)
    return out


def double_refused(node: onnx.NodeProto, opsets: Mapping[str, int], floats: set[str]) -> str:
    """Why float64 is not valid for this node (its schema refuses tensor(double) for a float
    tensor it takes or gives), or "" when it is."""
    schema = _schema(node, opsets)
    if schema is None:
        return ""
    allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
    for names, formals in ((node.input, schema.inputs), (node.output, schema.outputs)):
        for name, type_str in zip(names, _bindings(formals, len(names))):
            if not name or name not in floats:
                continue
            types = allowed.get(type_str, {type_str})
            if "tensor(double)" not in types:
                return f"its schema allows {type_str} in {', '.join(sorted(types))}, not double"
    return ""


def _lift_attributes(node: onnx.NodeProto) -> None:
    for attribute in node.attribute:
        if attribute.name in _DTYPE_ATTRIBUTES and attribute.type == onnx.AttributeProto.INT:
            if attribute.i in LIFTED:
                attribute.i = TensorProto.DOUBLE
        elif attribute.type == onnx.AttributeProto.TENSOR:
            attribute.t.CopyFrom(_lift_tensor(attribute.t))
        elif attribute.type == onnx.AttributeProto.TENSORS:
            lifted = [_lift_tensor(t) for t in attribute.tensors]
            del attribute.tensors[:]
            attribute.tensors.extend(lifted)
        elif attribute.type == onnx.AttributeProto.GRAPH:
            _lift_graph(attribute.g)
        elif attribute.type == onnx.AttributeProto.GRAPHS:
            for graph in attribute.graphs:
                _lift_graph(graph)


Dims = list[int | str | None]  # a size, a symbol, or None (unknown)


def _float_tensors(
    model: onnx.ModelProto, dims: dict[str, Dims] | None = None
) -> tuple[set[str], dict[str, int]]:
    """Names of the float tensors of the main graph (from shape inference), and every known
    tensor's element type; ``dims`` gets each tensor's dims as declared or inferred."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # noqa: BLE001 - inference is best effort here
        inferred = model
    graph = inferred.graph
    types: dict[str, int] = {}
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if value.type.HasField("tensor_type"):
            types[value.name] = value.type.tensor_type.elem_type
            tensor = value.type.tensor_type
            if dims is not None and tensor.HasField("shape"):
                dims[value.name] = [
                    d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                    for d in tensor.shape.dim
                ]
    del inferred  # a whole copy of the model; the source has the same weights and nodes
    graph = model.graph
    for tensor in graph.initializer:
        types[tensor.name] = tensor.data_type
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.TENSOR:
                    types.setdefault(node.output[0], attribute.t.data_type)
    return {n for n, t in types.items() if t in LIFTED}, types


def _wrap_float32(
    node: onnx.NodeProto, floats: set[str], index: int
) -> tuple[list[onnx.NodeProto], onnx.NodeProto]:
    """Casts around a node that runs in float32: its float inputs down, its float outputs up."""
    before, after = [], []
    wrapped = copy.deepcopy(node)
    for position, name in enumerate(node.input):
        if name and name in floats:
            low = f"{name}__f32_{index}"
            before.append(helper.make_node("Cast", [name], [low], to=TensorProto.FLOAT))
            wrapped.input[position] = low
    for position, name in enumerate(node.output):
        if name and name in floats:
            low = f"{name}__f32_{index}"
            wrapped.output[position] = low
            after.append(helper.make_node("Cast", [low], [name], to=TensorProto.DOUBLE))
    return [*before, wrapped, *after], wrapped


def float64_reference(
    model: onnx.ModelProto, float32_nodes: Mapping[int, str] | None = None
) -> Reference:
    """The float64 rewrite of ``model``; ``float32_nodes`` (index -> why) run in float32 too."""
    source = model
    dims: dict[str, Dims] = {}
    floats, types = _float_tensors(source, dims)  # before the copy: inference copies it too
    model = copy.deepcopy(model)
    opsets = _opsets(model)
    forced = dict(float32_nodes or {})

    precisions: list[NodePrecision] = []
    nodes: list[onnx.NodeProto] = []
    for index, node in enumerate(model.graph.node):
        why = forced.get(index) or double_refused(node, opsets, floats)
        label = node_label(node, index)
        if why:
            wrapped, _ = _wrap_float32(node, floats, index)
            nodes.extend(wrapped)
            precisions.append(NodePrecision(label, node.op_type, FLOAT32, why))
        else:
            _lift_attributes(node)
            nodes.append(node)
            precisions.append(NodePrecision(label, node.op_type, FLOAT64))
    for values in (model.graph.input, model.graph.output, model.graph.value_info):
        for value in values:
            _lift_value_info(value)
    del model.graph.value_info[:]  # shapes and types are the evaluator's to find
    lifted = [_lift_tensor(t) for t in model.graph.initializer]
    del model.graph.initializer[:]
    model.graph.initializer.extend(lifted)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    for function in model.functions:
        for node in function.node:
            _lift_attributes(node)
    return Reference(source, model, precisions, types, dims)


def _single_node_failures(reference: Reference, inputs: Mapping[str, np.ndarray]) -> dict[int, str]:
    """Node by node in float64 (on the float64 values so far); the nodes that fail there."""
    from conformance.localize.nodes import evaluate_node

    values: dict[str, np.ndarray] = dict(reference.feeds(inputs))
    for tensor in reference.model.graph.initializer:
        values[tensor.name] = numpy_helper.to_array(tensor)
    opsets = _opsets(reference.model)
    failures: dict[int, str] = {}
    for index, node in enumerate(reference.source.graph.node):
        lifted = float64_reference_node(node)
        try:
            produced = evaluate_node(lifted, values, opsets, reference.model.functions)
        except Exception as error:  # noqa: BLE001 - try it in float32
            failures[index] = f"the evaluator failed in float64 ({type(error).__name__})"
            low = {
                k: v.astype(np.float32) if v.dtype == np.float64 else v
                for k, v in values.items()
                if k in node.input
            }
            try:
                produced = evaluate_node(node, {**values, **low}, opsets, reference.model.functions)
            except Exception as second:  # noqa: BLE001
                raise ReferenceError(
                    f"onnx.reference cannot run node {node_label(node, index)} "
                    f"(op {node.op_type}) in float64 or float32: {type(second).__name__}: {second}"
                ) from second
            produced = {
                k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in produced.items()
            }
        values.update(produced)
    return failures


def _lift_graph(graph: onnx.GraphProto) -> None:
    """A subgraph (If/Loop/Scan body) in float64: its values, initializers and nodes."""
    for values in (graph.input, graph.output, graph.value_info):
        for value in values:
            _lift_value_info(value)
    tensors = [_lift_tensor(t) for t in graph.initializer]
    del graph.initializer[:]
    graph.initializer.extend(tensors)
    for inner in graph.node:
        _lift_attributes(inner)


def float64_reference_node(node: onnx.NodeProto) -> onnx.NodeProto:
    lifted = copy.deepcopy(node)
    _lift_attributes(lifted)
    return lifted


def reference_for(model: onnx.ModelProto, samples: Iterable[Mapping[str, np.ndarray]]) -> Reference:
    """The float64 reference, with a runtime fallback: when the evaluator cannot run the
    rewrite, the nodes it fails on in float64 run in float32 (ReferenceError when a node runs
    in neither)."""
    reference = float64_reference(model)
    first = next(iter(samples), None)
    if first is None:
        return reference
    try:
        reference.run(first)
        return reference
    except ReferenceError:
        failures = _single_node_failures(reference, first)
    fixed = float64_reference(model, {**failures})
    fixed.run(first)  # raises ReferenceError when it still cannot run
    return fixed
