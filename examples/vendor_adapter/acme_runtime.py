"""Acme runtime: an example third-party target for the conformance suite.

ONNX Runtime CPU stands in for the vendor's runtime; a real adapter replaces the
``onnxruntime`` calls (marked "vendor") with its own. Installed with this folder's
pyproject.toml, it is selected as ``conformance run --target acme``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conformance.targets.interface import Outputs, Session, Target, TargetError, TargetInfo


class AcmeSession(Session):
    def __init__(self, compiled) -> None:
        super().__init__([i.name for i in compiled.get_inputs()])  # the graph's input names
        self._compiled = compiled
        self._output_names = [o.name for o in compiled.get_outputs()]

    def _run(self, inputs: dict[str, np.ndarray]) -> Outputs:
        # Every graph output, in graph order, as (name, numpy array); raise on failure.
        arrays = self._compiled.run(self._output_names, inputs)  # vendor
        return list(zip(self._output_names, arrays))


class AcmeTarget(Target):
    def __init__(self, name: str, options: dict[str, str]) -> None:
        if options:  # accept only options you record in describe(): they change numerics
            raise TargetError(f"{name}: takes no options, got {sorted(options)}")
        super().__init__(name, options)

    def unavailable_reason(self) -> str | None:  # a skip, not a failure: runtime or device absent
        try:
            import onnxruntime  # noqa: F401  (vendor)
        except ImportError:
            return "the acme runtime is not installed: pip install onnxruntime"
        return None

    def describe(self) -> TargetInfo:
        import onnxruntime  # vendor

        return TargetInfo(self.name, "acme", onnxruntime.__version__, "cpu", dict(self.options))

    def _load(self, model_path: Path) -> Session:
        import onnxruntime  # vendor

        compiled = onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
        return AcmeSession(compiled)
