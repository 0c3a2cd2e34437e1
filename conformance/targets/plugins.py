"""Third-party targets: installed adapters (entry points) and any ``onnx.backend`` Backend.

Entry points: a vendor package declares, in its pyproject.toml::

    [project.entry-points."conformance.targets"]
    acme = "acme_runtime:AcmeTarget"

and, once installed, ``--target acme`` selects it (``acme:key=value`` for the options its class
declares in ``OPTIONS``; any other is refused).
The entry point's name is the target's base name, its value ``module:Class`` of a ``Target``
subclass (see examples/vendor_adapter/). Entry points are validated when read; the module is
imported only when its target is selected.

Backends: ``backend:<package.module>:<Class>`` runs the pack through any
``onnx.backend.base.Backend`` (``prepare`` then ``BackendRep.run``), option ``device`` (CPU).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from onnx.backend.base import Backend

from conformance.targets.interface import (
    AdapterError,
    InvalidTargetError,
    Option,
    Outputs,
    Session,
    Target,
    TargetError,
    TargetInfo,
)

ENTRY_POINT_GROUP = "conformance.targets"
BACKEND_PREFIX = "backend:"

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
IMPORT_PATH = re.compile(rf"^(?P<module>{_IDENT}(?:\.{_IDENT})*):(?P<attr>{_IDENT})$")
TARGET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(?::[A-Za-z0-9][A-Za-z0-9_.\-]*)*$")
RESERVED_PREFIXES = ("defect:", BACKEND_PREFIX)


class PluginError(AdapterError):
    """A third-party target is declared or built wrongly (the message says where and how)."""


@dataclass(frozen=True)
class PluginTarget:
    """One ``conformance.targets`` entry point, validated."""

    name: str  # the target's base name
    value: str  # "module:Class"
    distribution: str  # "name version" of the package that declares it

    @property
    def origin(self) -> str:
        return f"entry point {self.name!r} = {self.value!r} (distribution {self.distribution})"

    def target_class(self) -> type[Target]:
        module_name, class_name = self.value.split(":")
        return _import_class(
            module_name, class_name, Target, f"target {self.name!r}: {self.origin}"
        )


def _import_class(module_name: str, class_name: str, base: type, where: str) -> type:
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # ImportError, or anything the module raises while importing
        raise PluginError(
            f"{where}: cannot import module {module_name!r}: {type(error).__name__}: {error}"
        ) from error
    cls = getattr(module, class_name, None)
    if cls is None:
        raise PluginError(f"{where}: module {module_name!r} has no attribute {class_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise PluginError(
            f"{where}: {module_name}:{class_name} is not a "
            f"{base.__module__}.{base.__qualname__} subclass"
        )
    return cls


def _distribution_label(entry_point) -> str:
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return "unknown"
    name = dist.metadata["Name"] or "unknown"
    return f"{name} {dist.version}"


def scan_entry_points() -> tuple[dict[str, PluginTarget], dict[str, str]]:
    """Read the entry-point group: (valid targets by name, rejected entries by name -> why)."""
    from conformance.targets import BUILTIN_TARGETS, DEFECT_TARGETS

    valid: dict[str, PluginTarget] = {}
    rejected: dict[str, str] = {}
    seen: dict[str, list[str]] = {}
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        name, value = entry_point.name.strip(), entry_point.value.strip()
        dist = _distribution_label(entry_point)
        where = (
            f"entry point {name!r} = {value!r} in group {ENTRY_POINT_GROUP!r} (distribution {dist})"
        )
        seen.setdefault(name, []).append(dist)
        if not TARGET_NAME.match(name):
            rejected[name] = (
                f"{where}: the name must be a target base name like 'acme' or 'acme:npu' "
                "(letters, digits, '_', '.', '-', parts joined by ':', no '=')"
            )
        elif (
            name in BUILTIN_TARGETS or name in DEFECT_TARGETS or name.startswith(RESERVED_PREFIXES)
        ):
            rejected[name] = f"{where}: the name is reserved for a built-in target; choose another"
        elif not IMPORT_PATH.match(value):
            rejected[name] = f"{where}: the value must be 'module:Class' (a Target subclass)"
        elif len(seen[name]) > 1:
            rejected[name] = (
                f"entry point {name!r} in group {ENTRY_POINT_GROUP!r} is declared by "
                f"several distributions ({', '.join(seen[name])}); uninstall all but one"
            )
        else:
            valid[name] = PluginTarget(name, value, dist)
    for name in rejected:
        valid.pop(name, None)
    return valid, rejected


def entry_point(base: str) -> PluginTarget | None:
    """The installed entry point whose name is ``base``, or None; PluginError if it is bad."""
    valid, rejected = scan_entry_points()
    if base in rejected:
        raise PluginError(rejected[base])
    return valid.get(base)


# -- onnx.backend ---------------------------------------------------------------------------


class BackendSession(Session):
    def __init__(self, rep, input_names: list[str], output_names: list[str]) -> None:
        super().__init__(input_names)
        self._rep = rep
        self._output_names = output_names

    def _run(self, inputs: dict[str, np.ndarray]) -> Outputs:
        outputs = list(self._rep.run([inputs[name] for name in self.input_names]))
        if len(outputs) != len(self._output_names):
            raise TargetError(
                f"the backend returned {len(outputs)} outputs; the graph has "
                f"{len(self._output_names)} ({', '.join(self._output_names)})"
            )
        return [(name, np.asarray(array)) for name, array in zip(self._output_names, outputs)]


class BackendTarget(Target):
    """``backend:<package.module>:<Class>[:device=CPU]``: an ``onnx.backend.base.Backend``."""

    OPTIONS = (
        Option(
            "device",
            str,
            "CPU",
            "the device passed to the backend's prepare() and supports_device()",
            pattern=r"[A-Za-z0-9_.\-]+",
        ),
    )

    def __init__(self, name: str, options: Mapping[str, str] | None = None) -> None:
        super().__init__(name, options)
        path = self.base_name[len(BACKEND_PREFIX) :]
        if not self.base_name.startswith(BACKEND_PREFIX) or not IMPORT_PATH.match(path):
            raise InvalidTargetError(
                f"{name}: select a backend as 'backend:package.module:Class' "
                "(an onnx.backend.base.Backend subclass)"
            )
        self.import_path = path

    def backend_class(self) -> type[Backend]:
        from onnx.backend.base import Backend

        module_name, class_name = self.import_path.split(":")
        cls: type[Backend] = _import_class(
            module_name, class_name, Backend, f"target {self.name!r}"
        )
        return cls

    def unavailable_reason(self) -> str | None:
        module_name = self.import_path.split(":")[0]
        try:
            importlib.import_module(module_name)
        except ImportError as error:
            return f"backend module {module_name!r} cannot be imported here: {error}"
        backend = self.backend_class()  # present but wrong: a PluginError, not a skip
        device = self.options["device"]
        try:
            supported = backend.supports_device(device)
        except Exception as error:
            raise PluginError(
                f"{self.name}: supports_device({device!r}) failed: {type(error).__name__}: {error}"
            ) from error
        return None if supported else f"{self.import_path} does not support device {device!r}"

    def describe(self) -> TargetInfo:
        module_name = self.import_path.split(":")[0]
        top = module_name.split(".")[0]
        try:
            version = str(getattr(importlib.import_module(top), "__version__", "") or "unknown")
        except ImportError:
            version = "unavailable"
        return TargetInfo(
            self.name,
            self.import_path,
            version,
            self.options["device"].lower(),
            {"backend": self.import_path, "device": self.options["device"]},
        )

    def _load(self, model_path: Path) -> Session:
        import onnx

        backend = self.backend_class()
        device = self.options["device"]
        model = onnx.load(str(model_path))
        if not backend.is_compatible(model, device=device):
            raise TargetError(f"{self.import_path}.is_compatible() refuses this model on {device}")
        rep = backend.prepare(model, device=device)
        if rep is None:
            raise TargetError(f"{self.import_path}.prepare() returned None (not implemented?)")
        initializers = {init.name for init in model.graph.initializer}
        input_names = [i.name for i in model.graph.input if i.name not in initializers]
        return BackendSession(rep, input_names, [o.name for o in model.graph.output])
