"""Live mode's native targets: the reference model itself, eager, in float32 (torch or Keras).

They read the pack's test data like any target, but instead of the ONNX file they rebuild
the model family from its seed (model.json) with the framework installed here: this is
how an upgrade of torch or TensorFlow is tested against the same goldens.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from conformance.targets.interface import Outputs, Session, Target, TargetInfo


def artifact_record(model_path: Path) -> tuple[str, dict, dict]:
    """(model name, model.json, the artifact's record) for <pack>/<model>/<exporter>/model.onnx."""
    model_dir = model_path.parent.parent
    record = json.loads((model_dir / "model.json").read_text(encoding="utf-8"))
    return model_dir.name, record, record["artifacts"][model_path.parent.name]


def cuda_driver_missing(package: str) -> str | None:
    """Why no CUDA device can be visible here, found without importing the framework (torch
    takes ~2 s to import, TensorFlow ~5 s: ``conformance targets`` must not wait on them), or
    None when a framework probe is needed. Linux only; a ROCm build of the framework (no
    libcuda needed) is always probed."""
    import ctypes
    from importlib.metadata import PackageNotFoundError, version

    if not sys.platform.startswith("linux"):
        return None
    try:
        if "rocm" in version(package).lower():
            return None
    except PackageNotFoundError:
        return None
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return "no CUDA driver on this machine (libcuda.so.1 cannot be loaded)"
    return None


class NativeSession(Session):
    def __init__(self, forward, input_names: list[str], output_names: list[str]) -> None:
        super().__init__(input_names)
        self._forward = forward
        self._output_names = output_names

    def _run(self, inputs: dict[str, np.ndarray]) -> Outputs:
        outputs = self._forward([inputs[name] for name in self.input_names])
        return [(name, np.asarray(array)) for name, array in zip(self._output_names, outputs)]


class NativeTarget(Target):
    package = ""  # the framework's import name
    # The pack artifact whose test data (and output names) this target borrows: the one whose
    # layout is the framework's own.
    borrows = ""

    def __init__(self, name: str, options: Mapping[str, str] | None = None) -> None:
        super().__init__(name, options)
        self.device = "gpu" if self.base_name.endswith((":cuda", ":gpu")) else "cpu"

    @property
    def borrowed_test_data(self) -> str | None:
        return self.borrows

    def unavailable_reason(self) -> str | None:
        import importlib.util

        if importlib.util.find_spec(self.package) is None:
            return f"{self.package} is not installed: pip install 'ml-conformance[frameworks]'"
        if self.device == "gpu":
            return cuda_driver_missing(self.package) or self._gpu_missing()
        return None

    def _gpu_missing(self) -> str | None:
        raise NotImplementedError

    def _forward(self, family, params) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
        """The model's forward function over numpy arrays, built by the framework."""
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
    package, borrows = "torch", "torch-script"

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
                    *(
                        torch.from_numpy(np.array(a, order="C", copy=True)).to(device)
                        for a in arrays
                    )
                )
            outputs = (outputs,) if isinstance(outputs, torch.Tensor) else outputs
            return [o.cpu().numpy() for o in outputs]

        return forward


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 goes to /dev/null for the block: absl's pre-init lines ("WARNING: All
    log messages before absl::InitializeLog()", "I0000 ... cudart_stub.cc") ignore
    TF_CPP_MIN_LOG_LEVEL and would reach the terminal of ``conformance targets``. Python
    exceptions are unaffected (they carry their own message)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter
    with _native_stderr_silenced():
        import keras  # noqa: F401 - its import logs a CPU-feature line: keep it in the block
        import tensorflow

    return tensorflow


class TfTarget(NativeTarget):
    package, borrows = "tensorflow", "tf2onnx"

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
