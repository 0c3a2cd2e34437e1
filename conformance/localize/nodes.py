"""Graph helpers for localisation: one node evaluated alone, intermediate outputs marked."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper

_GRAPH_KINDS = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)


def subgraphs(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    out: list[onnx.GraphProto] = []
    for attribute in node.attribute:
        if attribute.type == onnx.AttributeProto.GRAPH:
            out.append(attribute.g)
        elif attribute.type == onnx.AttributeProto.GRAPHS:
            out.extend(attribute.graphs)
    return out


def outer_names(graph: onnx.GraphProto) -> set[str]:
    """Names a subgraph takes from the enclosing scope (used, not defined inside)."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    used: set[str] = set()
    for node in graph.node:
        used.update(n for n in node.input if n)
        for inner in subgraphs(node):
            used.update(outer_names(inner))
        defined.update(node.output)
    used.update(o.name for o in graph.output)
    return used - defined


def node_inputs(node: onnx.NodeProto) -> list[str]:
    """Every value a node reads: its inputs, then what its subgraphs take from outside."""
    names = [n for n in node.input if n]
    for graph in subgraphs(node):
        names.extend(sorted(outer_names(graph) - set(names)))
    return names


def value_info(name: str, array: np.ndarray) -> onnx.ValueInfoProto:
    elem = helper.np_dtype_to_tensor_dtype(np.asarray(array).dtype)
    return helper.make_tensor_value_info(name, elem, list(np.asarray(array).shape))


def outside_inputs(nodes: Sequence[onnx.NodeProto]) -> list[str]:
    """What a run of consecutive nodes reads from before it, in order."""
    made: set[str] = set()
    read: list[str] = []
    for node in nodes:
        read.extend(n for n in node_inputs(node) if n not in made and n not in read)
        made.update(n for n in node.output if n)
    return read


def single_node_model(
    node: onnx.NodeProto,
    values: Mapping[str, np.ndarray],
    opsets: Mapping[str, int],
    functions: Sequence[onnx.FunctionProto] = (),
    output_types: Mapping[str, int] | None = None,
) -> onnx.ModelProto:
    """A model of one node, its inputs typed and shaped from ``values``."""
    return nodes_model([node], values, opsets, functions, output_types)


def nodes_model(
    nodes: Sequence[onnx.NodeProto],
    values: Mapping[str, np.ndarray],
    opsets: Mapping[str, int],
    functions: Sequence[onnx.FunctionProto] = (),
    output_types: Mapping[str, int] | None = None,
) -> onnx.ModelProto:
    """A model of consecutive nodes, its inputs (what they read from before) typed and shaped
    from ``values``, its outputs the last node's."""
    inputs = [value_info(n, values[n]) for n in outside_inputs(nodes)]
    outputs = []
    for name in nodes[-1].output:
        if not name:
            continue
        elem = (output_types or {}).get(name, onnx.TensorProto.UNDEFINED)
        outputs.append(helper.make_tensor_value_info(name, elem, None))
    graph = helper.make_graph([copy.deepcopy(n) for n in nodes], "nodes", inputs, outputs)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()]
    )
    model.functions.extend(functions)
    model.ir_version = min(model.ir_version, 10)
    return model


def evaluate_node(
    node: onnx.NodeProto,
    values: Mapping[str, np.ndarray],
    opsets: Mapping[str, int],
    functions: Sequence[onnx.FunctionProto] = (),
) -> dict[str, np.ndarray]:
    """Run one node on the ONNX reference evaluator (its known errors corrected) with the
    given input values."""
    from conformance.usermodel.corrected import reference_evaluator

    model = single_node_model(node, values, opsets, functions)
    feeds = {n: values[n] for n in node_inputs(node)}
    results = reference_evaluator(model).run(None, feeds)
    names = [n for n in node.output if n]
    return {n: np.asarray(v) for n, v in zip(names, results)}


def evaluate_nodes(
    nodes: Sequence[onnx.NodeProto],
    values: Mapping[str, np.ndarray],
    opsets: Mapping[str, int],
    functions: Sequence[onnx.FunctionProto] = (),
) -> dict[str, np.ndarray]:
    """Run consecutive nodes on the ONNX reference evaluator (one evaluator for all of them,
    its known errors corrected); every value they give, by name."""
    from conformance.usermodel.corrected import reference_evaluator

    model = nodes_model(nodes, values, opsets, functions)
    feeds = {n: values[n] for n in outside_inputs(nodes)}
    results = reference_evaluator(model).run(None, feeds, intermediate=True)
    assert isinstance(results, dict)
    given = {n for node in nodes for n in node.output if n}
    return {n: np.asarray(v) for n, v in results.items() if n in given and v is not None}


def opsets_of(model: onnx.ModelProto) -> dict[str, int]:
    return {(o.domain or ""): o.version for o in model.opset_import}


def with_outputs(model: onnx.ModelProto, names: Iterable[str], types: Mapping[str, int]) -> Any:
    """The model with ``names`` added as graph outputs (after its own), typed from ``types``."""
    marked = copy.deepcopy(model)
    present = {o.name for o in marked.graph.output}
    wanted = set(names) - present
    # a marked tensor's value_info would become the output's declared type; an exporter's
    # value_info can disagree with what the runtime infers (IREE's importer then refuses the
    # model), so the output declares its element type only
    kept = [v for v in marked.graph.value_info if v.name not in wanted]
    del marked.graph.value_info[:]
    marked.graph.value_info.extend(kept)
    for name in names:
        if name in present or name not in types:
            continue
        marked.graph.output.append(helper.make_tensor_value_info(name, types[name], None))
        present.add(name)
    return marked
