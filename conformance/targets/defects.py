"""Negative controls: ONNX Runtime CPU with ONE known defect injected (``defect:<kind>``).

Every check the suite makes must catch every one of these; a defect that passes is a hole in
the suite, not in the runtime. Each wraps an honest ``ort:cpu`` session and is deterministic:
the same sequence of calls gives the same outputs (the noise is seeded per call).

=============  ==================================================================================
kind           what the session does
=============  ==================================================================================
noise          every float output multiplied by ``1 + 1e-3 * N(0, 1)`` (relative noise 1e-3)
fp16           computes in float16 inside (``convert_float_to_float16(keep_io_types=True)``),
               float32 in and out, like a runtime that silently downcasts
first-sample   treats a batch as if it held only its first sample: runs ``input[:1]`` and
               repeats that result for every row
swap-outputs   output wiring: with two or more outputs, the arrays of outputs 0 and 1 are
               swapped (names stay in place); with one output, its rows are returned in reverse
               batch order, i.e. each request gets another request's result (a batch of one
               cannot show that, so there the last axis is reversed instead: channels wired
               backwards)
nan            one NaN written into the first float output, at a fixed element (the middle one)
stale          returns the previous call's result whatever the input (the first call is honest)
dtype          float outputs returned as float64 (float64 ones as float32): wrong output dtype
crash          a real process abort (``os.abort()``, SIGABRT) on run, not a Python exception
hang           never returns from run (sleeps forever)
repeat-ulp     right on values, wrong only on determinism: the first run of an input is honest;
               every later run of the same input (same names, dtypes, shapes and bytes) has
               REPEAT_ULP_ELEMENTS elements of its first float output moved by one ulp
batch-variant  right on values, wrong only on batch invariance: a batched call is honest, and so
               is a batch-1 call, except one whose input is row i > 0 of the previous batched
               call: that sample gets its own result moved by ``BATCH_VARIANT_SHIFT * (1 + |x|)``
               (at least 10 times the fp32 tolerance), as if the runtime's batch-1 path differed
               from its batched one. Sample 0 and the pack's batch-1 data sets stay honest.
=============  ==================================================================================

``repeat-ulp`` and ``batch-variant`` are the only controls that reach the determinism and
batch-invariance checks: every other kind already fails on values. ``batch-variant``'s values
pass on the batch data set because the batched call itself is honest; only running each sample
alone (the batch-invariance check) shows that sample i's answer depends on how it was sent.

Markers: when the environment variable ``CONFORMANCE_DEFECT_MARKERS`` names a folder, every
control's session touches ``<folder>/<kind>.running`` as it starts a run (before a crash or a
hang), so a test can wait for "inside the check" on an observable condition, not on a sleep.

``TargetInfo.deterministic`` stays True for every kind: each one is a function of the call
sequence, and a defective runtime would declare what an honest one declares, so the declaration
must never be what excuses the defect.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from conformance.targets.interface import (
    InvalidTargetError,
    Outputs,
    Session,
    Target,
    TargetInfo,
)
from conformance.targets.ort import OrtCpuTarget, OrtSession

KINDS = (
    "noise",
    "fp16",
    "first-sample",
    "swap-outputs",
    "nan",
    "stale",
    "dtype",
    "crash",
    "hang",
    "repeat-ulp",
    "batch-variant",
)

NOISE_SEED = 20240607
NOISE_SCALE = 1e-3
REPEAT_ULP_ELEMENTS = 3  # elements moved by one ulp on a repeated run (first, middle, last)
BATCH_VARIANT_SHIFT = 1e-3  # >= 10x the fp32 tolerance (atol 1e-5 + rtol 1e-4 |x|) everywhere
MARKERS_ENV = "CONFORMANCE_DEFECT_MARKERS"


def _is_float(array: np.ndarray) -> bool:
    return np.issubdtype(array.dtype, np.floating)


def _input_key(inputs: dict[str, np.ndarray]) -> str:
    """The identity of an input: same names, dtypes, shapes and bytes give the same key."""
    digest = hashlib.sha256()
    for name in sorted(inputs):
        array = np.ascontiguousarray(inputs[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _mark_running(kind: str) -> None:
    folder = os.environ.get(MARKERS_ENV)
    if folder:
        Path(folder, f"{kind}.running").touch()


class DefectSession(Session):
    def __init__(self, kind: str, inner: Session) -> None:
        super().__init__(list(inner.input_names))
        self.kind = kind
        self._inner = inner
        self._previous: Outputs | None = None
        self._runs_of: dict[str, int] = {}  # repeat-ulp: how often each input has run
        self._last_batch: dict[str, np.ndarray] | None = None  # batch-variant

    def _honest(self, inputs: dict[str, np.ndarray]) -> Outputs:
        return self._inner.run(inputs)

    def _run(self, inputs: dict[str, np.ndarray]) -> Outputs:
        _mark_running(self.kind)
        inject = getattr(self, "_" + self.kind.replace("-", "_"), None)
        if inject is None:  # fp16: the defect is in the loaded model itself
            return self._honest(inputs)
        return inject(inputs)

    def _noise(self, inputs: dict[str, np.ndarray]) -> Outputs:
        rng = np.random.default_rng(NOISE_SEED)  # fresh per call: same input, same output

        def noisy(a: np.ndarray) -> np.ndarray:
            return (a * (1.0 + NOISE_SCALE * rng.standard_normal(a.shape))).astype(a.dtype)

        return [(name, noisy(a) if _is_float(a) else a) for name, a in self._honest(inputs)]

    def _first_sample(self, inputs: dict[str, np.ndarray]) -> Outputs:
        batched = [a for a in inputs.values() if np.ndim(a) >= 1]
        if not batched:
            return self._honest(inputs)
        batch = batched[0].shape[0]  # every pack model has its batch on axis 0
        first = {name: (a[:1] if np.ndim(a) >= 1 else a) for name, a in inputs.items()}
        return [
            (name, np.repeat(a, batch, axis=0) if a.ndim >= 1 and a.shape[0] == 1 else a)
            for name, a in self._honest(first)
        ]

    def _swap_outputs(self, inputs: dict[str, np.ndarray]) -> Outputs:
        outputs = self._honest(inputs)
        if len(outputs) >= 2:
            (name0, a0), (name1, a1) = outputs[:2]
            return [(name0, a1), (name1, a0), *outputs[2:]]
        if not outputs or outputs[0][1].ndim == 0:
            return outputs
        name, a = outputs[0]
        axis = 0 if a.shape[0] > 1 else -1
        return [(name, np.ascontiguousarray(np.flip(a, axis=axis)))]

    def _nan(self, inputs: dict[str, np.ndarray]) -> Outputs:
        outputs = self._honest(inputs)
        for index, (name, a) in enumerate(outputs):
            if _is_float(a) and a.size:
                a = a.copy()
                a.flat[a.size // 2] = np.nan
                outputs[index] = (name, a)
                break
        return outputs

    def _stale(self, inputs: dict[str, np.ndarray]) -> Outputs:
        current = [(name, a.copy()) for name, a in self._honest(inputs)]
        returned = self._previous if self._previous is not None else current
        self._previous = current
        return [(name, a.copy()) for name, a in returned]

    def _dtype(self, inputs: dict[str, np.ndarray]) -> Outputs:
        def wrong(a: np.ndarray) -> np.ndarray:
            if not _is_float(a):
                return a
            return a.astype(np.float32 if a.dtype == np.float64 else np.float64)

        return [(name, wrong(a)) for name, a in self._honest(inputs)]

    def _crash(self, inputs: dict[str, np.ndarray]) -> Outputs:
        os.abort()  # SIGABRT: no exception, no cleanup, the process is gone

    def _hang(self, inputs: dict[str, np.ndarray]) -> Outputs:
        while True:
            time.sleep(3600)

    def _repeat_ulp(self, inputs: dict[str, np.ndarray]) -> Outputs:
        key = _input_key(inputs)
        self._runs_of[key] = self._runs_of.get(key, 0) + 1
        outputs = self._honest(inputs)
        if self._runs_of[key] == 1:
            return outputs
        for index, (name, a) in enumerate(outputs):
            if _is_float(a) and a.size:
                a = a.copy()
                flat = a.reshape(-1)  # a view of the copy
                where = sorted({0, a.size // 2, a.size - 1})[:REPEAT_ULP_ELEMENTS]
                flat[where] = np.nextafter(flat[where], np.array(np.inf, dtype=a.dtype))
                outputs[index] = (name, a)
                break
        return outputs

    def _batch_variant(self, inputs: dict[str, np.ndarray]) -> Outputs:
        outputs = self._honest(inputs)
        batches = {np.shape(a)[0] for a in inputs.values() if np.ndim(a) >= 1}
        if batches and min(batches) > 1:  # a batched call: honest, and remembered
            self._last_batch = {name: np.array(a, copy=True) for name, a in inputs.items()}
            return outputs
        if self._last_batch is None or batches != {1} or self._row_of_last_batch(inputs) < 1:
            return outputs
        return [
            (
                name,
                (a + BATCH_VARIANT_SHIFT * (1.0 + np.abs(a))).astype(a.dtype)
                if _is_float(a)
                else a,
            )
            for name, a in outputs
        ]

    def _row_of_last_batch(self, inputs: dict[str, np.ndarray]) -> int:
        """The row of the previous batched call that this batch-1 input is, else -1."""
        last = self._last_batch
        if last is None or set(inputs) != set(last):
            return -1
        rows = next(iter(last.values())).shape[0]
        for row in range(rows):
            if all(
                np.ndim(last[name]) >= 1
                and np.shape(a) == np.shape(last[name][row : row + 1])
                and np.array_equal(a, last[name][row : row + 1])
                for name, a in inputs.items()
            ):
                return row
        return -1

    def close(self) -> None:
        self._inner.close()


class DefectTarget(Target):
    """``defect:<kind>``; it takes no options (the base class refuses any, before this runs)."""

    def __init__(self, name: str, options: Mapping[str, str] | None = None) -> None:
        super().__init__(name, options)
        parts = self.base_name.split(":")
        kind = parts[1] if len(parts) == 2 and parts[0] == "defect" else None
        if kind not in KINDS:
            raise InvalidTargetError(
                f"{name}: not a negative control; known: " + ", ".join(f"defect:{k}" for k in KINDS)
            )
        self.kind = kind

    def unavailable_reason(self) -> str | None:
        reason = OrtCpuTarget("ort:cpu").unavailable_reason()
        if reason is None and self.kind == "fp16":
            try:
                from onnxruntime.transformers.float16 import convert_float_to_float16  # noqa: F401
            except ImportError as error:
                return f"defect:fp16 needs onnxruntime.transformers.float16: {error}"
        return reason

    def describe(self) -> TargetInfo:
        import onnxruntime

        return TargetInfo(
            self.name, "defect", onnxruntime.__version__, "cpu", {"defect": self.kind}
        )

    def _load(self, model_path: Path) -> Session:
        if self.kind == "fp16":
            return DefectSession(self.kind, self._load_fp16(model_path))
        return DefectSession(self.kind, OrtCpuTarget("ort:cpu")._load(model_path))

    @staticmethod
    def _load_fp16(model_path: Path) -> Session:
        import logging

        import onnx
        import onnxruntime as ort
        from onnxruntime.transformers.float16 import convert_float_to_float16

        logger = logging.getLogger("onnxruntime.transformers.float16")
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            model = convert_float_to_float16(onnx.load(str(model_path)), keep_io_types=True)
        finally:
            logger.setLevel(level)
        options = ort.SessionOptions()
        # ORT_ENABLE_ALL segfaults at session creation on the fp16 transformer_encoder/torch-script
        # artifact (onnxruntime 1.32); "extended" runs every pack model in fp16.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.log_severity_level = 3
        return OrtSession(
            ort.InferenceSession(
                model.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
        )
