"""The contract every reference model family module fulfils.

A family module (``reference_models/<name>.py``) exports exactly these names:

- ``SPEC``: a :class:`ModelSpec` (inputs, outputs, tags; torch-side layouts);
- ``make_params(seed) -> Params``: framework-neutral float64 parameters in *torch*
  conventions (Linear weight ``[out, in]``, Conv weight ``[out, in, *k]``), every one
  drawn at random (biases and batch-norm statistics included);
- ``build_torch(params) -> torch.nn.Module``: float64, in eval mode; ``forward`` takes
  the inputs in ``SPEC.inputs`` order (torch layout) and returns a tuple in
  ``SPEC.outputs`` order;
- ``build_keras(params, dtype) -> keras.Model``: a functional model with the same
  parameters, inputs and outputs in Keras layout (channels last, see
  :func:`keras_layout`), computing in ``dtype`` ("float64" or "float32");
- ``make_inputs(batch, seq_len, seed) -> dict[str, np.ndarray]``: seeded inputs in
  torch layout (float64 or int64), never zeros. ``seq_len`` is None for models
  without a sequence dimension.

Frameworks are imported inside the builders only, so reading ``SPEC`` never loads
torch or TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Params = dict[str, np.ndarray]

BATCH = "batch"
SEQ = "seq"


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output, as the torch twin sees it."""

    name: str
    dtype: str  # "float32" or "int64" in the exported artifact
    shape: tuple[int | str, ...]  # symbolic dims are BATCH or SEQ
    layout: str  # one letter per dim, torch side: "NC", "NCHW", "NCL", "NLC", "NL"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    tags: tuple[str, ...]  # operator families the model exercises
    seq_lens: tuple[int, ...] = ()  # empty: no sequence dim; else the lengths tested
    tolerance_class: str = "default"
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def is_sequence(self) -> bool:
        return bool(self.seq_lens)


def keras_layout(layout: str) -> str:
    """Channels-last counterpart of a torch layout: NCHW -> NHWC, NCL -> NLC."""
    if len(layout) > 2 and layout[:2] == "NC":
        return "N" + layout[2:] + "C"
    return layout


def layout_permutation(src: str, dst: str) -> tuple[int, ...]:
    """Axes permutation that turns an array in layout ``src`` into layout ``dst``."""
    return tuple(src.index(axis) for axis in dst)


def to_keras_layout(array: np.ndarray, layout: str) -> np.ndarray:
    return np.ascontiguousarray(
        np.transpose(array, layout_permutation(layout, keras_layout(layout)))
    )


def to_torch_layout(array: np.ndarray, layout: str) -> np.ndarray:
    return np.ascontiguousarray(
        np.transpose(array, layout_permutation(keras_layout(layout), layout))
    )
