"""mlp: the classic MNIST classifier, 784 -> Dense 128 ReLU -> Dropout 0.2 -> Dense 10.

Covers Gemm/MatMul+Add, Relu, Softmax. Both the logits and the softmax are outputs:
a softmax squashes upstream errors, the logits show them.
"""

from __future__ import annotations

import numpy as np

from reference_models import init
from reference_models.interface import BATCH, ModelSpec, Params, StressSet, TensorSpec

SPEC = ModelSpec(
    name="mlp",
    description="784 -> Dense 128 ReLU -> Dropout 0.2 -> Dense 10 softmax (MNIST classifier)",
    inputs=(TensorSpec("image", "float32", (BATCH, 784), "NC"),),
    outputs=(
        TensorSpec("logits", "float32", (BATCH, 10), "NC"),
        TensorSpec("probs", "float32", (BATCH, 10), "NC"),
    ),
    tags=("gemm", "relu", "dropout", "softmax"),
    stress=(
        StressSet(
            "logits_above_88",
            "inputs x50: logits up to ~130 before the softmax (exp overflows float32 above 88)",
            batch=2,
            scale=50.0,
        ),
    ),
)


def make_params(seed: int) -> Params:
    rng = init.rng_for(seed)
    return {
        "fc1.weight": init.he(rng, (128, 784), fan_in=784),
        "fc1.bias": init.bias(rng, 128),
        # Larger than Glorot so the logits spread and the softmax is far from uniform.
        "fc2.weight": init.he(rng, (10, 128), fan_in=128) * 2.0,
        "fc2.bias": init.bias(rng, 10),
    }


def make_inputs(batch: int, seq_len: int | None, seed: int) -> dict[str, np.ndarray]:
    rng = init.rng_for(seed)
    return {"image": rng.uniform(0.0, 1.0, size=(batch, 784))}


def build_torch(params: Params):
    import torch
    from torch import nn

    class Mlp(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(784, 128)
            self.dropout = nn.Dropout(0.2)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, image):
            logits = self.fc2(self.dropout(torch.relu(self.fc1(image))))
            return logits, torch.softmax(logits, dim=-1)

    model = Mlp().double()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    return model.eval()


def build_keras(params: Params, dtype: str):
    import keras

    image = keras.Input(shape=(784,), dtype=dtype, name="image")
    hidden = keras.layers.Dense(128, activation="relu", dtype=dtype, name="fc1")(image)
    hidden = keras.layers.Dropout(0.2, dtype=dtype)(hidden)
    logits = keras.layers.Dense(10, dtype=dtype, name="fc2")(hidden)
    probs = keras.layers.Softmax(dtype=dtype, name="softmax")(logits)
    model = keras.Model(inputs=image, outputs=[logits, probs], name="mlp")
    for layer in ("fc1", "fc2"):
        model.get_layer(layer).set_weights([params[f"{layer}.weight"].T, params[f"{layer}.bias"]])
    return model
