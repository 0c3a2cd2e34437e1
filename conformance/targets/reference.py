"""The ONNX reference evaluator: slow, but the spec's own reading of each operator."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conformance.targets.interface import Outputs, Session, Target, TargetInfo


class ReferenceSession(Session):
    def __init__(self, evaluator, input_names: list[str]) -> None:
        super().__init__(input_names)
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
        import onnx
        from onnx.reference import ReferenceEvaluator

        model = onnx.load(str(model_path))
        # A graph input with an initializer (IR < 4 lists weights as inputs) is optional: its
        # initializer is the value when no feed is given, as ONNX says and ORT does.
        initializers = {tensor.name for tensor in model.graph.initializer}
        input_names = [i.name for i in model.graph.input if i.name not in initializers]
        return ReferenceSession(ReferenceEvaluator(model), input_names)
