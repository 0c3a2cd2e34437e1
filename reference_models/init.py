"""Seeded parameter initialisers shared by the model families.

Scales follow He/Glorot so activations neither vanish nor explode through a few
layers; outputs must vary with the input, or an error upstream hides in them.
"""

from __future__ import annotations

import numpy as np


def rng_for(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def he(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)


def glorot(
    rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int
) -> np.ndarray:
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def bias(rng: np.random.Generator, size: int, scale: float = 0.1) -> np.ndarray:
    """A non-zero bias: a zero one vanishes from exported graphs and leaves its op untested."""
    return rng.uniform(-scale, scale, size=(size,))


def batch_norm(rng: np.random.Generator, channels: int, prefix: str) -> dict[str, np.ndarray]:
    """Random affine parameters and running statistics for one batch-norm layer."""
    return {
        f"{prefix}.weight": rng.uniform(0.5, 1.5, size=(channels,)),
        f"{prefix}.bias": rng.uniform(-0.2, 0.2, size=(channels,)),
        f"{prefix}.running_mean": rng.uniform(-0.3, 0.3, size=(channels,)),
        f"{prefix}.running_var": rng.uniform(0.5, 1.5, size=(channels,)),
    }


def normal_inputs(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(size=shape)
