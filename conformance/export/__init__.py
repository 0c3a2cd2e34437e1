"""Reference model -> ONNX exporters (build stage: needs torch, TensorFlow, tf2onnx).

``EXPORTERS`` maps an exporter name to the function that writes one artifact.
"""

from __future__ import annotations

from conformance.export.interface import Exporter, ExportError, ExportResult
from conformance.export.tf2onnx_export import export_tf2onnx
from conformance.export.torch_export import export_torch_dynamo, export_torch_script

EXPORTERS: dict[str, Exporter] = {
    "torch-dynamo": export_torch_dynamo,
    "torch-script": export_torch_script,
    "tf2onnx": export_tf2onnx,
}

__all__ = ["EXPORTERS", "ExportError", "ExportResult", "Exporter"]
