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

Optionally, ``SPEC.stress`` lists stress data sets (:class:`StressSet`: inputs that reach
the ranges where kernels break: logits above 88 before a softmax, near-zero variance before
a normalisation, large arguments to exp/tanh/erf, long sequences). Their inputs come from
``make_stress_inputs(stress, batch, seq_len, seed)`` when the family defines it, else from
:func:`stress_inputs` (``make_inputs`` with every float input times ``stress.scale``).

Optionally, ``make_task(seed) -> TaskData`` gives real task data (inputs with labels): the
held-out split, shipped whole as one more test data set, and calibration inputs drawn from the
training split (the int8 artifacts are calibrated on them, never on a test data set).

Frameworks are imported inside the builders only, so reading ``SPEC`` never loads
torch or TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
class StressSet:
    """One stress data set: a name (part of the check id), what it reaches, its shape."""

    name: str  # e.g. "logits_above_88"; letters, digits and underscores
    reaches: str  # what range the inputs drive the model into, in words
    batch: int = 2
    seq_len: int | None = None  # None: the model's first sequence length (or no sequence)
    scale: float = 1.0  # the default inputs: make_inputs times this (float inputs only)


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
    stress: tuple[StressSet, ...] = ()

    @property
    def is_sequence(self) -> bool:
        return bool(self.seq_lens)


@dataclass(frozen=True)
class TaskData:
    """Real task data of a trained family (``make_task``), torch layout, float64 inputs."""

    kind: str  # "classification"
    output: str  # the output whose argmax is the predicted class
    held_out: dict[str, np.ndarray]  # input name -> the whole held-out split
    held_out_labels: np.ndarray  # int64, one per held-out sample
    calibration: dict[str, np.ndarray]  # input name -> calibration inputs (training split)
    calibration_indices: np.ndarray  # dataset indices of the calibration samples
    held_out_indices: np.ndarray  # dataset indices of the held-out samples
    source: str  # e.g. "scikit-learn 1.9.1 load_digits"
    split: dict[str, Any]  # how the split was drawn, in words and numbers


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


def stress_inputs(
    family, stress: StressSet, batch: int, seq_len: int | None, seed: int
) -> dict[str, np.ndarray]:
    """A stress set's inputs: the family's own ``make_stress_inputs`` if it has one, else its
    ordinary inputs with every float input multiplied by ``stress.scale``."""
    own = getattr(family, "make_stress_inputs", None)
    if own is not None:
        return own(stress, batch, seq_len, seed)
    return {
        name: array * stress.scale if np.issubdtype(array.dtype, np.floating) else array
        for name, array in family.make_inputs(batch, seq_len, seed).items()
    }
