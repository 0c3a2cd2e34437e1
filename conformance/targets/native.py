"""Live mode's native targets: the reference model itself, eager, in float32 (torch or Keras).

They read the pack's test data like any target, but instead of the ONNX file they rebuild
the model family from its seed (model.json) with the framework installed here: this is
how an upgrade of torch or TensorFlow is tested against the same goldens.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from conformance.targets.interface import Outputs, Session, Target, TargetError, TargetInfo

# Which pack artifact a native target borrows its test data (and output names) from:
# the one whose layout is the framework's own.
DATA_FROM_EXPORTER = {"torch": "torch-script", "tf": "tf2onnx"}


def artifact_record(model_path: Path) -> tuple[str, dict, dict]:
    """(model name, model.json, the artifact's record) for <pack>/<model>/<exporter>/model.onnx."""
    model_dir = model_path.parent.parent
    record = json.loads((model_dir / "model.json").read_text(encoding="utf-8"))
    return model_dir.name, record, record["artifacts"][model_path.parent.name]


class NativeSession(Session):
    def __init__(self, forward, input_names: list[str], output_names: list[str]) -> None:
        super().__init__(input_names)
        self._forward = forward
        self._output_names = output_names

    def _run(self, inputs: dict[str, np.ndarray]) -> Outputs:
        outputs = self._forward([inputs[name] for name in self.input_names])
        return [(name, np.asarray(array)) for name, array in zip(self._output_names, outputs)]


class NativeTarget(Target):
    framework = ""  # "torch" or "tf"
    package = ""

    def __init__(self, name: str, options: dict[str, str]) -> None:
        if options:
            raise TargetError(f"{name}: takes no options, got {sorted(options)}")
        super().__init__(name, options)
        self.device = "gpu" if name.endswith((":cuda", ":gpu")) else "cpu"

    def unavailable_reason(self) -> str | None:
        import importlib.util

        if importlib.util.find_spec(self.package) is None:
            return f"{self.package} is not installed: pip install 'ml-conformance[frameworks]'"
        if self.device == "gpu":
            return self._gpu_missing()
        return None

    def _gpu_missing(self) -> str | None:
        raise NotImplementedError

    def _load(self, model_path: Path) -> Session:
        from reference_models import load_family

        name, record, artifact = artifact_record(model_path)
        family = load_family(name)
        forward = self._forward(family, family.make_params(record["seed"]))
        return NativeSession(
            forward,
            [i["name"] for i in artifact["inputs"]],
            [o["name"] for o in artifact["outputs"]],
        )


class TorchTarget(NativeTarget):
    framework, package = "torch", "torch"

    def _gpu_missing(self) -> str | None:
        import torch

        return None if torch.cuda.is_available() else "no CUDA device visible to torch"

    def describe(self) -> TargetInfo:
        import torch

        return TargetInfo(
            self.name,
            "torch",
            torch.__version__,
            self.device,
            {
                "dtype": "float32",
                "mode": "eager",
                "threads": torch.get_num_threads(),
                "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            },
        )

    def _forward(self, family, params):
        import torch

        device = "cuda" if self.device == "gpu" else "cpu"
        module = family.build_torch(params).float().to(device).eval()

        def forward(arrays):
            with torch.no_grad():
                outputs = module(
                    *(torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in arrays)
                )
            outputs = (outputs,) if isinstance(outputs, torch.Tensor) else outputs
            return [o.cpu().numpy() for o in outputs]

        return forward


def import_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter
    import tensorflow

    return tensorflow


class TfTarget(NativeTarget):
    framework, package = "tf", "tensorflow"

    def _gpu_missing(self) -> str | None:
        tf = import_tensorflow()

        return None if tf.config.list_physical_devices("GPU") else "no GPU visible to TensorFlow"

    def describe(self) -> TargetInfo:
        tf = import_tensorflow()
        import keras

        return TargetInfo(
            self.name,
            "tensorflow",
            tf.__version__,
            self.device,
            {
                "dtype": "float32",
                "mode": "eager",
                "keras": keras.__version__,
                "tf32": tf.config.experimental.tensor_float_32_execution_enabled(),
            },
        )

    def _forward(self, family, params):
        import_tensorflow()
        model = family.build_keras(params, "float32")

        def forward(arrays):
            outputs = model(arrays if len(arrays) > 1 else arrays[0], training=False)
            return [
                np.asarray(o)
                for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])
            ]

        return forward
