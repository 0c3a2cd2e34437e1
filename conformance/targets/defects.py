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

Reduced-precision controls (they rewrite the model at load, then run it on ORT CPU; a model
without what the defect needs is refused at load, a TargetError, so it never passes as honest):

===============  ================================================================================
int8-scale       an int8 QDQ artifact whose first internal activation is dequantized with
                 INT8_SCALE_FACTOR times its scale (its QuantizeLinear keeps the right one), as
                 a runtime that reads one tensor's scale wrong
int8-zero-point  the same activation dequantized with its zero point moved by INT8_ZERO_SHIFT
fp16-accumulate  every MatMul / Gemm reduces in float16, one rounding per term (numpy's float16
                 add, sequentially over the reduction axis) on the ONNX reference evaluator; the
                 rest of the model as the artifact says. A long reduction (mlp: 784 terms) loses
                 what a float32 accumulator keeps
precision-lie    says fp16 (or bf16) and computes int8: every MatMul / Gemm / Conv output is
                 fake-quantized to 8 bits per tensor (min/max of the tensor, 255 steps)
===============  ================================================================================

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

import os
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from conformance.pack.hashing import arrays_digest
from conformance.targets.interface import (
    InvalidTargetError,
    Outputs,
    Session,
    Target,
    TargetError,
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
    "int8-scale",
    "int8-zero-point",
    "fp16-accumulate",
    "precision-lie",
)
REWRITTEN = ("int8-scale", "int8-zero-point", "precision-lie")  # the model is rewritten at load
INT8_SCALE_FACTOR = 2.0
INT8_ZERO_SHIFT = 16  # quantization steps
LIE_LEVELS = 255  # 8 bits

NOISE_SEED = 20240607
NOISE_SCALE = 1e-3
REPEAT_ULP_ELEMENTS = 3  # elements moved by one ulp on a repeated run (first, middle, last)
BATCH_VARIANT_SHIFT = 1e-3  # >= 10x the fp32 tolerance (atol 1e-5 + rtol 1e-4 |x|) everywhere
MARKERS_ENV = "CONFORMANCE_DEFECT_MARKERS"


def _is_float(array: np.ndarray) -> bool:
    return np.issubdtype(array.dtype, np.floating)


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
        key = arrays_digest(inputs)
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
        if self.kind in REWRITTEN:
            import onnx

            model = REWRITES[self.kind](onnx.load(str(model_path)))
            return DefectSession(self.kind, _ort_session(model.SerializeToString()))
        if self.kind == "fp16-accumulate":
            return DefectSession(self.kind, Fp16AccumulateSession(model_path))
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


# ---- reduced-precision controls: the model rewritten at load -------------------------------


def _ort_session(model_bytes: bytes, level: str = "ORT_ENABLE_EXTENDED") -> Session:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.log_severity_level = 3
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    return OrtSession(session)


def _first_activation_dq(model):
    """The first DequantizeLinear of an internal activation (fed by a QuantizeLinear whose input
    is not a graph input), with scale and zero point as initializers; TargetError if none."""
    from onnx import numpy_helper

    graph = model.graph
    inputs = {i.name for i in graph.input}
    quantized = {n.output[0]: n for n in graph.node if n.op_type == "QuantizeLinear"}
    initializers = {t.name: t for t in graph.initializer}
    for node in graph.node:
        q = quantized.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if q is not None and q.input[0] not in inputs and len(node.input) >= 3:
            if node.input[1] in initializers and node.input[2] in initializers:
                scale = numpy_helper.to_array(initializers[node.input[1]])
                zero = numpy_helper.to_array(initializers[node.input[2]])
                return node, scale, zero
    raise TargetError("no QuantizeLinear/DequantizeLinear pair on an activation: not int8 QDQ")


def _own_initializer(model, node, position: int, value: np.ndarray, suffix: str) -> None:
    """Give one input of ``node`` its own initializer (the QuantizeLinear keeps the shared one)."""
    from onnx import numpy_helper

    name = f"{node.input[position]}_{suffix}"
    model.graph.initializer.append(numpy_helper.from_array(value, name))
    node.input[position] = name


def _int8_scale(model):
    node, scale, _ = _first_activation_dq(model)
    _own_initializer(model, node, 1, (scale * INT8_SCALE_FACTOR).astype(scale.dtype), "defect")
    return model


def _int8_zero_point(model):
    node, _, zero = _first_activation_dq(model)
    info = np.iinfo(zero.dtype)
    moved = np.clip(zero.astype(np.int64) + INT8_ZERO_SHIFT, info.min, info.max)
    _own_initializer(model, node, 2, moved.astype(zero.dtype), "defect")
    return model


LIE_OPS = ("MatMul", "Gemm", "Conv")


def _precision_lie(model):
    """After each MatMul / Gemm / Conv: y = round((x - min) / step) * step + min, with step =
    (max - min) / LIE_LEVELS over the tensor, in float32, cast back to the tensor's type."""
    from onnx import helper, numpy_helper

    graph = model.graph
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(LIE_LEVELS, np.float32), "lie_levels"),
            numpy_helper.from_array(np.array(1e-30, np.float32), "lie_tiny"),
        ]
    )
    nodes, touched = [], 0
    for node in graph.node:
        nodes.append(node)
        if node.op_type not in LIE_OPS or not node.output or not node.output[0]:
            continue
        touched += 1
        out, raw = node.output[0], f"lie_raw_{touched}"
        node.output[0] = raw
        t = f"lie_{touched}_"
        nodes += [
            helper.make_node("Cast", [raw], [t + "x"], to=1),
            helper.make_node("ReduceMin", [t + "x"], [t + "lo"], keepdims=0),
            helper.make_node("ReduceMax", [t + "x"], [t + "hi"], keepdims=0),
            helper.make_node("Sub", [t + "hi", t + "lo"], [t + "span"]),
            helper.make_node("Div", [t + "span", "lie_levels"], [t + "step0"]),
            helper.make_node("Max", [t + "step0", "lie_tiny"], [t + "step"]),
            helper.make_node("Sub", [t + "x", t + "lo"], [t + "shift"]),
            helper.make_node("Div", [t + "shift", t + "step"], [t + "q"]),
            helper.make_node("Round", [t + "q"], [t + "r"]),
            helper.make_node("Mul", [t + "r", t + "step"], [t + "back"]),
            helper.make_node("Add", [t + "back", t + "lo"], [t + "y"]),
            helper.make_node("CastLike", [t + "y", raw], [out]),
        ]
    if not touched:
        raise TargetError("no MatMul, Gemm or Conv whose activations a precision lie could round")
    del graph.node[:]
    graph.node.extend(nodes)
    return model


REWRITES = {
    "int8-scale": _int8_scale,
    "int8-zero-point": _int8_zero_point,
    "precision-lie": _precision_lie,
}


def _fp16_sum(terms: np.ndarray, axis: int) -> np.ndarray:
    """Sequential float16 accumulation: each partial sum rounded to float16 (not pairwise)."""
    return np.add.accumulate(terms.astype(np.float16), axis=axis, dtype=np.float16).take(
        -1, axis=axis
    )


class Fp16AccumulateSession(Session):
    """The ONNX reference evaluator, with MatMul and Gemm reducing in float16."""

    def __init__(self, model_path: Path) -> None:
        import onnx
        from onnx.reference import ReferenceEvaluator
        from onnx.reference.op_run import OpRun

        model = onnx.load(str(model_path))
        if not any(n.op_type in ("MatMul", "Gemm") for n in model.graph.node):
            raise TargetError("no MatMul or Gemm: no long reduction to accumulate in float16")

        class MatMul(OpRun):
            op_domain = ""

            def _run(self, a, b):
                a2, b2 = np.asarray(a), np.asarray(b)
                terms = a2[..., :, :, None] * b2[..., None, :, :]  # [..., M, K, N]
                return (_fp16_sum(terms, -2).astype(np.result_type(a2, b2)),)

        class Gemm(OpRun):
            op_domain = ""

            def _run(self, a, b, c=None, alpha=None, beta=None, transA=None, transB=None):
                a2 = np.asarray(a).T if transA else np.asarray(a)
                b2 = np.asarray(b).T if transB else np.asarray(b)
                y = _fp16_sum(a2[:, :, None] * b2[None, :, :], 1).astype(np.float32)
                y = y * (1.0 if alpha is None else alpha)
                if c is not None:
                    y = y + (1.0 if beta is None else beta) * np.asarray(c, np.float32)
                return (y.astype(a2.dtype),)

        self._evaluator = ReferenceEvaluator(model, new_ops=[MatMul, Gemm])
        initializers = {t.name for t in model.graph.initializer}
        super().__init__([i.name for i in model.graph.input if i.name not in initializers])
        self._output_names = [o.name for o in model.graph.output]

    def _run(self, inputs: dict[str, np.ndarray]) -> Outputs:
        results = self._evaluator.run(None, inputs)
        return [(n, np.asarray(a)) for n, a in zip(self._output_names, results)]
