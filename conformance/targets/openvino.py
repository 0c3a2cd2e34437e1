"""OpenVINO on its CPU or GPU plugin, at an explicit inference precision.

OpenVINO's CPU plugin quietly runs float32 models in bf16 on CPUs with AVX512_BF16/AMX (and its
GPU plugin in f16): the default here is an explicit f32 hint; ``precision=bf16|f16`` asks for
less, and describe() records the precision the compiled model reports, not the one asked for.

OpenVINO's own model cache (``model_cache=on``: its CACHE_DIR under the suite's cache folder,
``compile_cache.runtime_cache_dir``) is off by default: in 2026.4 a blob loaded from it computed
RotaryEmbedding wrongly (max abs error ~1 on onnx's node cases, exact when compiled afresh) and
kept fewer tensor names on its ports. With it on, what is tested is the cached blob, as a user
of the cache runs it: describe() records it.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from conformance.targets import compile_cache
from conformance.targets.interface import (
    Option,
    Outputs,
    Session,
    Target,
    TargetError,
    TargetInfo,
)
from conformance.targets.ort import THREADS

PRECISIONS = ("f32", "bf16", "f16")
MODEL_CACHE = Option(
    "model_cache",
    str,
    "off",
    "OpenVINO's own model cache (CACHE_DIR): on runs the blob it kept from an earlier compile",
    choices=("off", "on"),
)
PRECISION = Option(
    "precision",
    str,
    "f32",
    "INFERENCE_PRECISION_HINT; describe() records what the compiled model reports",
    choices=PRECISIONS,
)


def _in_force(compiled) -> dict[str, Any]:
    """The settings a compiled model reports that change numerics (or explain timings)."""
    precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    info: dict[str, Any] = {"inference_precision": precision}
    for key, prop in (
        ("execution_mode", "EXECUTION_MODE_HINT"),
        ("inference_num_threads", "INFERENCE_NUM_THREADS"),
    ):
        try:
            value = compiled.get_property(prop)
        except RuntimeError:  # not every plugin has every property (GPU: no thread count)
            continue
        info[key] = getattr(value, "name", value)
    return info


def graph_names(ports, wanted: list[str]) -> list[str]:
    """Each port's ONNX graph name: a port carries every tensor name folded into it (an
    Identity's input and output, say) and ``any_name`` may pick another one than the graph's."""
    names = []
    for index, port in enumerate(ports):
        held = port.get_names()
        preferred = [wanted[index]] if index < len(wanted) else []
        names.append(next((n for n in [*preferred, *wanted] if n in held), port.any_name))
    return names


class OpenVinoSession(Session):
    def __init__(
        self,
        compiled,
        graph_inputs: list[str],
        graph_outputs: list[str],
        cached: bool = False,
        model=None,
    ) -> None:
        # Names from the model as read (a blob from the cache keeps fewer names on its ports);
        # the compiled model's ports are in the same order.
        named = model if model is not None else compiled
        super().__init__(graph_names(named.inputs, graph_inputs))
        self._compiled = compiled
        self._cached = cached  # compiled with OpenVINO's model cache (CACHE_DIR)
        self._output_names = graph_names(named.outputs, graph_outputs)
        self._request = compiled.create_infer_request()

    # Read-only handles for the benchmarks' bound loops (contract P7).
    @property
    def native(self):
        """The ``openvino.CompiledModel``."""
        return self._compiled

    @property
    def output_names(self) -> list[str]:
        """Graph output names, in ``compiled.outputs`` order."""
        return list(self._output_names)

    def load_facts(self) -> dict[str, Any]:
        if not self._cached:
            return {"compile_cache": compile_cache.OFF}
        try:  # read-only, and not listed in SUPPORTED_PROPERTIES, yet answered (2026.4)
            hit = bool(self._compiled.get_property("LOADED_FROM_CACHE"))
        except RuntimeError:
            return {}
        return {"compile_cache": compile_cache.HIT if hit else compile_cache.MISS}

    def compiled_property(self, key: str) -> Any:
        """A property as the compiled model reports it (an element type by its short name)."""
        value = self._compiled.get_property(key)
        if hasattr(value, "get_type_name"):
            return value.get_type_name()
        return getattr(value, "name", value)

    def _run(self, inputs: dict[str, np.ndarray]) -> Outputs:
        ports = self._compiled.inputs
        results = self._request.infer(
            {port: inputs[name] for port, name in zip(ports, self.input_names)}
        )
        # Copies: the request reuses its output buffers on the next call.
        return [
            (name, np.array(results[port], copy=True))
            for port, name in zip(self._compiled.outputs, self._output_names)
        ]


class OpenVinoTarget(Target):
    """One OpenVINO device plugin; a subclass names the device and its options."""

    device = ""  # OpenVINO's device name, e.g. "CPU"
    OPTIONS: ClassVar[tuple[Option, ...]] = (PRECISION, MODEL_CACHE)

    @cached_property
    def _core(self):
        import openvino

        return openvino.Core()

    def compile_config(self, cached: bool = False) -> dict[str, str]:
        """The properties this target compiles with; ``cached``: with OpenVINO's model cache
        (CACHE_DIR) when the target's ``model_cache=on`` and the caches are not bypassed.
        Compile an in-memory model with it (``read_model``): a model compiled from a path is
        cached by its path, not its bytes."""
        return self._config(cached)

    def model_cache_dir(self) -> Path | None:
        """OpenVINO's CACHE_DIR for this target's compiles, or None (off or bypassed)."""
        if self.options.get("model_cache") != "on":
            return None
        return compile_cache.runtime_cache_dir("openvino")

    def _config(self, cached: bool = False) -> dict[str, str]:
        config = {"INFERENCE_PRECISION_HINT": self.options["precision"]}
        folder = self.model_cache_dir() if cached else None
        if folder is not None:  # OpenVINO's own model cache, keyed by model, device, config
            config["CACHE_DIR"] = str(folder)
        if self.options.get("threads"):  # 0 or not an option here: OpenVINO's own choice
            config["INFERENCE_NUM_THREADS"] = str(self.options["threads"])
        return config

    def unavailable_reason(self) -> str | None:
        try:
            import openvino  # noqa: F401
        except ImportError:
            return "openvino is not installed: pip install openvino"
        devices = self._core.available_devices
        if not any(d.split(".")[0] == self.device for d in devices):
            listed = ", ".join(devices) or "none"
            return f"OpenVINO has no {self.device} device here (available: {listed})"
        return None

    @cached_property
    def _probe(self) -> dict[str, Any]:
        """Compile a one-op model with this target's config and read back what is in force."""
        import openvino
        import openvino.opset13 as ops

        x = ops.parameter([1, 4], openvino.Type.f32)
        model = openvino.Model([ops.relu(x)], [x])
        return _in_force(self._core.compile_model(model, self.device, self._config()))

    def describe(self) -> TargetInfo:
        import openvino

        options: dict[str, Any] = {
            "precision_requested": self.options["precision"],
            "model_cache": "on" if self.model_cache_dir() is not None else "off",
        }
        if self.availability() is None:
            options.update(self._probe)
        return TargetInfo(
            self.name, "openvino", openvino.get_version(), self.device.lower(), options
        )

    def _load(self, model_path: Path) -> Session:
        config = self._config(cached=True)
        # From the model read in memory: OpenVINO keys its cache of a model compiled from a
        # path by the path (2026.4: new bytes at the same path were served the old blob),
        # and of an in-memory model by its content.
        model = self._core.read_model(str(model_path))
        compiled = self._core.compile_model(model, self.device, config)
        in_force = _in_force(compiled)["inference_precision"]
        if self.options["precision"] == "f32" and in_force != "f32":
            raise TargetError(f"asked OpenVINO for f32 but the compiled model runs {in_force}")
        import onnx

        graph = onnx.load(str(model_path), load_external_data=False).graph
        initializers = {tensor.name for tensor in graph.initializer}
        inputs = [i.name for i in graph.input if i.name not in initializers]
        outputs = [o.name for o in graph.output]
        return OpenVinoSession(compiled, inputs, outputs, "CACHE_DIR" in config, model)


class OpenVinoCpuTarget(OpenVinoTarget):
    device = "CPU"
    OPTIONS = (PRECISION, THREADS, MODEL_CACHE)


class OpenVinoGpuTarget(OpenVinoTarget):
    device = "GPU"  # no thread count: the GPU plugin has none
