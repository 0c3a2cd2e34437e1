"""Targets: name -> adapter. ``name[:device][:key=value...]``, e.g. ``ort:cpu:opt=disabled``."""

from __future__ import annotations

import difflib
import importlib

from conformance.targets.interface import Target, TargetError, TargetInfo, TargetUnavailable

# Base name -> "module:Class". Options after the base name are passed to the class.
BUILTIN_TARGETS: dict[str, str] = {
    "ort:cpu": "conformance.targets.ort:OrtCpuTarget",
    "ort:cuda": "conformance.targets.ort_gpu:OrtCudaTarget",
    "ort:tensorrt": "conformance.targets.ort_gpu:OrtTensorrtTarget",
    "reference": "conformance.targets.reference:ReferenceTarget",
    "openvino:cpu": "conformance.targets.openvino:OpenVinoTarget",
    "openvino:gpu": "conformance.targets.openvino:OpenVinoTarget",
    "tract": "conformance.targets.tract:TractTarget",
    "iree:llvm-cpu": "conformance.targets.iree:IreeTarget",
    "iree:cuda": "conformance.targets.iree:IreeTarget",
    # Live mode: the reference models themselves, eager (need the frameworks extra).
    "torch": "conformance.targets.native:TorchTarget",
    "torch:cuda": "conformance.targets.native:TorchTarget",
    "tf": "conformance.targets.native:TfTarget",
    "tf:gpu": "conformance.targets.native:TfTarget",
}

# What `conformance run` uses when no --target is given: every honest target, where available.
DEFAULT_TARGETS: tuple[str, ...] = (
    "ort:cpu",
    "ort:cpu:opt=basic",
    "ort:cpu:opt=disabled",
    "reference",
    "openvino:cpu",
    "tract",
    "iree:llvm-cpu",
    "ort:cuda",
    "ort:tensorrt",
    "openvino:gpu",
    "iree:cuda",
)

# Known-defective targets (negative controls): every one must be caught by the checks.
DEFECT_TARGETS: dict[str, str] = {
    f"defect:{kind}": "conformance.targets.defects:DefectTarget"
    for kind in (
        "noise",
        "fp16",
        "first-sample",
        "swap-outputs",
        "nan",
        "stale",
        "dtype",
        "crash",
        "hang",
    )
}


class UnknownTargetError(TargetError):
    pass


def parse_target_name(name: str) -> tuple[str, dict[str, str]]:
    parts = name.split(":")
    base = [p for p in parts if "=" not in p]
    options = dict(p.split("=", 1) for p in parts if "=" in p)
    return ":".join(base), options


def get_target(name: str) -> Target:
    """Built-in and defect targets first, then installed entry points, then ``backend:<path>``."""
    from conformance.targets import plugins

    base, options = parse_target_name(name)
    known = {**BUILTIN_TARGETS, **DEFECT_TARGETS}
    if base in known:
        module_name, class_name = known[base].split(":")
        return getattr(importlib.import_module(module_name), class_name)(name, options)
    if base.startswith(plugins.BACKEND_PREFIX):
        return plugins.BackendTarget(name, options)
    target = plugins.entry_point_target(base, name, options)
    if target is None:
        names = [*known, *plugins.scan_entry_points()[0], "backend:<package.module>:<Class>"]
        close = difflib.get_close_matches(base, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownTargetError(f"unknown target {name!r}{hint}; known: {', '.join(names)}")
    return target


def all_target_names() -> list[str]:
    """Built-in targets, then installed entry-point targets (valid ones); not the negative controls."""
    from conformance.targets.plugins import scan_entry_points

    return [*BUILTIN_TARGETS, *sorted(scan_entry_points()[0])]


__all__ = [
    "BUILTIN_TARGETS",
    "DEFAULT_TARGETS",
    "DEFECT_TARGETS",
    "Target",
    "TargetError",
    "TargetInfo",
    "TargetUnavailable",
    "get_target",
]
