"""What a benchmark feeds: distinct inputs built from the pack's test data, never one buffer.

The pool of batch-1 inputs is the samples of the artifact's largest test data set at the first
sequence length (the batch-4 set split into 4 batch-1 inputs), then perturbed copies up to the
rules' ``rotating_inputs``: float inputs get seeded noise scaled by their spread, integer inputs
(token ids) are permuted within the sample so every id stays in range. Offline batches are cut
from the same pool at rotating offsets. Every pack model has its batch on axis 0, in every layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conformance.pack import layout

Feeds = dict[str, np.ndarray]


def read_samples(artifact_dir: Path, data_set: int) -> list[Feeds]:
    """The data set's inputs split into batch-1 feeds (contiguous copies)."""
    arrays = layout.read_data_set(layout.data_set_dir(artifact_dir, data_set), "input")
    batch = arrays[0][1].shape[0]
    return [{name: np.ascontiguousarray(a[i : i + 1]) for name, a in arrays} for i in range(batch)]


def perturbed(sample: Feeds, scale: float, rng: np.random.Generator) -> Feeds:
    out = {}
    for name, a in sample.items():
        if np.issubdtype(a.dtype, np.floating):
            spread = float(np.std(a)) or 1.0
            out[name] = (a + scale * spread * rng.standard_normal(a.shape)).astype(a.dtype)
        else:
            out[name] = rng.permutation(a.reshape(-1)).reshape(a.shape)
    return out


def sample_pool(
    artifact_dir: Path, data_set: int, count: int, perturbation: float, seed: int
) -> list[Feeds]:
    """``count`` distinct batch-1 feeds: the data set's samples, then perturbed copies of them."""
    samples = read_samples(artifact_dir, data_set)
    rng = np.random.default_rng(seed)
    pool = samples[:count]
    while len(pool) < count:
        pool.append(perturbed(samples[len(pool) % len(samples)], perturbation, rng))
    return pool


def batched(pool: list[Feeds], batch: int, count: int) -> list[Feeds]:
    """``count`` batch-``batch`` feeds, the k-th starting at pool sample k*(batch+1) (mod the pool).

    The extra step of one keeps consecutive batches distinct even when ``batch`` is a multiple
    of the pool size (the same samples, then, in a rotated order).
    """
    feeds = []
    for k in range(count):
        rows = [pool[(k * (batch + 1) + j) % len(pool)] for j in range(batch)]
        feeds.append({name: np.concatenate([row[name] for row in rows]) for name in pool[0]})
    return feeds


def feeds_nbytes(feeds: Feeds) -> int:
    return sum(a.nbytes for a in feeds.values())
