"""The first diverging node of a failing (model, target, sample).

For every node in topological order (the graph's order; ONNX requires it), two errors against
the float64 reference, in the check's tolerance (margin = worst |err| / (atol + rtol |ref|)):

- *total*: the node's output on the target against the reference's value of that output, i.e.
  the error it inherits from upstream plus the error it adds;
- *introduced*: the node evaluated alone in float64 on the target's own values of its inputs,
  against the target's output: the error this node adds, whatever it was fed.

The first node whose introduced margin exceeds 1 is named (op type, attributes, input shapes,
figures). The target runs the model with intermediate outputs marked, a chunk of nodes at a
time (their outputs and inputs), never everything at once: peak memory stays near the model's
own run. Marking can change what a runtime fuses, so the final outputs of every marked run are
compared with the unmarked run's, and the table says whether they agree.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import onnx
from onnx import helper

from conformance.compare.stats import margin_and_max_abs
from conformance.compare.tolerance import Tolerance
from conformance.isolation import IsolatedTarget
from conformance.localize.marking import (
    Initializers,
    Layered,
    MarkedModel,
    as64,
    chunks,
    marked_run,
    output_change,
)
from conformance.localize.nodes import evaluate_node, node_inputs, opsets_of
from conformance.targets.interface import TargetError
from conformance.usermodel.evaluate import trim_heap
from conformance.usermodel.reference import Reference, float64_reference_node, node_label

if TYPE_CHECKING:
    from conformance.results.records import CheckRecord
    from conformance.usermodel.inputs import Sample
    from conformance.usermodel.model import UserModel


class Context(Protocol):
    """What localisation needs of its caller (a comparison, or a pack run's finding)."""

    run_dir: Path
    tolerance: Tolerance
    reference: Reference


LOCALIZE_DIR = "localize"

Message = Callable[[str], None]


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_")[:80] or "target"


@dataclass
class NodeError:
    index: int
    node: str
    op_type: str
    total_margin: float | None
    total_max_abs: float | None
    introduced_margin: float | None
    introduced_max_abs: float | None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        def finite(v: float | None) -> float | None:
            return v if v is None or np.isfinite(v) else None

        return {
            "index": self.index,
            "node": self.node,
            "op_type": self.op_type,
            "total": {"margin": finite(self.total_margin), "max_abs": finite(self.total_max_abs)},
            "introduced": {
                "margin": finite(self.introduced_margin),
                "max_abs": finite(self.introduced_max_abs),
            },
            **({"note": self.note} if self.note else {}),
        }


def _worst(actual: np.ndarray, expected: np.ndarray, tolerance: Tolerance) -> tuple[float, float]:
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        return float("inf"), float("inf")
    if actual.dtype.kind not in "biuf" or expected.dtype.kind not in "biuf":
        return 0.0, 0.0
    return margin_and_max_abs(actual, expected, tolerance)


def node_table(
    runner: IsolatedTarget,
    marked: MarkedModel,
    model: onnx.ModelProto,
    reference: Reference,
    sample: Sample,
    tolerance: Tolerance,
    shapes: dict[str, list[int]] | None = None,
    source: Path | None = None,
) -> tuple[list[NodeError], dict[str, Any]]:
    """Per-node errors, and whether marking changed the final outputs; ``shapes`` gets the
    shape of every value the target computed. ``source``: the model file as the check ran it
    (its load is reused: a compiling runtime compiles it once)."""
    graph = model.graph
    types = reference.elem_types
    inputs = {i.name for i in graph.input}
    constants = Initializers(model)
    known = {n: t for n, t in types.items() if n not in constants and n not in inputs}
    stream = reference.stream(sample, retain=known)
    opsets = opsets_of(model)
    finals = [o.name for o in graph.output]
    runner.load(source or marked.base)
    unmarked = dict(runner.run(dict(sample)))
    worst_change, rows = 0.0, []
    unmarkable: list[str] = []
    for chunk, names, expected in chunks(graph, known, stream):
        got = marked_run(runner, marked, names, known, sample, unmarkable)
        if shapes is not None:
            shapes.update({k: list(np.shape(v)) for k, v in got.items()})
        for name in finals:
            if name in got and name in unmarked:
                worst_change = max(worst_change, output_change(got[name], unmarked[name]))
        values = Layered(got, dict(sample), constants)
        for index in chunk:
            rows.append(_row(index, graph.node[index], values, expected, opsets, model, tolerance))
        del got, values, expected
        trim_heap()  # a chunk's values are gone: their memory goes back, not into the peak
    agreement = {
        "agree": worst_change == 0.0,
        "max_abs_change": worst_change if np.isfinite(worst_change) else None,
        "note": "the final outputs of the marked runs equal the unmarked run's"
        if worst_change == 0.0
        else "marking intermediate outputs changed the final outputs (the runtime fuses or "
        f"orders differently when they are marked): max abs change {worst_change:.3g}",
        **({"unmarkable": unmarkable[:50]} if unmarkable else {}),
    }
    return rows, agreement


def _row(
    index: int,
    node: onnx.NodeProto,
    values: Mapping[str, np.ndarray],
    expected: Mapping[str, np.ndarray],
    opsets: Mapping[str, int],
    model: onnx.ModelProto,
    tolerance: Tolerance,
) -> NodeError:
    label = node_label(node, index)
    outputs = [n for n in node.output if n and n in values]
    if not outputs:
        return NodeError(index, label, node.op_type, None, None, None, None, "output not marked")
    total = [_worst(values[n], expected[n], tolerance) for n in outputs if n in expected]
    total_margin = max((m for m, _ in total), default=None)
    total_abs = max((a for _, a in total), default=None)

    def not_introduced(note: str) -> NodeError:  # the inherited error only, and why
        return NodeError(index, label, node.op_type, total_margin, total_abs, None, None, note)

    feeds = {}
    for name in node_inputs(node):
        if name not in values:
            return not_introduced(f"input {name} not available")
        feeds[name] = as64(values[name])
    try:
        produced = evaluate_node(float64_reference_node(node), feeds, opsets, model.functions)
    except Exception as error:  # noqa: BLE001 - the evaluator cannot take this node alone
        return not_introduced(f"not evaluated alone: {type(error).__name__}")
    introduced = [_worst(values[n], produced[n], tolerance) for n in outputs if n in produced]
    shapes = [
        f"{n}: shape {list(np.shape(values[n]))} where the node gives {list(np.shape(produced[n]))}"
        for n in outputs
        if n in produced and np.shape(values[n]) != np.shape(produced[n])
    ]
    return NodeError(
        index,
        label,
        node.op_type,
        total_margin,
        total_abs,
        max((m for m, _ in introduced), default=None),
        max((a for _, a in introduced), default=None),
        "; ".join(shapes),
    )


def _attribute_text(attribute: onnx.AttributeProto) -> Any:
    value = helper.get_attribute_value(attribute)
    if isinstance(value, onnx.TensorProto):
        return f"tensor {list(value.dims)} {onnx.TensorProto.DataType.Name(value.data_type)}"
    if isinstance(value, onnx.GraphProto):
        return f"graph ({len(value.node)} nodes)"
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")[:200]
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode("utf-8", errors="replace")[:100] for v in value[:16]]
    if isinstance(value, list) and len(value) > 32:
        return [*value[:32], "..."]
    return value


def describe_node(
    model: onnx.ModelProto, row: NodeError, shapes: Mapping[str, list[int]]
) -> dict[str, Any]:
    node = model.graph.node[row.index]
    return {
        **row.as_dict(),
        "attributes": {a.name: _attribute_text(a) for a in node.attribute},
        "inputs": [{"name": n, "shape": shapes.get(n)} for n in node.input],
        "outputs": [{"name": n, "shape": shapes.get(n)} for n in node.output],
    }


def first_diverging(rows: Sequence[NodeError]) -> tuple[NodeError | None, str]:
    for row in rows:
        if row.introduced_margin is not None and row.introduced_margin > 1:
            return row, "introduced"
    for row in rows:
        if row.total_margin is not None and row.total_margin > 1:
            return row, "accumulated"
    return None, "none"


def summary_line(found: dict[str, Any] | None, how: str) -> str:
    if found is None:
        return "no node's output is out of tolerance (the final outputs alone differ)"
    figures = found["introduced"] if how == "introduced" else found["total"]
    margin = figures["margin"]
    shown = "inf" if margin is None else f"{margin:.3g}"
    shapes = ", ".join(
        ("x".join(map(str, i["shape"])) or "scalar") if i["shape"] is not None else "?"
        for i in found["inputs"]
    )
    verb = (
        "introduces" if how == "introduced" else "is the first out of tolerance, no node alone adds"
    )
    if found.get("note"):  # a wrong shape, not a number
        return (
            f"first diverging node: {found['node']} ({found['op_type']}, inputs {shapes}): "
            f"{found['note']}"
        )
    return (
        f"first diverging node: {found['node']} ({found['op_type']}, inputs {shapes}) {verb} "
        f"an error of max abs {figures['max_abs']:.3g}, margin {shown}"
        if figures["max_abs"] is not None
        else f"first diverging node: {found['node']} ({found['op_type']}) {verb} a non-finite error"
    )


def localize_one(
    runner: IsolatedTarget,
    model: onnx.ModelProto,
    reference: Reference,
    sample: Sample,
    tolerance: Tolerance,
    folder: Path,
    source: Path | None = None,
    marked: MarkedModel | None = None,
) -> dict[str, Any]:
    marked = marked or MarkedModel(model, folder)
    shapes = {k: list(np.shape(v)) for k, v in sample.items()}
    shapes.update({t.name: list(t.dims) for t in model.graph.initializer})
    rows, agreement = node_table(
        runner, marked, model, reference, sample, tolerance, shapes, source
    )
    found, how = first_diverging(rows)
    detail = describe_node(model, found, shapes) if found is not None else None
    return {
        "nodes": [r.as_dict() for r in rows],
        "marking": agreement,
        "first_diverging": detail,
        "how": how,
        "summary": summary_line(detail, how),
    }


def localize_failures(
    outcome: Context,
    model: UserModel,
    samples: Sequence[Sample],
    runner_for: Callable[[str], IsolatedTarget],
    message: Message,
) -> list[dict[str, Any]]:
    """Localise every (target, sample) that failed on values, and write its reproducer."""
    from conformance.usermodel.comparison import failing_on_values

    done = []
    source = getattr(outcome, "source", None)
    failing = failing_on_values(getattr(outcome, "records", []))
    by_target: dict[str, list[CheckRecord]] = {}
    for record in failing:
        by_target.setdefault(record.target, []).append(record)
    for target, records in by_target.items():
        runner = runner_for(target)
        for record in records:
            message(f"localising {record.check_id}")
            entry = localize_record(
                runner, model.proto, outcome, samples[record.data_set], record, source
            )
            message(f"{record.check_id}: {entry.get('summary', entry.get('error'))}")
            done.append(entry)
    return done


def localize_record(
    runner: IsolatedTarget,
    model: onnx.ModelProto,
    outcome: Context,
    sample: Sample,
    record: CheckRecord,
    source: Path | None = None,
) -> dict[str, Any]:
    """The per-node table, first diverging node and reproducer of one failing check;
    ``source`` is the model file the check loaded."""
    from conformance.localize.repro import write_reproducer

    target = record.target
    case = f"{record.model}-{record.exporter}-{record.data_set_label}"
    folder = outcome.run_dir / LOCALIZE_DIR / safe_name(target) / safe_name(case)
    entry: dict[str, Any] = {"check": record.check_id, "target": target, "sample": record.data_set}
    try:
        marked = MarkedModel(model, folder)
        entry.update(
            localize_one(
                runner, model, outcome.reference, sample, outcome.tolerance, folder, source, marked
            )
        )
        if entry.get("first_diverging"):
            entry["reproducer"] = write_reproducer(
                runner, model, outcome, sample, entry, target, safe_name(case), marked
            )
    except TargetError as error:  # the target failed on a marked model: said, not raised
        entry["error"] = f"localisation failed on the target: {error}"[:2000]
    except (ValueError, OSError, onnx.checker.ValidationError) as error:
        entry["error"] = f"localisation failed: {type(error).__name__}: {error}"[:2000]
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # the marked copies are not needed after
    return entry
