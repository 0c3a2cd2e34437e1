"""The evaluator of the float64 reference: onnx.reference with the operators it is known to get
wrong replaced by implementations that follow ONNX.

A wrong reference blames an honest runtime (compare said ORT failed the Keras GRU, whose
float64 reference came out in another shape), or gives no reference at all. Which operators are
replaced is data, with the evidence for each: ``spec/reference-corrections.json``. Only the
reference that judges runtimes uses this; the ``reference`` target, onnx.reference as a runtime
under test, runs it as it is, and its bugs are its findings. Imported when the reference is
first evaluated (onnx.reference's import is ~30 ms, which compare spends after its targets'
children have started).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import onnx
from onnx.reference.op_run import OpRun
from onnx.reference.ops.op_loop import Loop as _Loop

from conformance.spec import load_json

CORRECTIONS_FILE = "reference-corrections.json"  # localize/cache.py hashes it by this name too


class Loop(_Loop):
    """onnx.reference 1.23's Loop with each scan output stacked along a new first axis (as
    ONNX's shape inference and ONNX Runtime have it) instead of ``np.vstack``-ed, which joins
    per-iteration [1, 10] values into [n, 10] and scalars into [n, 1]. Otherwise the same:
    ``_run`` is adapted from onnx/reference/ops/op_loop.py (Apache-2.0, ONNX Project
    Contributors)."""

    def _run(  # onnx's signature
        self,
        M: Any,  # noqa: N803
        cond: Any,
        *args: Any,
        context: dict[str, Any] | None = None,
        body: Any = None,  # noqa: ARG002
        attributes: Any = None,
        bindings: Any = None,
    ) -> tuple[Any, ...]:
        body = self.body  # type: ignore[attr-defined]  # set from the node by OpRun
        names = body.input_names
        inputs: dict[str, Any] = dict.fromkeys(names)
        if args:
            inputs[names[2]] = args[0]
            for name, value in zip(names[len(names) - len(args[1:]) :], args[1:], strict=False):
                inputs[name] = value
        inputs.update(context or {})
        scans: list[list[np.ndarray]] = [[] for _ in range(self.K)]
        outputs: list[Any] = []
        iteration = 0
        while cond and (M is None or iteration < M):
            if len(names) > 0 and names[0] is not None:
                inputs[names[0]] = np.array(iteration, dtype=None if M is None else M.dtype)
            if len(names) > 1 and names[1] is not None:
                inputs[names[1]] = cond
            run_body = self._run_body  # type: ignore[attr-defined]  # set by OpRun
            outputs = run_body(inputs, attributes=attributes, bindings=bindings)
            for k in range(self.K):
                scans[k].append(outputs[-self.K + k])
            cond = outputs[self.output_index[body.output_names[0]]]
            if cond is None:
                raise RuntimeError(f"Loop's condition {body.output_names[0]!r} gave None")
            for name, out in zip(names[2:], body.output_names[1:], strict=False):
                inputs[name] = outputs[self.output_index[out]]
            iteration += 1
        carried = [inputs[n] for n in names[2:]] if iteration == 0 else outputs[1 : 1 + self.N]
        result = [*carried, *(np.stack(values) for values in scans if values)]
        while len(result) < len(self.onnx_node.output):
            result.append(np.empty(shape=()))
        return self._check_and_fix_outputs(tuple(result))


class GatherElements(OpRun):
    """GatherElements by ``np.take_along_axis``: onnx.reference 1.23 uses ``np.choose``, which
    takes at most 64 choices (an axis of 64 or more raises) and needs the index's other
    dimensions equal to the data's (ONNX allows them smaller)."""

    def _run(self, data: np.ndarray, indices: np.ndarray, axis: int | None = None) -> tuple:
        axis = int(axis or 0) % max(data.ndim, 1)
        indices = np.where(indices < 0, indices + data.shape[axis], indices).astype(np.int64)
        # the other dimensions of the index may be smaller than the data's: the leading part
        window = tuple(
            slice(None) if dim == axis else slice(0, size) for dim, size in enumerate(indices.shape)
        )
        return (np.take_along_axis(data[window], indices, axis=axis),)


IMPLEMENTATIONS: dict[str, type[OpRun]] = {"Loop": Loop, "GatherElements": GatherElements}


@cache
def corrections() -> tuple[dict[str, Any], ...]:
    """The corrections in force: spec/reference-corrections.json's entries for the installed
    onnx version (a correction is checked again when onnx changes, never carried over)."""
    document = load_json(CORRECTIONS_FILE)
    entries = tuple(e for e in document["corrections"] if e["onnx"] == onnx.__version__)
    unknown = [e["op_type"] for e in entries if e["op_type"] not in IMPLEMENTATIONS]
    if unknown:
        raise ValueError(f"{CORRECTIONS_FILE} names corrections this suite lacks: {unknown}")
    return entries


def corrected_ops() -> list[type[OpRun]]:
    return [IMPLEMENTATIONS[e["op_type"]] for e in corrections()]


def reference_evaluator(model: onnx.ModelProto) -> Any:
    """onnx.reference's evaluator of ``model`` with the corrections in force."""
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(model, new_ops=corrected_ops())


def describe_corrections() -> str:
    """'' or ' (Loop, GatherElements corrected: spec/reference-corrections.json)'."""
    names = [e["op_type"] for e in corrections()]
    return f" ({', '.join(names)} corrected: spec/{CORRECTIONS_FILE})" if names else ""
