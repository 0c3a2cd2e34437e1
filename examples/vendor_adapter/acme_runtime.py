"""Acme runtime: an example third-party target for the conformance suite.

ONNX Runtime CPU stands in for the vendor's runtime; a real adapter replaces the calls marked
"vendor" with its own. Installed with this folder's pyproject.toml, it is selected as
``conformance run --target acme``. docs/vendor-guide.md explains every line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conformance.targets.interface import Outputs, Session, Target, TargetInfo


class AcmeSession(Session):
    def __init__(self, compiled) -> None:
        super().__init__([i.name for i in compiled.get_inputs()])  # required: the graph's inputs
        self._compiled = compiled
        self._output_names = [o.name for o in compiled.get_outputs()]

    def _run(self, inputs: dict[str, np.ndarray]) -> Outputs:
        # Every graph output, in graph order, as (name, numpy array); raise on failure.
        arrays = self._compiled.run(self._output_names, inputs)  # vendor
        return [(name, np.asarray(array)) for name, array in zip(self._output_names, arrays)]


class AcmeTarget(Target):
    # No OPTIONS: the suite refuses any option in the name (acme:key=value) for this target.

    def unavailable_reason(self) -> str | None:  # a skip, not a failure: runtime or device absent
        try:
            import onnxruntime  # noqa: F401  (vendor)
        except ImportError:
            return "the acme runtime is not installed: pip install onnxruntime"
        return None

    def describe(self) -> TargetInfo:
        import onnxruntime  # vendor

        return TargetInfo(
            name=self.name,  # the name as selected, e.g. "acme"
            runtime="acme",
            version=onnxruntime.__version__,  # vendor: your runtime's version
            device="cpu",
            options=dict(self.options),  # every setting that changes numerics
        )

    def _load(self, model_path: Path) -> Session:
        import onnxruntime  # vendor

        compiled = onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
        return AcmeSession(compiled)
