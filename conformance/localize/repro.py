"""The smallest failing subgraph, saved as an ONNX backend test-case folder.

Start from the first diverging node alone, fed what the target computed for its inputs; grow it
one level of producers at a time until the target fails it alone, within the same tolerance;
if no subgraph up to MAX_LEVELS levels fails, the whole model with the failing sample is the
reproducer. The folder (``repro/<target>/<sample>/``) holds ``model.onnx``,
``test_data_set_0/input_*.pb`` and ``output_*.pb`` (the float64 reference of the subgraph) and
``data.json`` (the tolerance), so ``conformance compare repro/.../model.onnx --inputs
repro/.../test_data_set_0 --target T`` fails the same way.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnx import helper

from conformance.compare.judge import Expected, judge
from conformance.isolation import IsolatedTarget
from conformance.localize.nodes import node_inputs, opsets_of, value_info, with_outputs
from conformance.pack import layout
from conformance.targets.interface import TargetError
from conformance.usermodel.reference import ReferenceError, reference_for

if TYPE_CHECKING:
    from conformance.localize.localize import Context
    from conformance.localize.marking import MarkedModel
    from conformance.usermodel.inputs import Sample

MAX_LEVELS = 6
WRONG, ERRORS = "wrong outputs", "load or run error"
REPRO_DIR = "repro"


def _producers(graph: onnx.GraphProto) -> dict[str, int]:
    return {name: i for i, node in enumerate(graph.node) for name in node.output if name}


def ancestor_levels(graph: onnx.GraphProto, index: int, levels: int) -> list[set[int]]:
    """Node sets: the node, then it and its producers up to 1, 2, ... levels back."""
    producers = _producers(graph)
    chosen, frontier, out = {index}, {index}, [{index}]
    for _ in range(levels):
        nxt = {
            producers[name]
            for i in frontier
            for name in node_inputs(graph.node[i])
            if name in producers and producers[name] not in chosen
        }
        if not nxt:
            break
        chosen |= nxt
        frontier = nxt
        out.append(set(chosen))
    return out


def inferred_dims(model: onnx.ModelProto) -> dict[str, list[int | str | None]]:
    """Each tensor's dims as the model declares or infers them: a size, a symbol, or None."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # noqa: BLE001 - best effort
        inferred = model
    graph = inferred.graph
    out: dict[str, list[int | str | None]] = {}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        tensor = value.type.tensor_type
        if not value.type.HasField("tensor_type") or not tensor.HasField("shape"):
            continue
        out[value.name] = [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in tensor.shape.dim
        ]
    return out


def _declared(
    name: str, array: np.ndarray, dims: Sequence[int | str | None] | None
) -> onnx.ValueInfoProto:
    """A subgraph input as the source model has it: its dynamic dims stay dynamic (a runtime's
    dynamic-shape path is often where it goes wrong), its static ones static."""
    array = np.asarray(array)
    if dims is None or len(dims) != array.ndim:
        return value_info(name, array)
    shape = [
        d if isinstance(d, int) and d > 0 else (d or f"{name}_{i}") for i, d in enumerate(dims)
    ]
    elem = helper.np_dtype_to_tensor_dtype(array.dtype)
    return helper.make_tensor_value_info(name, elem, shape)


def subgraph(
    model: onnx.ModelProto,
    nodes: set[int],
    outputs: Sequence[str],
    values: Mapping[str, np.ndarray],
    types: Mapping[str, int],
    dims: Mapping[str, Sequence[int | str | None]] | None = None,
) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The chosen nodes as a model: what they read from outside is an input (with the value
    the target computed for it) or an initializer; ``outputs`` are its outputs."""
    graph = model.graph
    dims = dims or {}
    initializers = {t.name: t for t in graph.initializer}
    ordered = [graph.node[i] for i in sorted(nodes)]
    produced = {n for node in ordered for n in node.output}
    needed: list[str] = []
    for node in ordered:
        for name in node_inputs(node):
            if name not in produced and name not in needed:
                needed.append(name)
    feeds = {n: np.asarray(values[n]) for n in needed if n not in initializers}
    sub = helper.make_graph(
        ordered,
        "repro",
        [_declared(n, a, dims.get(n)) for n, a in feeds.items()],
        [
            helper.make_tensor_value_info(n, types.get(n, onnx.TensorProto.FLOAT), None)
            for n in outputs
        ],
        initializer=[initializers[n] for n in needed if n in initializers],
    )
    out = helper.make_model(
        sub, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets_of(model).items()]
    )
    out.ir_version = model.ir_version
    out.functions.extend(model.functions)
    return out, feeds


def shaped(model: onnx.ModelProto, expected: Mapping[str, np.ndarray]) -> None:
    """Give the outputs the shapes the reference computed (the checker wants a shape)."""
    for output in model.graph.output:
        dims = output.type.tensor_type.shape
        dims.Clear()
        for size in np.asarray(expected[output.name]).shape:
            dims.dim.add().dim_value = int(size)


def save_case(
    folder: Path,
    model: onnx.ModelProto,
    feeds: Mapping[str, np.ndarray],
    expected: Mapping[str, np.ndarray],
    rtol: float,
    atol: float,
) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    data = layout.data_set_dir(folder, 0)
    data.mkdir(parents=True)
    onnx.save_model(model, str(folder / layout.MODEL_ONNX))
    for i, (name, array) in enumerate(feeds.items()):
        layout.write_tensor(data / f"input_{i}.pb", array, name)
    for i, output in enumerate(model.graph.output):
        layout.write_tensor(data / f"output_{i}.pb", expected[output.name], output.name)
    layout.write_case_tolerance(folder, rtol, atol)
    return folder / layout.MODEL_ONNX


def _fails(
    runner: IsolatedTarget,
    path: Path,
    model: onnx.ModelProto,
    feeds: Mapping[str, np.ndarray],
    expected: Mapping[str, np.ndarray],
    outcome: Context,
) -> tuple[str, float]:
    """How the target fails the case: WRONG (its outputs are judged wrong, as in the check),
    ERRORS (it cannot load or run it: a different failure), or "" (it passes)."""
    from onnx import helper as h

    want = [
        Expected(
            o.name,
            str(np.dtype(h.tensor_dtype_to_np_dtype(o.type.tensor_type.elem_type))),
            np.asarray(expected[o.name]),
        )
        for o in model.graph.output
    ]
    try:
        runner.load(path)
        got = runner.run(dict(feeds))
    except TargetError:
        return ERRORS, float("inf")
    judgement = judge(got, want, outcome.tolerance)
    return (WRONG if not judgement.passed else ""), judgement.margin


def write_reproducer(
    runner: IsolatedTarget,
    model: onnx.ModelProto,
    outcome: Context,
    sample: Sample,
    found: Mapping[str, Any],
    target: str,
    label: str = "sample0",
    marked: MarkedModel | None = None,
) -> dict[str, Any]:
    """The smallest subgraph around the first diverging node that fails alone on the target
    (``marked``: the localisation's saved model, to mark the values the subgraphs take)."""
    from conformance.localize.localize import safe_name
    from conformance.usermodel.reference import _float_tensors

    detail = found["first_diverging"]
    index = int(detail["index"])
    graph = model.graph
    folder = outcome.run_dir / REPRO_DIR / safe_name(target) / label
    sets = ancestor_levels(graph, index, MAX_LEVELS)
    # what the reference inferred of the same model (inference copies the whole model)
    reference = getattr(outcome, "reference", None)
    dims = getattr(reference, "dims", None) or inferred_dims(model)
    types = getattr(reference, "elem_types", None) or _float_tensors(model)[1]
    given = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    marked_names = sorted(  # what the target computed; the inputs and weights are known
        {
            n
            for s in sets[-1:]
            for i in s
            for n in [*graph.node[i].output, *node_inputs(graph.node[i])]
        }
        & set(types) - given
    )
    if marked is not None:  # a small file beside the weights the localisation saved
        scratch = marked.marked(marked_names, types)
    else:
        scratch = folder.parent / f".{label}-marked.onnx"
        scratch.parent.mkdir(parents=True, exist_ok=True)
        onnx.save_model(with_outputs(model, marked_names, types), str(scratch))
    try:
        runner.load(scratch)
        values = {**dict(sample), **dict(runner.run(dict(sample)))}
    finally:
        scratch.unlink(missing_ok=True)
    outputs = [n for n in graph.node[index].output if n]
    tried = []
    for level, nodes in enumerate(sets):
        try:
            sub, feeds = subgraph(model, nodes, outputs, values, types, dims)
            expected = reference_for(sub, [feeds]).run(feeds)
            shaped(sub, expected)
        except (ReferenceError, KeyError, ValueError) as error:
            tried.append({"level": level, "nodes": len(nodes), "skipped": str(error)[:300]})
            continue
        # each candidate in its own folder: a runner does not reload a path it has loaded
        trial = folder.parent / f".{folder.name}-level{level}"
        path = save_case(
            trial, sub, feeds, expected, outcome.tolerance.rtol, outcome.tolerance.atol
        )
        how, margin = _fails(runner, path, sub, feeds, expected, outcome)
        failed = how == WRONG  # the same way as the check: wrong numbers or shapes
        if failed:
            shutil.rmtree(folder, ignore_errors=True)
            shutil.move(str(trial), str(folder))
            path = folder / layout.MODEL_ONNX
        else:
            shutil.rmtree(trial, ignore_errors=True)
        tried.append(
            {
                "level": level,
                "nodes": len(nodes),
                "fails": failed,
                **({"other_failure": how} if how == ERRORS else {}),
                "margin": margin if np.isfinite(margin) else None,
            }
        )
        if failed:
            return _described(path, target, len(nodes), "subgraph", tried, margin, outcome)
    # nothing smaller fails alone: the whole model with the failing sample
    expected = outcome.reference.run(sample)
    shutil.rmtree(folder, ignore_errors=True)
    path = save_case(
        folder, model, dict(sample), expected, outcome.tolerance.rtol, outcome.tolerance.atol
    )
    how, margin = _fails(runner, path, model, dict(sample), expected, outcome)
    failed = how == WRONG
    return _described(path, target, len(graph.node), "whole model", tried, margin, outcome, failed)


def _described(
    path: Path,
    target: str,
    nodes: int,
    kind: str,
    tried: list[dict[str, Any]],
    margin: float,
    outcome: Context,
    fails: bool = True,
) -> dict[str, Any]:
    folder = path.parent
    flags = f" --atol {outcome.tolerance.atol:g} --rtol {outcome.tolerance.rtol:g}"
    return {
        "folder": str(folder),
        "model": str(path),
        "nodes": nodes,
        "kind": kind,
        "fails_alone": fails,
        "margin": margin if np.isfinite(margin) else None,
        "tried": tried,
        "command": f"conformance compare {path} --inputs {layout.data_set_dir(folder, 0)} "
        f"--target {target}{flags}",
    }
