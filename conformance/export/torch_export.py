"""torch.onnx exporters: the dynamo (torch.export) path and the TorchScript path."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from conformance.export.interface import ExportError, ExportResult
from reference_models.interface import BATCH, SEQ, Params

# torch.export specialises size-1 dims, so trace with batch 2 (and the second sequence length).
EXAMPLE_BATCH = 2
TORCHSCRIPT_OPSET = 17
# Exporter-native half export (the pack's fp16-native artifacts): the module in float16
# (``module.half()``) traced with float16 float inputs; recorded in the artifact's options.
HALF_OPTION = "half"


def _example_args(family: ModuleType, seq_index: int = 0, half: bool = False):
    import torch

    spec = family.SPEC
    seq_len = spec.seq_lens[seq_index] if spec.seq_lens else None
    inputs = family.make_inputs(EXAMPLE_BATCH, seq_len, 12345)
    floating = np.float16 if half else np.float32
    args = []
    for tensor in spec.inputs:
        array = inputs[tensor.name]
        array = array.astype(floating) if tensor.dtype == "float32" else array.astype(tensor.dtype)
        args.append(torch.from_numpy(np.ascontiguousarray(array)))
    return tuple(args)


def _float32_module(family: ModuleType, params: Params):
    return family.build_torch(params).float().eval()


def _module(family: ModuleType, params: Params, half: bool):
    """The float32 module, or with ``half`` the exporter-native half one: ``module.half()``
    (every float parameter and buffer float16), traced with float16 inputs on CPU."""
    module = _float32_module(family, params)
    return module.half() if half else module


def _dynamic_axes(family: ModuleType) -> dict[str, dict[int, str]]:
    axes: dict[str, dict[int, str]] = {}
    for tensor in (*family.SPEC.inputs, *family.SPEC.outputs):
        named = {i: d for i, d in enumerate(tensor.shape) if d in (BATCH, SEQ)}
        if named:
            axes[tensor.name] = named
    return axes


def _export(module, args, path: Path, **kwargs) -> str:
    import torch

    # torch.onnx logs a warning per missing torchvision op on every dynamo export.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    log = io.StringIO()
    try:
        # The exporter's warnings go into the artifact's log, not over the build's progress.
        with contextlib.redirect_stdout(log), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.onnx.export(module, args, str(path), **kwargs)
    except Exception as error:  # the exporter's own failure is a finding, not a crash
        raise ExportError(f"{type(error).__name__}: {error}") from error
    return log.getvalue() + "".join(f"{w.category.__name__}: {w.message}\n" for w in caught)


def export_torch_script(
    family: ModuleType, params: Params, path: Path, options: dict[str, Any]
) -> ExportResult:
    import torch

    spec = family.SPEC
    opset = options.get("opset", TORCHSCRIPT_OPSET)
    half = bool(options.get(HALF_OPTION))
    log = _export(
        _module(family, params, half),
        _example_args(family, half=half),
        path,
        dynamo=False,
        opset_version=opset,
        input_names=[t.name for t in spec.inputs],
        output_names=[t.name for t in spec.outputs],
        dynamic_axes=_dynamic_axes(family),
    )
    recorded: dict[str, Any] = {"dynamo": False, "opset": opset}
    if half:
        recorded[HALF_OPTION] = True
    return ExportResult(torch.__version__, "torch", recorded, log)


def _dynamic_shapes(family: ModuleType):
    from torch.export import Dim

    dims = {BATCH: Dim("batch", min=1, max=4096), SEQ: Dim("seq", min=1, max=4096)}
    return tuple(
        {i: dims[d] for i, d in enumerate(t.shape) if d in dims} for t in family.SPEC.inputs
    )


def export_torch_dynamo(
    family: ModuleType, params: Params, path: Path, options: dict[str, Any]
) -> ExportResult:
    import torch

    spec = family.SPEC
    # Trace at the longer sequence length so no size is mistaken for a constant.
    half = bool(options.get(HALF_OPTION))
    args = _example_args(family, seq_index=-1, half=half)
    kwargs: dict[str, Any] = {"opset_version": options["opset"]} if "opset" in options else {}
    log = _export(
        _module(family, params, half),
        args,
        path,
        dynamo=True,
        external_data=False,
        dynamic_shapes=_dynamic_shapes(family),
        input_names=[t.name for t in spec.inputs],
        output_names=[t.name for t in spec.outputs],
        **kwargs,
    )
    return ExportResult(torch.__version__, "torch", {"dynamo": True, **options}, log)
