"""digits: a classifier of scikit-learn's bundled 8x8 digit images, trained at pack-build time.

64 pixels -> Dense 32 ReLU -> Dense 10 logits. The only family with real task data (issue 13):
its weights are trained, not drawn, so its held-out accuracy means something, and the
reduced-precision artifacts are judged by how much of it they keep.

Data: ``sklearn.datasets.load_digits`` (1,797 images, 10 classes, 17 grey levels 0..16), scaled
to ``pixels = (level + 0.5) / 17`` (bin centres in (0, 1): a zero input hides an error upstream),
rounded to float32 by :func:`conformance.pack.build.float32_exact` like every input.
Split: stratified, fixed (``SPLIT_SEED``, independent of the model seed): per class a seeded
permutation, the first 30% held out. The held-out split ships whole as one test data set; the
ordinary data sets (batch 1 and 4) are held-out images; calibration data comes from the
training split only.

Training: float64 numpy on the CPU, full-batch Adam on softmax cross-entropy, ``TRAIN_STEPS``
steps from a seeded He initialisation: no sampling, no threads in the update order, so two
trainings in one process give identical weights. The weights are rounded to a grid of
``WEIGHT_GRID`` so that last-bit differences of BLAS kernels across CPUs (1e-16 relative) do not
reach the goldens.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from reference_models import init
from reference_models.interface import BATCH, ModelSpec, Params, TaskData, TensorSpec

HIDDEN = 32
CLASSES = 10
LEVELS = 16  # load_digits grey levels are 0..16
SPLIT_SEED = 13
HELD_OUT_FRACTION = 0.3
TRAIN_STEPS = 300
LEARNING_RATE = 0.02
WEIGHT_DECAY = 1e-4
WEIGHT_GRID = 2.0**-20
CALIBRATION_SAMPLES = 128

SPEC = ModelSpec(
    name="digits",
    description=(
        "64 -> Dense 32 ReLU -> Dense 10 logits, trained at pack build on scikit-learn's "
        "load_digits (real 8x8 images; held-out split in the pack)"
    ),
    inputs=(TensorSpec("pixels", "float32", (BATCH, 64), "NC"),),
    outputs=(TensorSpec("logits", "float32", (BATCH, CLASSES), "NC"),),
    tags=("gemm", "relu", "trained", "real-data"),
)


@lru_cache(maxsize=1)
def _dataset() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = (np.asarray(digits.data, dtype=np.float64) + 0.5) / (LEVELS + 1)
    return pixels, np.asarray(digits.target, dtype=np.int64)


@lru_cache(maxsize=1)
def split() -> tuple[np.ndarray, np.ndarray]:
    """(train indices, held-out indices), both sorted: stratified, the same on every build."""
    _, labels = _dataset()
    rng = init.rng_for(SPLIT_SEED)
    train, held_out = [], []
    for label in range(CLASSES):
        members = rng.permutation(np.flatnonzero(labels == label))
        cut = int(round(HELD_OUT_FRACTION * members.size))
        held_out.append(members[:cut])
        train.append(members[cut:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(held_out))


def forward(params: Params, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hidden = np.maximum(pixels @ params["fc1.weight"].T + params["fc1.bias"], 0.0)
    return hidden, hidden @ params["fc2.weight"].T + params["fc2.bias"]


def _gradients(params: Params, pixels: np.ndarray, onehot: np.ndarray) -> Params:
    hidden, logits = forward(params, pixels)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    d_logits = (shifted / shifted.sum(axis=1, keepdims=True) - onehot) / pixels.shape[0]
    d_hidden = (d_logits @ params["fc2.weight"]) * (hidden > 0.0)
    grads = {
        "fc2.weight": d_logits.T @ hidden,
        "fc2.bias": d_logits.sum(axis=0),
        "fc1.weight": d_hidden.T @ pixels,
        "fc1.bias": d_hidden.sum(axis=0),
    }
    return {k: g + WEIGHT_DECAY * params[k] for k, g in grads.items()}


def _on_grid(value: np.ndarray) -> np.ndarray:
    rounded = np.round(value / WEIGHT_GRID) * WEIGHT_GRID
    return np.where(rounded == 0.0, WEIGHT_GRID, rounded)  # no zero weight (it would vanish)


@lru_cache(maxsize=4)
def _trained(seed: int) -> tuple[tuple[str, np.ndarray], ...]:
    pixels, labels = _dataset()
    train, _ = split()
    x, onehot = pixels[train], np.eye(CLASSES)[labels[train]]
    rng = init.rng_for(seed)
    params = {
        "fc1.weight": init.he(rng, (HIDDEN, 64), fan_in=64),
        "fc1.bias": init.bias(rng, HIDDEN),
        "fc2.weight": init.he(rng, (CLASSES, HIDDEN), fan_in=HIDDEN),
        "fc2.bias": init.bias(rng, CLASSES),
    }
    first = {k: np.zeros_like(v) for k, v in params.items()}
    second = {k: np.zeros_like(v) for k, v in params.items()}
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, TRAIN_STEPS + 1):
        for key, grad in _gradients(params, x, onehot).items():
            first[key] = beta1 * first[key] + (1 - beta1) * grad
            second[key] = beta2 * second[key] + (1 - beta2) * grad * grad
            m_hat = first[key] / (1 - beta1**step)
            v_hat = second[key] / (1 - beta2**step)
            params[key] = params[key] - LEARNING_RATE * m_hat / (np.sqrt(v_hat) + eps)
    return tuple((k, _on_grid(v)) for k, v in params.items())


def make_params(seed: int) -> Params:
    """Trained weights (float64, torch conventions); the seed picks the initialisation."""
    return {key: value.copy() for key, value in _trained(seed)}


def make_inputs(batch: int, seq_len: int | None, seed: int) -> dict[str, np.ndarray]:
    """``batch`` distinct held-out images, chosen by the seed."""
    pixels, _ = _dataset()
    _, held_out = split()
    chosen = init.rng_for(seed).choice(held_out, size=batch, replace=False)
    return {"pixels": pixels[chosen]}


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def make_task(seed: int) -> TaskData:
    """The held-out split (inputs, labels) and the calibration inputs (training split only)."""
    import sklearn

    pixels, labels = _dataset()
    train, held_out = split()
    calibration = np.sort(init.rng_for(seed).choice(train, size=CALIBRATION_SAMPLES, replace=False))
    split_record: dict[str, Any] = {
        "method": "stratified: per class a numpy default_rng permutation, the first 30% held out",
        "seed": SPLIT_SEED,
        "held_out_fraction": HELD_OUT_FRACTION,
        "train_samples": int(train.size),
        "held_out_samples": int(held_out.size),
        "calibration_samples": CALIBRATION_SAMPLES,
        "calibration_from": "the training split",
        "preprocessing": f"pixels = (level + 0.5) / {LEVELS + 1}, level in 0..{LEVELS}",
        "training": (
            f"float64 numpy, full-batch Adam, {TRAIN_STEPS} steps, lr {LEARNING_RATE}, "
            f"weight decay {WEIGHT_DECAY}, weights rounded to a grid of 2^-20"
        ),
    }
    return TaskData(
        kind="classification",
        output="logits",
        held_out={"pixels": pixels[held_out]},
        held_out_labels=labels[held_out],
        calibration={"pixels": pixels[calibration]},
        calibration_indices=calibration,
        held_out_indices=held_out,
        source=f"scikit-learn {sklearn.__version__} load_digits",
        split=split_record,
    )


def build_torch(params: Params):
    import torch
    from torch import nn

    class Digits(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(64, HIDDEN)
            self.fc2 = nn.Linear(HIDDEN, CLASSES)

        def forward(self, pixels):
            return (self.fc2(torch.relu(self.fc1(pixels))),)

    model = Digits().double()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    return model.eval()


def build_keras(params: Params, dtype: str):
    import keras

    pixels = keras.Input(shape=(64,), dtype=dtype, name="pixels")
    hidden = keras.layers.Dense(HIDDEN, activation="relu", dtype=dtype, name="fc1")(pixels)
    logits = keras.layers.Dense(CLASSES, dtype=dtype, name="fc2")(hidden)
    model = keras.Model(inputs=pixels, outputs=[logits], name="digits")
    for layer in ("fc1", "fc2"):
        model.get_layer(layer).set_weights([params[f"{layer}.weight"].T, params[f"{layer}.bias"]])
    return model
