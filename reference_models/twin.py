"""Twin check: the torch and Keras definitions, both in float64, are the same function.

Needs torch and TensorFlow (the build stage). The torch float64 output is the golden.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import numpy as np

from reference_models.interface import to_keras_layout, to_torch_layout

TWIN_MAX_REL_L2 = 1e-10


@dataclass(frozen=True)
class TwinResult:
    model: str
    output: str
    rel_l2: float
    max_abs: float

    @property
    def passed(self) -> bool:
        return self.rel_l2 <= TWIN_MAX_REL_L2


def run_torch(module, inputs: dict[str, np.ndarray], spec) -> dict[str, np.ndarray]:
    """Evaluate a float64 torch twin on torch-layout inputs."""
    import torch

    with torch.no_grad():
        args = [torch.from_numpy(np.asarray(inputs[t.name])) for t in spec.inputs]
        outputs = module(*args)
    if isinstance(outputs, torch.Tensor):
        outputs = (outputs,)
    return {t.name: out.numpy().astype(np.float64) for t, out in zip(spec.outputs, outputs)}


def run_keras(model, inputs: dict[str, np.ndarray], spec) -> dict[str, np.ndarray]:
    """Evaluate a Keras twin on torch-layout inputs; outputs come back in torch layout."""
    args = [to_keras_layout(np.asarray(inputs[t.name]), t.layout) for t in spec.inputs]
    outputs = model(args if len(args) > 1 else args[0], training=False)
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    return {
        t.name: to_torch_layout(np.asarray(out, dtype=np.float64), t.layout)
        for t, out in zip(spec.outputs, outputs)
    }


def rel_l2(actual: np.ndarray, expected: np.ndarray) -> float:
    denom = float(np.linalg.norm(expected))
    return float(np.linalg.norm(actual - expected)) / (denom if denom > 0 else 1.0)


def twin_check(family: ModuleType, seed: int = 0, batch: int = 4) -> list[TwinResult]:
    spec = family.SPEC
    params = family.make_params(seed)
    seq_len = spec.seq_lens[0] if spec.seq_lens else None
    inputs = family.make_inputs(batch, seq_len, seed + 1)
    golden = run_torch(family.build_torch(params), inputs, spec)
    keras_out = run_keras(family.build_keras(params, "float64"), inputs, spec)
    return [
        TwinResult(
            spec.name,
            name,
            rel_l2(keras_out[name], golden[name]),
            float(np.max(np.abs(keras_out[name] - golden[name]))),
        )
        for name in golden
    ]
