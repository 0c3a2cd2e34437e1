"""Targets: name -> adapter. ``base[:key=value...]``, e.g. ``ort:cpu:opt=disabled``.

``parse_target_name`` (interface.py) is the one parser of names; ``get_target`` builds a target
from its name (bad input: InvalidTargetError, before any check); ``choose_targets`` is a run's
selection; ``listing`` is what ``conformance targets`` shows (every target and its options).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Sequence
from dataclasses import dataclass

from conformance.targets.defects import KINDS as DEFECT_KINDS
from conformance.targets.interface import (
    AdapterError,
    InvalidTargetError,
    Option,
    Target,
    TargetError,
    TargetInfo,
    TargetName,
    TargetUnavailable,
    parse_target_name,
    validate_options,
)

# Base name -> "module:Class". Options after the base name are passed to the class.
BUILTIN_TARGETS: dict[str, str] = {
    "ort:cpu": "conformance.targets.ort:OrtCpuTarget",
    "ort:cuda": "conformance.targets.ort_gpu:OrtCudaTarget",
    "ort:tensorrt": "conformance.targets.ort_gpu:OrtTensorrtTarget",
    "reference": "conformance.targets.reference:ReferenceTarget",
    "openvino:cpu": "conformance.targets.openvino:OpenVinoCpuTarget",
    "openvino:gpu": "conformance.targets.openvino:OpenVinoGpuTarget",
    "tract": "conformance.targets.tract:TractTarget",
    "iree:llvm-cpu": "conformance.targets.iree:IreeCpuTarget",
    "iree:cuda": "conformance.targets.iree:IreeCudaTarget",
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
    f"defect:{kind}": "conformance.targets.defects:DefectTarget" for kind in DEFECT_KINDS
}


class UnknownTargetError(InvalidTargetError):
    """No target has this base name (built-in, negative control, entry point or backend)."""


def known_names() -> list[str]:
    from conformance.targets import plugins

    return [
        *BUILTIN_TARGETS,
        *DEFECT_TARGETS,
        *plugins.scan_entry_points()[0],
        "backend:<package.module>:<Class>",
    ]


def target_class(parsed: TargetName) -> type[Target]:
    """The adapter class of a parsed name; UnknownTargetError when none has its base name."""
    from conformance.targets import plugins

    known = {**BUILTIN_TARGETS, **DEFECT_TARGETS}
    if parsed.base in known:
        module_name, class_name = known[parsed.base].split(":")
        cls: type[Target] = getattr(importlib.import_module(module_name), class_name)
        return cls
    if parsed.base.startswith(plugins.BACKEND_PREFIX):
        return plugins.BackendTarget
    plugin = plugins.entry_point(parsed.base)
    if plugin is None:
        names = known_names()
        close = difflib.get_close_matches(parsed.base, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownTargetError(f"unknown target {parsed.raw!r}{hint}; known: {', '.join(names)}")
    return plugin.target_class()


def get_target(name: str) -> Target:
    """Built-in and defect targets first, then installed entry points, then ``backend:<path>``.

    InvalidTargetError for a malformed name, an unknown target, option or value (checked
    against the class's declared OPTIONS before the adapter's own code runs); AdapterError
    when the adapter cannot be built.
    """
    parsed = parse_target_name(name)
    cls = target_class(parsed)
    declared = getattr(cls, "OPTIONS", ())
    if not isinstance(declared, tuple) or not all(isinstance(o, Option) for o in declared):
        raise AdapterError(
            f"target {name!r}: {cls.__module__}.{cls.__qualname__}.OPTIONS must be a tuple of "
            "conformance.targets.interface.Option, e.g. (Option('threads', int, 0, 'help'),)"
        )
    validate_options(name, declared, parsed.options)
    try:
        target = cls(name, dict(parsed.options))
    except TargetError:
        raise
    except Exception as error:
        raise AdapterError(
            f"target {name!r}: constructing {cls.__module__}.{cls.__qualname__} failed: "
            f"{type(error).__name__}: {error}"
        ) from error
    if not isinstance(getattr(target, "options", None), dict) or not hasattr(target, "name"):
        raise AdapterError(
            f"target {name!r}: {cls.__module__}.{cls.__qualname__}.__init__ did not call "
            "super().__init__(name, options)"
        )
    return target


def choose_targets(names: Sequence[str], extra: Sequence[str] = ()) -> list[Target]:
    """A run's targets: with ``names``, exactly those plus ``extra`` (available or not: an
    unavailable one is recorded as such); without, every DEFAULT_TARGETS entry and every
    ``extra`` one that is available here. A name given twice is taken once."""
    if names:
        return [get_target(name) for name in dict.fromkeys([*names, *extra])]
    candidates = [get_target(name) for name in dict.fromkeys([*DEFAULT_TARGETS, *extra])]
    return [target for target in candidates if target.availability() is None]


def all_target_names() -> list[str]:
    """Built-in targets, then installed entry-point targets (valid ones); no negative controls."""
    from conformance.targets.plugins import scan_entry_points

    return [*BUILTIN_TARGETS, *sorted(scan_entry_points()[0])]


@dataclass(frozen=True)
class TargetListing:
    """One row of ``conformance targets``: a target, whether it is usable here, its options."""

    name: str
    reason: str | None  # None: available here; else why not
    options: tuple[Option, ...]

    @property
    def available(self) -> bool:
        return self.reason is None


def listing() -> list[TargetListing]:
    """Every target (built-in, then installed) with its availability and declared options.

    A target that cannot even be built, and an entry point declared wrongly (a broken plug-in),
    is listed with the reason."""
    from conformance.targets.plugins import scan_entry_points

    rows = []
    for name in all_target_names():
        try:
            target = get_target(name)
            rows.append(TargetListing(name, target.unavailable_reason(), type(target).OPTIONS))
        except TargetError as error:
            rows.append(TargetListing(name, f"broken: {error}", ()))
    listed = {row.name for row in rows}
    for name, why in sorted(scan_entry_points()[1].items()):
        # An entry point that tries to shadow a built-in is listed apart from the built-in.
        label = f"{name} (entry point)" if name in listed else name
        rows.append(TargetListing(label, f"broken: {why}", ()))
    return rows


def render_listing(rows: Sequence[TargetListing]) -> str:
    """The listing as text: one line per target, then one indented line per option."""
    lines = []
    for row in rows:
        state = "available" if row.available else f"unavailable: {row.reason}"
        lines.append(f"{row.name:24s} {state}")
        for option in row.options:
            default = "the runtime's choice" if option.default is None else option.default
            text = f"    {option.name}=: {option.allowed()} (default: {default})"
            lines.append(f"{text}; {option.help}" if option.help else text)
    return "\n".join(lines)


__all__ = [
    "BUILTIN_TARGETS",
    "DEFAULT_TARGETS",
    "DEFECT_TARGETS",
    "AdapterError",
    "InvalidTargetError",
    "Option",
    "Target",
    "TargetError",
    "TargetInfo",
    "TargetListing",
    "TargetName",
    "TargetUnavailable",
    "UnknownTargetError",
    "all_target_names",
    "choose_targets",
    "get_target",
    "listing",
    "parse_target_name",
    "render_listing",
    "target_class",
]
