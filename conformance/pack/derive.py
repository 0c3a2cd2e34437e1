"""Reduced-precision artifacts derived from one fp32 base artifact (issue 13, contract P1).

Build stage. Each variant is converted from the base's model.onnx by a maintained tool, never
patched: where the tool's output is invalid or the reference evaluator fails on it, that is a
finding attributed to the converter, as exporter findings are attributed to the exporter.

- ``fp16``: onnxconverter-common ``float16.convert_float_to_float16(keep_io_types=True)``;
- ``fp16-io``: the same with float16 inputs and outputs (test data inputs cast to float16);
- ``fp16-native``: not converted but exported natively in half by the base's own exporter
  (torch.onnx: ``module.half()`` traced with float16 inputs; TorchScript for a torch-script
  base, dynamo for a torch-dynamo one), float16 inputs and outputs like ``fp16-io``. Where torch
  cannot run or export the model in half on CPU, or its file is invalid, that is a finding
  attributed to the exporter;
- ``int8-tensor`` / ``int8-channel``: onnxruntime.quantization ``quantize_static``, QDQ format,
  QInt8 activations and QInt8 weights (symmetric weights), MinMax calibration over the pack's
  calibration inputs (calibration.npz: never a test data set), per_channel False / True.
  The base is first raised to opset ``INT8_OPSET`` by ``onnx.version_converter`` (recorded in
  the conversion's options): onnx's reference evaluator implements QuantizeLinear and
  DequantizeLinear from opset 19 only, and it is the evaluator that judges fidelity.
"""

from __future__ import annotations

import logging
import tempfile
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnx
from onnx import version_converter

from conformance.compare.tolerance import tolerance_for
from conformance.pack import layout
from conformance.pack.artifact import (
    NUMPY_DTYPES,
    check_fidelity,
    checker_error,
    embeds_source_paths,
    export_once,
    finding,
    same_bytes_on_reexport,
    write_test_data,
)
from reference_models.interface import Params

VARIANTS: dict[str, str] = {  # variant -> precision
    "fp16": "fp16",
    "fp16-io": "fp16",
    "fp16-native": "fp16",
    "int8-tensor": "int8",
    "int8-channel": "int8",
}
# The first of these whose fp32 artifact is valid and has no finding is the base: torch-script
# keeps the torch layout and writes no source paths into the file; torch-dynamo where
# torch-script has a finding (transformer_encoder: it bakes the sequence length in).
BASE_PREFERENCE = ("torch-script", "torch-dynamo", "tf2onnx")
# Variants whose float inputs and outputs are float16 (test data inputs cast to float16).
FLOAT16_IO = ("fp16-io", "fp16-native")
# The exporters that export natively in half (fp16-native), by base key.
NATIVE_HALF = {"torch-script": "torch.onnx (TorchScript)", "torch-dynamo": "torch.onnx (dynamo)"}
FP16_OPTIONS: dict[str, Any] = {"keep_io_types": True}  # the converter's other options: defaults
INT8_OPSET = 19
INT8_OPTIONS: dict[str, Any] = {
    "base_opset_raised_to_at_least": INT8_OPSET,
    "quant_format": "QDQ",
    "activation_type": "QInt8",
    "weight_type": "QInt8",
    "calibrate_method": "MinMax",
    "reduce_range": False,
}


def pick_base(artifacts: dict[str, dict[str, Any]]) -> str | None:
    for exporter in BASE_PREFERENCE:
        record = artifacts.get(exporter)
        if record and record.get("valid_onnx") and not record["findings"] and "outputs" in record:
            return exporter
    return None


def converter_finding(kind: str, message: str, **evidence: Any) -> dict[str, Any]:
    return {**finding(kind, message, **evidence), "attributed_to": "converter"}


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def convert_fp16(base: Path, out: Path, io_float16: bool) -> dict[str, Any]:
    from onnxconverter_common import float16

    options = {**FP16_OPTIONS, "keep_io_types": not io_float16}
    model = float16.convert_float_to_float16(onnx.load(str(base)), **options)
    onnx.save(model, str(out))
    return {
        "tool": "onnxconverter-common float16.convert_float_to_float16",
        "version": _version("onnxconverter-common"),
        "options": options,
    }


def export_fp16_native(
    family: ModuleType, params: Params, base_key: str, out: Path
) -> tuple[dict[str, Any], bool]:
    """The base's exporter again, on the module in half: (conversion record, same bytes when
    exported a second time in this process). Raises ExportError where torch cannot."""
    from conformance.export.torch_export import HALF_OPTION

    options = {HALF_OPTION: True}
    result = export_once(family, params, base_key, out, options)
    reproducible = same_bytes_on_reexport(family, params, base_key, out, options)
    return {
        "tool": NATIVE_HALF[base_key],
        "version": result.exporter_version,
        "options": result.options,
    }, reproducible


class _Reader:
    """onnxruntime.quantization.CalibrationDataReader over one batch of calibration feeds."""

    def __init__(self, feeds: dict[str, np.ndarray]) -> None:
        self._feeds: list[dict[str, np.ndarray]] | None = [feeds]

    def get_next(self) -> dict[str, np.ndarray] | None:
        return self._feeds.pop() if self._feeds else None

    def rewind(self) -> None:  # pragma: no cover - called by some calibrators only
        pass


def convert_int8(
    base: Path, out: Path, per_channel: bool, feeds: dict[str, np.ndarray]
) -> dict[str, Any]:
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its "consider pre-processing" advice, twice per model
    try:
        with tempfile.TemporaryDirectory() as scratch:  # the calibrator writes augmented models
            raised = Path(scratch) / "base.onnx"
            model = onnx.load(str(base))
            opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
            if opset < INT8_OPSET:
                model = version_converter.convert_version(model, INT8_OPSET)
            onnx.save(model, raised)
            _quantize(raised, out, per_channel, feeds, Path(scratch))
    finally:
        root.setLevel(level)
    return {
        "tool": "onnxruntime.quantization.quantize_static",
        "version": _version("onnxruntime"),
        "options": {**INT8_OPTIONS, "per_channel": per_channel},
        "calibration": {
            "file": layout.CALIBRATION_NPZ,
            "samples": int(next(iter(feeds.values())).shape[0]),
        },
    }


def _quantize(
    base: Path, out: Path, per_channel: bool, feeds: dict[str, np.ndarray], scratch: Path
) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(_Reader, CalibrationDataReader):
        pass

    quantize_static(
        str(base),
        str(out),
        Reader(feeds),
        quant_format=QuantFormat.QDQ,
        per_channel=per_channel,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        reduce_range=False,
        calibration_cache_path=scratch / "calibration.cache",
    )


def calibration_feeds(calibration: dict[str, np.ndarray], base: dict[str, Any]):
    """The calibration inputs in the base artifact's layout and dtypes, keyed by its names."""
    return {
        r["name"]: np.transpose(calibration[r["spec_name"]], r["transpose"]).astype(r["dtype"])
        for r in base["inputs"]
    }


def derive_artifact(
    family: ModuleType,
    base_key: str,
    base: dict[str, Any],
    base_dir: Path,
    variant: str,
    directory: Path,
    plan: list[dict],
    golden: dict,
    calibration: dict[str, np.ndarray],
    params: Params | None = None,
) -> dict[str, Any]:
    """Convert the base artifact (fp16-native: export the model in half with the base's
    exporter, from ``params``), validate it, write its test data, check its fidelity on the
    reference evaluator under the variant precision's tolerance."""
    spec = family.SPEC
    native = variant == "fp16-native"
    blame = "exporter" if native else "converter"
    reproducible: bool | None = None
    precision = VARIANTS[variant]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / layout.MODEL_ONNX
    record: dict[str, Any] = {
        "exporter": f"{base_key}.{variant}",
        "precision": precision,
        "derived_from": base_key,
        "exporter_version": base.get("exporter_version"),
        "options": base.get("options", {}),
    }
    try:
        if native:
            if params is None or base_key not in NATIVE_HALF:
                raise ValueError(f"no native half export for a {base_key} base")
            record["conversion"], reproducible = export_fp16_native(family, params, base_key, path)
            record["exporter_version"] = record["conversion"]["version"]
            record["options"] = record["conversion"]["options"]
        elif variant.startswith("fp16"):
            record["conversion"] = convert_fp16(
                base_dir / layout.MODEL_ONNX, path, variant == "fp16-io"
            )
        else:
            record["conversion"] = convert_int8(
                base_dir / layout.MODEL_ONNX,
                path,
                variant == "int8-channel",
                calibration_feeds(calibration, base),
            )
    except Exception as error:  # a converter's failure is its finding, whatever it raises
        message = f"{type(error).__name__}: {error}"[:2000]
        what = "half export" if native else "conversion"
        failed = {**finding("export-failed", f"{what} failed: {message}"), "attributed_to": blame}
        return {**record, "findings": [failed]}
    model = onnx.load(str(path), load_external_data=False)
    invalid = checker_error(path)
    tolerance = tolerance_for(precision, spec.name, spec.tolerance_class)
    layout.write_case_tolerance(directory, tolerance.rtol, tolerance.atol)
    record.update(
        {
            "opset": next(
                (o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None
            ),
            "valid_onnx": invalid is None,
            # fp16: a deterministic cast of the base's weights. int8: the scales are float32
            # results of ONNX Runtime calibration runs, which can differ across CPUs.
            # fp16-native: measured by exporting a second time, as the base's exporter is.
            "reproducible_bytes": reproducible
            if native
            else bool(base.get("reproducible_bytes")) and precision == "fp16",
            "embeds_source_paths": embeds_source_paths(path)
            if native
            else bool(base.get("embeds_source_paths")),
        }
    )
    if precision == "int8":
        record["bytes_note"] = (
            "quantisation scales come from ONNX Runtime float32 calibration runs; compare "
            "rebuilt int8 artifacts by their scales at a relative bound, not by bytes"
        )
    findings: list[dict[str, Any]] = []
    if invalid:
        findings.append(
            {
                **finding(
                    "invalid-onnx",
                    f"onnx.checker (full_check) rejects the artifact: {invalid[:500]}",
                ),
                "attributed_to": blame,
            }
        )
    graph_inputs = [
        i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}
    ]
    by_name = {v.name: v for v in [*graph_inputs, *model.graph.output]}
    record["inputs"], record["outputs"] = [
        [{**r, "dtype": _dtype(by_name.get(r["name"]), r["dtype"])} for r in base[key]]
        for key in ("inputs", "outputs")
    ]
    findings += io_dtype_findings(base, record, variant)
    if precision == "int8":
        findings += scale_findings(model)
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
    for found in fidelity_findings:
        found["attributed_to"] = blame
    return {**record, "findings": findings + fidelity_findings}


def task_accuracy(
    directory: Path,
    record: dict[str, Any],
    golden: dict,
    held_out: int,
    labels: np.ndarray,
    output: str,
) -> dict[str, Any]:
    """The artifact's accuracy on the held-out data set on the ONNX reference evaluator, and
    its top-1 agreement with the float64 golden: what a converter's precision loss costs before
    any runtime is involved."""
    from conformance.targets.interface import TargetError
    from conformance.targets.reference import ReferenceTarget

    feeds = {
        r["name"]: np.transpose(
            golden[layout.golden_key(held_out, "input", r["spec_name"])], r["transpose"]
        ).astype(r["dtype"])
        for r in record["inputs"]
    }
    name = next(r["name"] for r in record["outputs"] if r["spec_name"] == output)
    try:
        outputs = dict(
            ReferenceTarget("reference", {}).load(directory / layout.MODEL_ONNX).run(feeds)
        )
    except TargetError as error:
        return {"evaluator": "onnx.reference", "error": str(error)[:500]}
    predicted = np.argmax(np.asarray(outputs[name], dtype=np.float64), axis=1)
    expected = np.argmax(golden[layout.golden_key(held_out, "output", output)], axis=1)
    return {
        "evaluator": "onnx.reference",
        "test_data_set": held_out,
        "accuracy": float(np.mean(predicted == labels)),
        "top1_agreement": float(np.mean(predicted == expected)),
    }


def non_finite_scales(model: onnx.ModelProto) -> list[str]:
    """Names of the QuantizeLinear/DequantizeLinear scales that hold an inf or a NaN."""
    from onnx import numpy_helper

    initializers = {i.name: i for i in model.graph.initializer}
    names = {
        node.input[1]
        for node in model.graph.node
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 1
    }
    return sorted(
        name
        for name in names
        if name in initializers
        and not np.isfinite(numpy_helper.to_array(initializers[name]).astype(np.float64)).all()
    )


def scale_findings(model: onnx.ModelProto) -> list[dict[str, Any]]:
    """A quantisation scale that is not finite: the quantiser calibrated a tensor whose range
    holds an infinity (padding_traps: the -inf constant of the Pad before its max pool)."""
    names = non_finite_scales(model)
    if not names:
        return []
    return [
        converter_finding(
            "non-finite-scale",
            f"quantize_static wrote {len(names)} non-finite scale(s): {', '.join(names[:8])}"
            " (a calibrated range that holds an infinity); every value quantised with it is lost",
            scales=names,
        )
    ]


def io_dtype_findings(
    base: dict[str, Any], record: dict[str, Any], variant: str
) -> list[dict[str, Any]]:
    """An input or output whose dtype is not what the conversion promised: the base's for
    fp16 (keep_io_types) and int8, float16 for each float32 one of the base's for fp16-io and
    fp16-native."""
    wrong = []
    for key in ("inputs", "outputs"):
        for was, now in zip(base[key], record[key]):
            io16 = variant in FLOAT16_IO and was["dtype"] == "float32"
            want = "float16" if io16 else was["dtype"]
            if now["dtype"] != want:
                wrong.append(f"{key[:-1]} {now['name']} is {now['dtype']}, not {want}")
    if not wrong:
        return []
    return [
        {
            **finding(
                "io-mismatch",
                f"the {variant} conversion changed the artifact's interface: " + "; ".join(wrong),
            ),
            "attributed_to": "exporter" if variant == "fp16-native" else "converter",
        }
    ]


def _dtype(value_info: onnx.ValueInfoProto | None, fallback: str) -> str:
    if value_info is None:
        return fallback
    elem_type = int(value_info.type.tensor_type.elem_type)
    return NUMPY_DTYPES.get(elem_type, str(elem_type))
