"""The ONNX reference evaluator: slow, but the spec's own reading of each operator."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conformance.targets.interface import Outputs, Session, Target, TargetInfo


class ReferenceSession(Session):
    def __init__(self, evaluator) -> None:
        super().__init__(list(evaluator.input_names))
        self._evaluator = evaluator

    def _run(self, inputs: dict[str, np.ndarray]) -> Outputs:
        outputs = self._evaluator.run(None, inputs)
        return list(zip(self._evaluator.output_names, (np.asarray(o) for o in outputs)))


class ReferenceTarget(Target):
    def unavailable_reason(self) -> str | None:
        return None  # onnx is a core dependency

    def describe(self) -> TargetInfo:
        import onnx

        return TargetInfo(self.name, "onnx.reference", onnx.__version__, "cpu", {})

    def _load(self, model_path: Path) -> Session:
        from onnx.reference import ReferenceEvaluator

        return ReferenceSession(ReferenceEvaluator(str(model_path)))
