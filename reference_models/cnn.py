"""cnn: a small image classifier, 3x32x32 -> [Conv 3x3 -> BatchNorm -> ReLU -> MaxPool 2x2] x2
-> GlobalAveragePool -> Dense 10.

Covers Conv (with bias), BatchNormalization (inference, random running statistics), Relu,
MaxPool, GlobalAveragePool / ReduceMean, Gemm and Softmax. Both the logits and the softmax
are outputs: a softmax squashes upstream errors, the logits show them.

Torch pads the 3x3 stride-1 convs explicitly (padding=1), which equals Keras "same".
"""

from __future__ import annotations

import numpy as np

from reference_models import init
from reference_models.interface import BATCH, ModelSpec, Params, StressSet, TensorSpec

BN_EPS = 1e-5
C1 = 16
C2 = 32
CLASSES = 10

SPEC = ModelSpec(
    name="cnn",
    description=(
        "3x32x32 -> [Conv3x3 BN ReLU MaxPool2] x2 (16, 32 ch) -> GlobalAvgPool -> Dense 10 softmax"
    ),
    inputs=(TensorSpec("image", "float32", (BATCH, 3, 32, 32), "NCHW"),),
    outputs=(
        TensorSpec("logits", "float32", (BATCH, CLASSES), "NC"),
        TensorSpec("probs", "float32", (BATCH, CLASSES), "NC"),
    ),
    tags=("conv", "batch_norm", "relu", "max_pool", "global_average_pool", "gemm", "softmax"),
    stress=(
        StressSet(
            "logits_above_88",
            "inputs x12: logits up to ~140 before the softmax (exp overflows float32 above 88)",
            batch=2,
            scale=12.0,
        ),
    ),
)


def make_params(seed: int) -> Params:
    rng = init.rng_for(seed)
    params: Params = {
        "conv1.weight": init.he(rng, (C1, 3, 3, 3), fan_in=3 * 9),
        "conv1.bias": init.bias(rng, C1),
    }
    params.update(init.batch_norm(rng, C1, "bn1"))
    params["conv2.weight"] = init.he(rng, (C2, C1, 3, 3), fan_in=C1 * 9)
    params["conv2.bias"] = init.bias(rng, C2)
    params.update(init.batch_norm(rng, C2, "bn2"))
    # He scale: the pooled ReLU features are all positive and already large, so a bigger
    # head saturates the softmax (probabilities of exactly 1 hide errors as well).
    params["fc.weight"] = init.he(rng, (CLASSES, C2), fan_in=C2)
    params["fc.bias"] = init.bias(rng, CLASSES)
    return params


def make_inputs(batch: int, seq_len: int | None, seed: int) -> dict[str, np.ndarray]:
    rng = init.rng_for(seed)
    # Per-sample, per-channel offsets and contrasts on top of pixel noise: the global
    # average pool averages pixel noise away, so without them every sample would give
    # nearly the same logits.
    offset = rng.normal(0.0, 2.0, size=(batch, 3, 1, 1))
    contrast = rng.uniform(0.5, 1.5, size=(batch, 3, 1, 1))
    return {"image": offset + contrast * init.normal_inputs(rng, (batch, 3, 32, 32))}


def build_torch(params: Params):
    import torch
    from torch import nn

    class Cnn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, C1, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(C1, eps=BN_EPS)
            self.conv2 = nn.Conv2d(C1, C2, 3, padding=1)
            self.bn2 = nn.BatchNorm2d(C2, eps=BN_EPS)
            self.pool = nn.MaxPool2d(2)
            self.fc = nn.Linear(C2, CLASSES)

        def forward(self, image):
            x = self.pool(torch.relu(self.bn1(self.conv1(image))))
            x = self.pool(torch.relu(self.bn2(self.conv2(x))))
            logits = self.fc(torch.mean(x, dim=(2, 3)))
            return logits, torch.softmax(logits, dim=-1)

    model = Cnn().double()
    state = {k: torch.from_numpy(v) for k, v in params.items()}
    # BatchNorm2d also carries num_batches_tracked, which inference never reads.
    state.update({f"{bn}.num_batches_tracked": torch.tensor(0) for bn in ("bn1", "bn2")})
    model.load_state_dict(state)
    return model.eval()


def build_keras(params: Params, dtype: str):
    import keras

    image = keras.Input(shape=(32, 32, 3), dtype=dtype, name="image")
    x = keras.layers.Conv2D(C1, 3, padding="same", dtype=dtype, name="conv1")(image)
    x = keras.layers.BatchNormalization(epsilon=BN_EPS, dtype=dtype, name="bn1")(x)
    x = keras.layers.ReLU(dtype=dtype)(x)
    x = keras.layers.MaxPooling2D(2, dtype=dtype)(x)
    x = keras.layers.Conv2D(C2, 3, padding="same", dtype=dtype, name="conv2")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPS, dtype=dtype, name="bn2")(x)
    x = keras.layers.ReLU(dtype=dtype)(x)
    x = keras.layers.MaxPooling2D(2, dtype=dtype)(x)
    x = keras.layers.GlobalAveragePooling2D(dtype=dtype)(x)
    logits = keras.layers.Dense(CLASSES, dtype=dtype, name="fc")(x)
    probs = keras.layers.Softmax(dtype=dtype, name="softmax")(logits)
    model = keras.Model(inputs=image, outputs=[logits, probs], name="cnn")
    for conv in ("conv1", "conv2"):
        # torch [out, in, kh, kw] -> Keras [kh, kw, in, out]
        model.get_layer(conv).set_weights(
            [params[f"{conv}.weight"].transpose(2, 3, 1, 0), params[f"{conv}.bias"]]
        )
    for bn in ("bn1", "bn2"):
        model.get_layer(bn).set_weights(
            [params[f"{bn}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]
        )
    model.get_layer("fc").set_weights([params["fc.weight"].T, params["fc.bias"]])
    return model
