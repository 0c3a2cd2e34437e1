"""ONNX Runtime on CPU, at a chosen graph optimisation level (fusions change numerics).

``OrtTarget`` is shared with the GPU execution providers (``ort_gpu``): a subclass names its
providers, its device and any extra options; the session and the option checking stay here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from conformance.targets.interface import (
    Option,
    Outputs,
    Session,
    Target,
    TargetError,
    TargetInfo,
)

OPT_LEVELS = ("all", "extended", "basic", "disabled")
# "0": ORT's thread pools do not spin-wait for work (no numbers change, only CPU use: a run of
# many small sessions on a busy machine is several times faster). Set by the ops profile; the
# benchmarks keep ORT's default (spinning). Children inherit it from the environment.
ALLOW_SPINNING_ENV = "CONFORMANCE_ORT_ALLOW_SPINNING"
MAX_THREADS = 1024  # far above any host; a bigger count is a typo, not a setting

# Shared with every adapter that takes a thread count (OpenVINO's CPU plugin too).
THREADS = Option(
    "threads",
    int,
    0,
    "intra-op threads; 0: the runtime's own choice",
    minimum=0,
    maximum=MAX_THREADS,
)


def allow_spinning() -> bool:
    """False when ``CONFORMANCE_ORT_ALLOW_SPINNING=0``: idle ORT threads then sleep."""
    return os.environ.get(ALLOW_SPINNING_ENV, "").strip() != "0"


class OrtSession(Session):
    def __init__(self, session) -> None:
        super().__init__([i.name for i in session.get_inputs()])
        self._session = session
        self._output_names = [o.name for o in session.get_outputs()]

    # Read-only handles for the benchmarks' bound loops (contract P7).
    @property
    def native(self):
        """The ``onnxruntime.InferenceSession``."""
        return self._session

    @property
    def output_names(self) -> list[str]:
        return list(self._output_names)

    def provider_options(self) -> dict[str, dict[str, str]]:
        """What each execution provider of the loaded session reports it uses."""
        return dict(self._session.get_provider_options())

    def graph_optimization_level(self):
        """The level the loaded session really runs at (ORT's own SessionOptions)."""
        return self._session.get_session_options().graph_optimization_level

    def intra_op_num_threads(self) -> int:
        """The intra-op thread count the loaded session was created with."""
        return int(self._session.get_session_options().intra_op_num_threads)

    def _run(self, inputs: dict[str, np.ndarray]) -> Outputs:
        return list(zip(self._output_names, self._session.run(self._output_names, inputs)))


class OrtTarget(Target):
    """ONNX Runtime with a fixed list of execution providers (the first one is required)."""

    device = "cpu"
    needs = "onnxruntime-gpu and a CUDA device"  # what a missing first provider needs
    OPTIONS: ClassVar[tuple[Option, ...]] = (
        Option(
            "opt",
            str,
            "all",
            "graph optimisation level (fusions change numerics)",
            choices=OPT_LEVELS,
        ),
        THREADS,
    )

    def providers(self) -> list[tuple[str, dict[str, str]]]:
        """Execution providers in priority order, each with its provider options."""
        return [("CPUExecutionProvider", {})]

    def provider_info(self) -> dict[str, Any]:
        """Provider settings that change numerics, for describe()."""
        return {}

    def unavailable_reason(self) -> str | None:
        try:
            import onnxruntime
        except ImportError:
            return "onnxruntime is not installed: pip install onnxruntime"
        provider = self.providers()[0][0]
        if provider not in onnxruntime.get_available_providers():
            return f"{provider} is not available (needs {self.needs})"
        return None

    def describe(self) -> TargetInfo:
        import onnxruntime

        return TargetInfo(
            self.name,
            "onnxruntime",
            onnxruntime.__version__,
            self.device,
            {
                "graph_optimization_level": self.options["opt"],
                "intra_op_num_threads": self.options["threads"],
                "providers": [p for p, _ in self.providers()],
                "allow_spinning": allow_spinning(),
                **self.provider_info(),
            },
        )

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
        options.intra_op_num_threads = self.options["threads"]
        options.log_severity_level = 3
        if not allow_spinning():
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        providers = self.providers()
        session = ort.InferenceSession(
            str(model_path),
            options,
            providers=[p for p, _ in providers],
            provider_options=[o for _, o in providers],
        )
        # ORT silently falls back to CPU when a GPU provider cannot start: refuse that.
        if providers[0][0] not in session.get_providers():
            raise TargetError(
                f"{providers[0][0]} was requested but the session runs on {session.get_providers()}"
            )
        return OrtSession(session)


class OrtCpuTarget(OrtTarget):
    """ONNX Runtime's default CPU execution provider."""
