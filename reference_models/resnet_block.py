"""resnet_block: one ResNet basic block that halves the resolution, 16x16x16 -> 32x8x8.

Main path: Conv 3x3 stride 2 -> BN -> ReLU -> Conv 3x3 -> BN; shortcut: Conv 1x1 stride 2
-> BN (projection); then Add and ReLU. Covers strided Conv, BatchNormalization, Add, Relu.

Padding: torch pads the stride-2 3x3 conv symmetrically (padding=1). Keras "same" would
pad a 16-wide input by 0 before and 1 after (TensorFlow puts the odd pixel at the end),
which shifts the sampling grid, so the Keras twin pads explicitly with ZeroPadding2D(1)
and convolves "valid". The 1x1 stride-2 shortcut needs no padding on either side.
"""

from __future__ import annotations

import numpy as np

from reference_models import init
from reference_models.interface import BATCH, ModelSpec, Params, TensorSpec

BN_EPS = 1e-5
C_IN = 16
C_OUT = 32
SIZE = 16

SPEC = ModelSpec(
    name="resnet_block",
    description="ResNet basic block, stride 2 with 1x1 projection shortcut: 16x16x16 -> 32x8x8",
    inputs=(TensorSpec("features_in", "float32", (BATCH, C_IN, SIZE, SIZE), "NCHW"),),
    outputs=(TensorSpec("features", "float32", (BATCH, C_OUT, SIZE // 2, SIZE // 2), "NCHW"),),
    tags=("conv", "strided_conv", "batch_norm", "relu", "add", "residual"),
)

BN_KEYS = ("weight", "bias", "running_mean", "running_var")
CONVS = ("conv1", "conv2", "shortcut.conv")
BNS = ("bn1", "bn2", "shortcut.bn")


def make_params(seed: int) -> Params:
    rng = init.rng_for(seed)
    params: Params = {
        "conv1.weight": init.he(rng, (C_OUT, C_IN, 3, 3), fan_in=C_IN * 9),
        "conv1.bias": init.bias(rng, C_OUT),
    }
    params.update(init.batch_norm(rng, C_OUT, "bn1"))
    params["conv2.weight"] = init.he(rng, (C_OUT, C_OUT, 3, 3), fan_in=C_OUT * 9)
    params["conv2.bias"] = init.bias(rng, C_OUT)
    params.update(init.batch_norm(rng, C_OUT, "bn2"))
    params["shortcut.conv.weight"] = init.he(rng, (C_OUT, C_IN, 1, 1), fan_in=C_IN)
    params["shortcut.conv.bias"] = init.bias(rng, C_OUT)
    params.update(init.batch_norm(rng, C_OUT, "shortcut.bn"))
    return params


def make_inputs(batch: int, seq_len: int | None, seed: int) -> dict[str, np.ndarray]:
    rng = init.rng_for(seed)
    return {"features_in": init.normal_inputs(rng, (batch, C_IN, SIZE, SIZE))}


def build_torch(params: Params):
    import torch
    from torch import nn

    class ResnetBlock(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(C_IN, C_OUT, 3, stride=2, padding=1)
            self.bn1 = nn.BatchNorm2d(C_OUT, eps=BN_EPS)
            self.conv2 = nn.Conv2d(C_OUT, C_OUT, 3, padding=1)
            self.bn2 = nn.BatchNorm2d(C_OUT, eps=BN_EPS)
            self.shortcut = nn.Sequential()
            self.shortcut.add_module("conv", nn.Conv2d(C_IN, C_OUT, 1, stride=2))
            self.shortcut.add_module("bn", nn.BatchNorm2d(C_OUT, eps=BN_EPS))

        def forward(self, features_in):
            x = torch.relu(self.bn1(self.conv1(features_in)))
            x = self.bn2(self.conv2(x))
            return torch.relu(x + self.shortcut(features_in))

    model = ResnetBlock().double()
    state = {k: torch.from_numpy(v) for k, v in params.items()}
    # BatchNorm2d also carries num_batches_tracked, which inference never reads.
    state.update({f"{bn}.num_batches_tracked": torch.tensor(0) for bn in BNS})
    model.load_state_dict(state)
    return model.eval()


def build_keras(params: Params, dtype: str):
    import keras

    def name(key: str) -> str:
        return key.replace(".", "_")

    features_in = keras.Input(shape=(SIZE, SIZE, C_IN), dtype=dtype, name="features_in")
    x = keras.layers.ZeroPadding2D(1, dtype=dtype)(features_in)
    x = keras.layers.Conv2D(C_OUT, 3, strides=2, padding="valid", dtype=dtype, name="conv1")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPS, dtype=dtype, name="bn1")(x)
    x = keras.layers.ReLU(dtype=dtype)(x)
    x = keras.layers.Conv2D(C_OUT, 3, padding="same", dtype=dtype, name="conv2")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPS, dtype=dtype, name="bn2")(x)
    s = keras.layers.Conv2D(
        C_OUT, 1, strides=2, padding="valid", dtype=dtype, name=name("shortcut.conv")
    )(features_in)
    s = keras.layers.BatchNormalization(epsilon=BN_EPS, dtype=dtype, name=name("shortcut.bn"))(s)
    x = keras.layers.Add(dtype=dtype)([x, s])
    features = keras.layers.ReLU(dtype=dtype, name="features")(x)
    model = keras.Model(inputs=features_in, outputs=features, name="resnet_block")
    for conv in CONVS:
        # torch [out, in, kh, kw] -> Keras [kh, kw, in, out]
        model.get_layer(name(conv)).set_weights(
            [params[f"{conv}.weight"].transpose(2, 3, 1, 0), params[f"{conv}.bias"]]
        )
    for bn in BNS:
        model.get_layer(name(bn)).set_weights([params[f"{bn}.{k}"] for k in BN_KEYS])
    return model
