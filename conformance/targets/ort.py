"""ONNX Runtime on CPU, at a chosen graph optimisation level (fusions change numerics)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from conformance.targets.interface import Outputs, Session, Target, TargetError, TargetInfo

OPT_LEVELS = ("all", "extended", "basic", "disabled")


class OrtSession(Session):
    def __init__(self, session) -> None:
        super().__init__([i.name for i in session.get_inputs()])
        self._session = session
        self._output_names = [o.name for o in session.get_outputs()]

    def _run(self, inputs: dict[str, np.ndarray]) -> Outputs:
        return list(zip(self._output_names, self._session.run(self._output_names, inputs)))


class OrtCpuTarget(Target):
    def __init__(self, name: str, options: dict[str, str]) -> None:
        unknown = options.keys() - {"opt", "threads"}
        if unknown:
            raise TargetError(f"{name}: unknown options {sorted(unknown)}; known: opt, threads")
        opt = options.get("opt", "all")
        if opt not in OPT_LEVELS:
            raise TargetError(f"{name}: opt must be one of {', '.join(OPT_LEVELS)}, not {opt!r}")
        super().__init__(name, {"opt": opt, "threads": options.get("threads", "0")})

    def unavailable_reason(self) -> str | None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return "onnxruntime is not installed: pip install onnxruntime"
        return None

    def describe(self) -> TargetInfo:
        import onnxruntime

        return TargetInfo(self.name, "onnxruntime", onnxruntime.__version__, "cpu",
                          {"graph_optimization_level": self.options["opt"],
                           "intra_op_num_threads": int(self.options["threads"]),
                           "providers": ["CPUExecutionProvider"]})

    def _load(self, model_path: Path) -> Session:
        import onnxruntime as ort

        levels = {
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        }
        options = ort.SessionOptions()
        options.graph_optimization_level = levels[self.options["opt"]]
        options.intra_op_num_threads = int(self.options["threads"])
        options.log_severity_level = 4  # errors come back in the exception; keep stderr clean
        return OrtSession(ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"]))
