"""embedding_mlp: a small recommender, item-id embeddings pooled and joined with dense features.

Embedding(1000, 16) over 8 item ids -> mean over the ids -> concat with 13 dense features
-> Dense 64 ReLU -> Dense 32 ReLU -> Dense 1. Covers Gather, ReduceMean, Concat,
Gemm/MatMul+Add, Relu, Sigmoid and an int64 graph input. Both the logit ("score") and its
sigmoid ("probability") are outputs: a sigmoid squashes upstream errors, the logit shows them.
"""

from __future__ import annotations

import numpy as np

from reference_models import init
from reference_models.interface import BATCH, ModelSpec, Params, TensorSpec

NUM_ITEMS = 1000
EMBED_DIM = 16
NUM_IDS = 8
NUM_DENSE = 13

SPEC = ModelSpec(
    name="embedding_mlp",
    description=(
        "Embedding(1000, 16) over 8 item ids -> mean -> concat 13 dense features "
        "-> Dense 64 ReLU -> Dense 32 ReLU -> Dense 1 (+ sigmoid) (recommender)"
    ),
    inputs=(
        TensorSpec("item_ids", "int64", (BATCH, NUM_IDS), "NL"),
        TensorSpec("dense_features", "float32", (BATCH, NUM_DENSE), "NC"),
    ),
    outputs=(
        TensorSpec("score", "float32", (BATCH, 1), "NC"),
        TensorSpec("probability", "float32", (BATCH, 1), "NC"),
    ),
    tags=("embedding", "gather", "reduce_mean", "concat", "gemm", "relu", "sigmoid", "int64_input"),
)


def make_params(seed: int) -> Params:
    rng = init.rng_for(seed)
    fc1_in = EMBED_DIM + NUM_DENSE
    return {
        # std 1.0: the mean over 8 ids divides the spread by sqrt(8) (~0.35 left), so the
        # pooled vector weighs in the first Dense about as much as the dense features do.
        "embedding.weight": rng.normal(0.0, 1.0, size=(NUM_ITEMS, EMBED_DIM)),
        "fc1.weight": init.he(rng, (64, fc1_in), fan_in=fc1_in),
        "fc1.bias": init.bias(rng, 64),
        "fc2.weight": init.he(rng, (32, 64), fan_in=64),
        "fc2.bias": init.bias(rng, 32),
        # Larger than Glorot so the logit spreads and the sigmoid is far from 0.5.
        "fc3.weight": init.he(rng, (1, 32), fan_in=32) * 2.0,
        "fc3.bias": init.bias(rng, 1),
    }


def make_inputs(batch: int, seq_len: int | None, seed: int) -> dict[str, np.ndarray]:
    rng = init.rng_for(seed)
    item_ids = rng.integers(0, NUM_ITEMS, size=(batch, NUM_IDS), dtype=np.int64)
    dense = init.normal_inputs(rng, (batch, NUM_DENSE))
    return {"item_ids": item_ids, "dense_features": dense}


def build_torch(params: Params):
    import torch
    from torch import nn

    class EmbeddingMlp(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(NUM_ITEMS, EMBED_DIM)
            self.fc1 = nn.Linear(EMBED_DIM + NUM_DENSE, 64)
            self.fc2 = nn.Linear(64, 32)
            self.fc3 = nn.Linear(32, 1)

        def forward(self, item_ids, dense_features):
            pooled = self.embedding(item_ids).mean(dim=1)
            hidden = torch.cat([pooled, dense_features], dim=1)
            hidden = torch.relu(self.fc1(hidden))
            hidden = torch.relu(self.fc2(hidden))
            score = self.fc3(hidden)
            return score, torch.sigmoid(score)

    model = EmbeddingMlp().double()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    return model.eval()


def build_keras(params: Params, dtype: str):
    import keras

    item_ids = keras.Input(shape=(NUM_IDS,), dtype="int64", name="item_ids")
    dense = keras.Input(shape=(NUM_DENSE,), dtype=dtype, name="dense_features")
    embedded = keras.layers.Embedding(NUM_ITEMS, EMBED_DIM, dtype=dtype, name="embedding")(item_ids)
    pooled = keras.layers.GlobalAveragePooling1D(dtype=dtype, name="mean_pool")(embedded)
    hidden = keras.layers.Concatenate(axis=-1, dtype=dtype, name="concat")([pooled, dense])
    hidden = keras.layers.Dense(64, activation="relu", dtype=dtype, name="fc1")(hidden)
    hidden = keras.layers.Dense(32, activation="relu", dtype=dtype, name="fc2")(hidden)
    score = keras.layers.Dense(1, dtype=dtype, name="fc3")(hidden)
    probability = keras.layers.Activation("sigmoid", dtype=dtype, name="sigmoid")(score)
    model = keras.Model(
        inputs=[item_ids, dense], outputs=[score, probability], name="embedding_mlp"
    )
    model.get_layer("embedding").set_weights([params["embedding.weight"]])
    for layer in ("fc1", "fc2", "fc3"):
        model.get_layer(layer).set_weights([params[f"{layer}.weight"].T, params[f"{layer}.bias"]])
    return model
