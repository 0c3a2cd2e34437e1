"""What the pack exercises: op types per artifact, the value ranges their inputs reach, and the
padding traps that survived export. Read by scripts/pack_coverage.py (the table in
spec/coverage.md) and by the tests that keep that table current.

Op types are counted over every node, subgraphs (Loop/If/Scan bodies) included. Input ranges
are measured with ONNX Runtime (optimisations off, so every node's output is still there) on
each artifact's own test data: for each node, the smallest and largest value of its first
input, when that input is a float tensor computed from the model's inputs (not a weight).
An artifact ONNX Runtime refuses (invalid ONNX) still counts its op types; its ranges are
"not measured".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from conformance.pack.load import Artifact, Pack

SAME_AUTO_PADS = (b"SAME_UPPER", b"SAME_LOWER", "SAME_UPPER", "SAME_LOWER")
PADDED_OPS = ("Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool")


def walk_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node of the graph and of its subgraphs."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.HasField("g"):
                yield from walk_nodes(attribute.g)
            for sub in attribute.graphs:
                yield from walk_nodes(sub)


def op_types(model: onnx.ModelProto) -> set[str]:
    """Op types of the model, with the domain prefixed where it is not the default one."""
    return {
        node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        for node in walk_nodes(model.graph)
    }


def _asymmetric(pads: list[int]) -> bool:
    half = len(pads) // 2
    return len(pads) % 2 == 0 and list(pads[:half]) != list(pads[half:])


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attribute.t)
    return values


def asymmetric_padding(path: Path, feeds: dict[str, np.ndarray] | None = None) -> list[str]:
    """One line per node that pads asymmetrically: a Conv/pool with unequal begin/end ``pads``
    or a SAME_UPPER/SAME_LOWER ``auto_pad``, or a Pad whose pads are unequal. A Pad's pads that
    the graph computes (TorchScript builds them with Concat/Slice) are evaluated with the ONNX
    reference evaluator on ``feeds``."""
    model = onnx.load(str(path))
    constants = _constants(model.graph)
    found, computed = [], []
    for node in model.graph.node:
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type in PADDED_OPS:
            if attributes.get("auto_pad") in SAME_AUTO_PADS:
                auto_pad = attributes["auto_pad"]
                text = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
                found.append(f"{node.op_type} {node.name}: auto_pad {text}")
            elif _asymmetric(list(attributes.get("pads", []))):
                found.append(f"{node.op_type} {node.name}: pads {list(attributes['pads'])}")
        elif node.op_type == "Pad":
            pads = attributes.get("pads")  # opset < 11 keeps them in an attribute
            if pads is None and len(node.input) > 1:
                if node.input[1] in constants:
                    pads = constants[node.input[1]].tolist()
                else:
                    computed.append((node, node.input[1]))
                    continue
            if pads is not None and _asymmetric(list(pads)):
                found.append(f"Pad {node.name}: pads {list(pads)}")
    if computed and feeds is not None:
        from onnx.reference import ReferenceEvaluator

        values = ReferenceEvaluator(model).run([name for _, name in computed], feeds)
        for (node, _), pads in zip(computed, values):
            if _asymmetric(np.asarray(pads).tolist()):
                found.append(f"Pad {node.name}: pads {np.asarray(pads).tolist()} (computed)")
    return found


@dataclass
class OpCoverage:
    """One op type: the artifacts that contain it and the first-input ranges it saw."""

    op_type: str
    artifacts: set[str] = field(default_factory=set)  # "model/exporter"
    valid: set[str] = field(default_factory=set)  # those the ONNX checker accepts
    ordinary: list[float] = field(default_factory=list)  # [min, max] over ordinary sets
    stress: list[float] = field(default_factory=list)  # [min, max] over stress sets

    def see(self, low: float, high: float, stress: bool) -> None:
        span = self.stress if stress else self.ordinary
        if span:
            span[0], span[1] = min(span[0], low), max(span[1], high)
        else:
            span.extend([low, high])


def _first_input_ranges(
    artifact: Artifact, model: onnx.ModelProto, data_set: int
) -> dict[str, tuple[float, float]] | None:
    """op type -> (min, max) of its nodes' first inputs on one data set; None if ORT refuses."""
    import onnxruntime as ort

    ort.set_default_logger_severity(4)  # a refused artifact is "not measured", not a log line
    graph = model.graph
    weights = {i.name for i in graph.initializer} | {
        n.output[0] for n in graph.node if n.op_type == "Constant"
    }
    wanted = {
        node.input[0]
        for node in graph.node
        if node.input and node.input[0] and node.input[0] not in weights
    }
    existing = {o.name for o in graph.output}
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for name in sorted(wanted - existing - {i.name for i in graph.input}):
        probe.graph.output.append(onnx.ValueInfoProto(name=name))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4
    try:
        session = ort.InferenceSession(
            probe.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        feeds = dict(artifact.inputs(data_set))
        names = [o.name for o in session.get_outputs()]
        values = dict(zip(names, session.run(names, feeds)))
    except Exception:  # an artifact ORT refuses or fails on: its ranges are not measured
        return None
    values.update(feeds)
    ranges: dict[str, tuple[float, float]] = {}
    for node in graph.node:
        if not node.input or node.input[0] not in values:
            continue
        array = np.asarray(values[node.input[0]])
        if array.dtype.kind != "f" or array.size == 0 or not np.isfinite(array).any():
            continue
        finite = array[np.isfinite(array)]
        low, high = float(finite.min()), float(finite.max())
        old = ranges.get(node.op_type)
        ranges[node.op_type] = (low, high) if old is None else (min(old[0], low), max(old[1], high))
    return ranges


def exported(artifacts: list[Artifact]) -> list[Artifact]:
    """The artifacts the exporters wrote (fp32); the fp16/int8 ones derived from them hold the
    same ops plus casts and QuantizeLinear/DequantizeLinear, and are not counted."""
    return [a for a in artifacts if a.precision == "fp32"]


def pack_coverage(pack: Pack, measure: bool = True) -> dict[str, OpCoverage]:
    """Op type -> its coverage over the pack's exported artifacts."""
    table: dict[str, OpCoverage] = {}
    for model in pack.models:
        for artifact in exported(model.artifacts):
            if not artifact.exists:
                continue
            onnx_model = onnx.load(str(artifact.path))
            where = f"{model.name}/{artifact.exporter}"
            for op in op_types(onnx_model):
                entry = table.setdefault(op, OpCoverage(op))
                entry.artifacts.add(where)
                if artifact.record.get("valid_onnx"):
                    entry.valid.add(where)
            if not measure or not artifact.runnable:
                continue
            for data_set in model.data_sets:
                ranges = _first_input_ranges(artifact, onnx_model, data_set.index)
                for op, (low, high) in (ranges or {}).items():
                    table[op].see(low, high, data_set.stress is not None)
    return dict(sorted(table.items()))


def _span(span: list[float]) -> str:
    return f"[{span[0]:.2g}, {span[1]:.2g}]" if span else "-"


def coverage_markdown(table: dict[str, OpCoverage], pack: Pack) -> str:
    """The table spec/coverage.md holds (scripts/pack_coverage.py writes it)."""
    per_exporter: dict[str, set[str]] = defaultdict(set)
    for op, entry in table.items():
        for where in entry.artifacts:
            per_exporter[where.split("/", 1)[1]].add(op)
    artifacts = sum(1 for m in pack.models for a in exported(m.artifacts) if a.exists)
    valid = [op for op, entry in table.items() if entry.valid]
    invalid_only = [op for op, entry in table.items() if not entry.valid]
    lines = [
        "# Pack coverage",
        "",
        "Generated by `scripts/pack_coverage.py` from the committed pack (digest "
        f"`{pack.digest[:16]}`); `tests/test_pack.py::test_coverage_table_is_current` fails when"
        " it is stale. Do not edit by hand.",
        "",
        f"{len(table)} distinct op types over {artifacts} exported (fp32) artifacts (subgraphs"
        " included; the fp16/int8 artifacts derived from them are not counted); per"
        " exporter: "
        + ", ".join(f"{e} {len(ops)}" for e, ops in sorted(per_exporter.items()))
        + f". {len(valid)} of them occur in artifacts the ONNX checker accepts"
        + (
            f"; only in invalid ones: {', '.join(invalid_only)} (an exporter finding)."
            if invalid_only
            else "."
        ),
        "",
        "Ranges: the smallest and largest value of the op's first input (when it is a float"
        " tensor computed from the data, not a weight), measured with ONNX Runtime (no graph"
        " optimisation) on the artifacts' test data; ordinary data sets and stress data sets"
        " apart; `-`: not measured (inside a subgraph, or only in artifacts ONNX Runtime"
        " refuses).",
        "",
        "| op type | artifacts | models (exporters) | first input, ordinary sets |"
        " first input, stress sets |",
        "|---|---|---|---|---|",
    ]
    for op, entry in table.items():
        models: dict[str, list[str]] = defaultdict(list)
        for where in sorted(entry.artifacts):
            model, exporter = where.split("/", 1)
            models[model].append(exporter)
        where_text = "; ".join(f"{m} ({', '.join(e)})" for m, e in models.items())
        lines.append(
            f"| {op} | {len(entry.artifacts)} | {where_text} | {_span(entry.ordinary)} |"
            f" {_span(entry.stress)} |"
        )
    return "\n".join(lines) + "\n"
