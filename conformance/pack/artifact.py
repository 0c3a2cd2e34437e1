"""Build one artifact folder: export, validate, write ONNX test data, check export fidelity."""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnx

from conformance.compare.judge import Expected, Judgement, judge
from conformance.compare.tolerance import tolerance_for
from conformance.export import EXPORTERS, ExportError
from conformance.export.tf2onnx_export import ERFC_OPTION
from conformance.pack import layout
from conformance.targets.interface import TargetError
from conformance.targets.reference import ReferenceTarget
from reference_models.interface import Params, TensorSpec, keras_layout, layout_permutation

REPO_ROOT = Path(__file__).resolve().parents[2]
NUMPY_DTYPES: dict[int, str] = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.FLOAT16: "float16",
}


def finding(kind: str, message: str, **evidence: Any) -> dict[str, Any]:
    """kind: export-failed, invalid-onnx, exporter-workaround, io-mismatch, fidelity."""
    return {"kind": kind, "attributed_to": "exporter", "message": message, "evidence": evidence}


def checker_error(path: Path) -> str | None:
    try:
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    except Exception as error:  # the checker raises several types; all mean "invalid"
        return f"{type(error).__name__}: {error}".strip()[:2000]
    return None


def has_erfc(path: Path) -> bool:
    return any(node.op_type == "Erfc" for node in onnx.load(str(path)).graph.node)


def export_once(
    family: ModuleType, params: Params, exporter: str, path: Path, options: dict[str, Any]
):
    return EXPORTERS[exporter](family, params, path, options)


def same_bytes_on_reexport(family, params, exporter, path: Path, options) -> bool:
    with tempfile.TemporaryDirectory() as scratch:
        again = Path(scratch) / layout.MODEL_ONNX
        export_once(family, params, exporter, again, options)
        return again.read_bytes() == path.read_bytes()


def without_metadata(path: Path) -> bytes:
    """The model's bytes with every doc_string and metadata_props cleared: what computes, not
    what the exporter noted about where it came from."""
    model = onnx.load(str(path))
    model.ClearField("doc_string")
    model.ClearField("metadata_props")
    graphs = [model.graph]
    while graphs:
        graph = graphs.pop()
        graph.ClearField("doc_string")
        graph.ClearField("metadata_props")
        for node in graph.node:
            node.ClearField("doc_string")
            node.ClearField("metadata_props")
            graphs += [a.g for a in node.attribute if a.HasField("g")] + [
                g for a in node.attribute for g in a.graphs
            ]
    return model.SerializeToString()


def embeds_source_paths(path: Path) -> bool:
    """The exporter wrote this checkout's absolute path into the file (stack traces in metadata)."""
    return str(REPO_ROOT).encode() in path.read_bytes()


def io_record(
    tensor: TensorSpec, value_info: onnx.ValueInfoProto, channels_last: bool
) -> dict[str, Any]:
    artifact_layout = keras_layout(tensor.layout) if channels_last else tensor.layout
    tensor_type = value_info.type.tensor_type
    elem_type = int(tensor_type.elem_type)
    return {
        "name": value_info.name,
        "spec_name": tensor.name,
        "dtype": NUMPY_DTYPES.get(elem_type, str(elem_type)),
        "shape": [d.dim_param or d.dim_value for d in tensor_type.shape.dim],
        "layout": artifact_layout,
        "transpose": list(layout_permutation(tensor.layout, artifact_layout)),
    }


def write_test_data(
    directory: Path,
    plan: list[dict],
    golden: dict[str, np.ndarray],
    inputs: list[dict],
    outputs: list[dict],
) -> None:
    for entry in plan:
        data_dir = layout.data_set_dir(directory, entry["index"])
        data_dir.mkdir(parents=True, exist_ok=True)
        for kind, records in (("input", inputs), ("output", outputs)):
            for i, record in enumerate(records):
                array = golden[layout.golden_key(entry["index"], kind, record["spec_name"])]
                array = np.transpose(array, record["transpose"]).astype(record["dtype"])
                layout.write_tensor(data_dir / f"{kind}_{i}.pb", array, record["name"])


def fidelity_record(judgement: Judgement, index: int) -> dict[str, Any]:
    return {
        "test_data_set": index,
        "passed": judgement.passed,
        "margin": judgement.margin,
        "problems": judgement.all_problems,
        "outputs": {o.name: o.stats.as_dict() if o.stats else None for o in judgement.outputs},
    }


def ort_second_opinion(
    path: Path, feeds: dict[str, np.ndarray], expected: list[Expected], tolerance
) -> Judgement | None:
    """The same data set on ONNX Runtime (CPU), when the reference evaluator raised: a pass
    means the artifact is faithful and the failure is the evaluator's. None if ORT fails too."""
    import onnxruntime

    from conformance.targets.ort import OrtCpuTarget

    onnxruntime.set_default_logger_severity(4)  # its failure is returned, not logged (build)
    try:
        return judge(OrtCpuTarget("ort:cpu", {}).load(path).run(feeds), expected, tolerance)
    except TargetError:
        return None


def describe_set(entry: dict) -> str:
    """ "batch 4, seq 20", and the stress set's name if it is one."""
    text = f"batch {entry['batch']}, seq {entry['seq_len']}"
    return text + (f", stress {entry['stress']}" if entry.get("stress") else "")


def check_fidelity(
    path: Path,
    plan: list[dict],
    golden: dict,
    inputs: list[dict],
    outputs: list[dict],
    model: str,
    tolerance_class: str,
    precision: str,
):
    """Run every data set on the ONNX reference evaluator against the float64 golden, under the
    tolerance of ``precision`` (the artifacts' precision: fp32 for every pack so far). Where the
    evaluator raises on a set, ONNX Runtime gives a second opinion: if it matches the golden
    the set passes (the record names the evaluator and keeps the reference's error), else the
    set is a fidelity finding as before."""
    tolerance = tolerance_for(precision, model, tolerance_class)
    records, findings = [], []
    try:
        session = ReferenceTarget("reference", {}).load(path)
    except TargetError as error:
        return [], [finding("fidelity", f"the reference evaluator refused the artifact: {error}")]
    for entry in plan:
        index = entry["index"]
        feeds = {
            r["name"]: np.transpose(
                golden[layout.golden_key(index, "input", r["spec_name"])], r["transpose"]
            ).astype(r["dtype"])
            for r in inputs
        }
        expected = [
            Expected(
                r["name"],
                r["dtype"],
                np.transpose(
                    golden[layout.golden_key(index, "output", r["spec_name"])], r["transpose"]
                ),
            )
            for r in outputs
        ]
        try:
            judgement = judge(session.run(feeds), expected, tolerance)
        except TargetError as error:
            second = ort_second_opinion(path, feeds, expected, tolerance)
            if second is not None and second.passed:
                # The artifact computes the golden; the reference evaluator could not run it
                # (onnx 1.23: GatherElements over an axis of 64 or more hits numpy's choose
                # limit). Not the exporter's fault: the reference target's own checks fail.
                records.append(
                    {
                        **fidelity_record(second, index),
                        "evaluator": "onnxruntime (onnx.reference failed)",
                        "reference_error": str(error)[:2000],
                    }
                )
                continue
            records.append({"test_data_set": index, "passed": False, "error": str(error)[:2000]})
            findings.append(
                finding(
                    "fidelity",
                    f"set {index} ({describe_set(entry)}) "
                    f"fails on the reference evaluator: {str(error)[:500]}",
                )
            )
            continue
        records.append(fidelity_record(judgement, index))
        if not judgement.passed:
            findings.append(
                finding(
                    "fidelity",
                    f"set {index} ({describe_set(entry)}) "
                    "differs from the golden on the reference evaluator: "
                    + "; ".join(judgement.all_problems),
                    margin=judgement.margin,
                )
            )
    return records, findings


def build_artifact(
    family: ModuleType,
    params: Params,
    exporter: str,
    directory: Path,
    plan: list[dict],
    golden: dict,
    precision: str,
) -> dict[str, Any]:
    spec = family.SPEC
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / layout.MODEL_ONNX
    options: dict[str, Any] = {}
    findings: list[dict[str, Any]] = []
    try:
        result = export_once(family, params, exporter, path, options)
        invalid = checker_error(path)
        if invalid and exporter == "tf2onnx" and has_erfc(path):
            findings.append(
                finding(
                    "exporter-workaround",
                    "tf2onnx emitted the undefined op Erfc (invalid ONNX); re-exported with the "
                    f"named option {ERFC_OPTION}",
                    checker=invalid,
                )
            )
            options = {ERFC_OPTION: True}
            result = export_once(family, params, exporter, path, options)
            invalid = checker_error(path)
        reproducible = same_bytes_on_reexport(family, params, exporter, path, options)
    except ExportError as error:
        return {"exporter": exporter, "findings": [finding("export-failed", str(error)[:2000])]}
    model = onnx.load(str(path), load_external_data=False)
    # The file exists: it is an ONNX backend test case; its data.json carries our tolerance.
    tolerance = tolerance_for(precision, spec.name, spec.tolerance_class)
    layout.write_case_tolerance(directory, tolerance.rtol, tolerance.atol)
    record: dict[str, Any] = {
        "exporter": exporter,
        "exporter_version": result.exporter_version,
        "options": result.options,
        "opset": next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None),
        "valid_onnx": invalid is None,
        "reproducible_bytes": reproducible,
        "embeds_source_paths": embeds_source_paths(path),
    }
    if invalid:
        findings.append(
            finding(
                "invalid-onnx", f"onnx.checker (full_check) rejects the artifact: {invalid[:500]}"
            )
        )
    graph_inputs = [
        i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}
    ]
    if len(graph_inputs) != len(spec.inputs) or len(model.graph.output) != len(spec.outputs):
        findings.append(
            finding(
                "io-mismatch",
                f"artifact has {len(graph_inputs)} inputs / {len(model.graph.output)} outputs, "
                f"the model has {len(spec.inputs)} / {len(spec.outputs)}",
                inputs=[i.name for i in graph_inputs],
                outputs=[o.name for o in model.graph.output],
            )
        )
        return {**record, "findings": findings}
    channels_last = result.layout == "keras"
    record["inputs"] = [io_record(t, v, channels_last) for t, v in zip(spec.inputs, graph_inputs)]
    record["outputs"] = [
        io_record(t, v, channels_last) for t, v in zip(spec.outputs, model.graph.output)
    ]
    write_test_data(directory, plan, golden, record["inputs"], record["outputs"])
    record["fidelity"], fidelity_findings = check_fidelity(
        path,
        plan,
        golden,
        record["inputs"],
        record["outputs"],
        spec.name,
        spec.tolerance_class,
        precision,
    )
    return {**record, "findings": findings + fidelity_findings}
