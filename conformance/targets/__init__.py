"""Targets: name -> adapter. ``name[:device][:key=value...]``, e.g. ``ort:cpu:opt=disabled``."""
from __future__ import annotations

import difflib
import importlib

from conformance.targets.interface import Target, TargetError, TargetInfo, TargetUnavailable

# Base name -> "module:Class". Options after the base name are passed to the class.
BUILTIN_TARGETS: dict[str, str] = {
    "ort:cpu": "conformance.targets.ort:OrtCpuTarget",
    "reference": "conformance.targets.reference:ReferenceTarget",
}


class UnknownTargetError(TargetError):
    pass


def parse_target_name(name: str) -> tuple[str, dict[str, str]]:
    parts = name.split(":")
    base = [p for p in parts if "=" not in p]
    options = dict(p.split("=", 1) for p in parts if "=" in p)
    return ":".join(base), options


def get_target(name: str) -> Target:
    base, options = parse_target_name(name)
    if base not in BUILTIN_TARGETS:
        close = difflib.get_close_matches(base, BUILTIN_TARGETS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownTargetError(
            f"unknown target {name!r}{hint}; known: {', '.join(BUILTIN_TARGETS)}"
        )
    module_name, class_name = BUILTIN_TARGETS[base].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(name, options)


__all__ = ["BUILTIN_TARGETS", "Target", "TargetError", "TargetInfo", "TargetUnavailable", "get_target"]
