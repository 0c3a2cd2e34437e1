"""mobilenet_block: one MobileNetV2 inverted residual block, stride 1, 16x16x16 -> 16x16x16.

Conv 1x1 expand (x6, 16 -> 96) -> BN -> ReLU6 -> depthwise Conv 3x3 -> BN -> ReLU6 ->
Conv 1x1 project (96 -> 16) -> BN, plus the identity shortcut (Add). Covers grouped /
depthwise Conv (group = channels), Clip (ReLU6), BatchNormalization and Add.

Depthwise weights: torch Conv2d(groups=C) stores [C, 1, kh, kw]; the Keras
DepthwiseConv2D kernel (depth_multiplier 1) is [kh, kw, C, 1].
"""

from __future__ import annotations

import numpy as np

from reference_models import init
from reference_models.interface import BATCH, ModelSpec, Params, TensorSpec

BN_EPS = 1e-5
CHANNELS = 16
EXPANSION = 6
HIDDEN = CHANNELS * EXPANSION
SIZE = 16

SPEC = ModelSpec(
    name="mobilenet_block",
    description=(
        "MobileNetV2 inverted residual (expand x6, ReLU6, depthwise 3x3, project), 16x16x16"
    ),
    inputs=(TensorSpec("features_in", "float32", (BATCH, CHANNELS, SIZE, SIZE), "NCHW"),),
    outputs=(TensorSpec("features", "float32", (BATCH, CHANNELS, SIZE, SIZE), "NCHW"),),
    tags=("conv", "depthwise_conv", "batch_norm", "relu6", "add", "residual"),
)

BN_KEYS = ("weight", "bias", "running_mean", "running_var")
BNS = ("expand_bn", "depthwise_bn", "project_bn")


def make_params(seed: int) -> Params:
    rng = init.rng_for(seed)
    params: Params = {
        "expand.weight": init.he(rng, (HIDDEN, CHANNELS, 1, 1), fan_in=CHANNELS),
        "expand.bias": init.bias(rng, HIDDEN),
    }
    params.update(init.batch_norm(rng, HIDDEN, "expand_bn"))
    params["depthwise.weight"] = init.he(rng, (HIDDEN, 1, 3, 3), fan_in=9)
    params["depthwise.bias"] = init.bias(rng, HIDDEN)
    params.update(init.batch_norm(rng, HIDDEN, "depthwise_bn"))
    params["project.weight"] = init.he(rng, (CHANNELS, HIDDEN, 1, 1), fan_in=HIDDEN)
    params["project.bias"] = init.bias(rng, CHANNELS)
    params.update(init.batch_norm(rng, CHANNELS, "project_bn"))
    return params


def make_inputs(batch: int, seq_len: int | None, seed: int) -> dict[str, np.ndarray]:
    rng = init.rng_for(seed)
    # Scaled up so a fair share of the ReLU6 activations reach the upper clip at 6.
    return {"features_in": 2.0 * init.normal_inputs(rng, (batch, CHANNELS, SIZE, SIZE))}


def build_torch(params: Params):
    import torch
    from torch import nn

    class MobilenetBlock(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.expand = nn.Conv2d(CHANNELS, HIDDEN, 1)
            self.expand_bn = nn.BatchNorm2d(HIDDEN, eps=BN_EPS)
            self.depthwise = nn.Conv2d(HIDDEN, HIDDEN, 3, padding=1, groups=HIDDEN)
            self.depthwise_bn = nn.BatchNorm2d(HIDDEN, eps=BN_EPS)
            self.project = nn.Conv2d(HIDDEN, CHANNELS, 1)
            self.project_bn = nn.BatchNorm2d(CHANNELS, eps=BN_EPS)
            self.relu6 = nn.ReLU6()

        def forward(self, features_in):
            x = self.relu6(self.expand_bn(self.expand(features_in)))
            x = self.relu6(self.depthwise_bn(self.depthwise(x)))
            x = self.project_bn(self.project(x))
            return features_in + x

    model = MobilenetBlock().double()
    state = {k: torch.from_numpy(v) for k, v in params.items()}
    # BatchNorm2d also carries num_batches_tracked, which inference never reads.
    state.update({f"{bn}.num_batches_tracked": torch.tensor(0) for bn in BNS})
    model.load_state_dict(state)
    return model.eval()


def build_keras(params: Params, dtype: str):
    import keras

    features_in = keras.Input(shape=(SIZE, SIZE, CHANNELS), dtype=dtype, name="features_in")
    x = keras.layers.Conv2D(HIDDEN, 1, dtype=dtype, name="expand")(features_in)
    x = keras.layers.BatchNormalization(epsilon=BN_EPS, dtype=dtype, name="expand_bn")(x)
    x = keras.layers.ReLU(max_value=6.0, dtype=dtype)(x)
    x = keras.layers.DepthwiseConv2D(
        3, padding="same", depth_multiplier=1, dtype=dtype, name="depthwise"
    )(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPS, dtype=dtype, name="depthwise_bn")(x)
    x = keras.layers.ReLU(max_value=6.0, dtype=dtype)(x)
    x = keras.layers.Conv2D(CHANNELS, 1, dtype=dtype, name="project")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPS, dtype=dtype, name="project_bn")(x)
    features = keras.layers.Add(dtype=dtype, name="features")([features_in, x])
    model = keras.Model(inputs=features_in, outputs=features, name="mobilenet_block")
    for conv in ("expand", "project"):
        # torch [out, in, kh, kw] -> Keras [kh, kw, in, out]
        model.get_layer(conv).set_weights(
            [params[f"{conv}.weight"].transpose(2, 3, 1, 0), params[f"{conv}.bias"]]
        )
    # torch depthwise [C, 1, kh, kw] -> Keras DepthwiseConv2D [kh, kw, C, 1]
    model.get_layer("depthwise").set_weights(
        [params["depthwise.weight"].transpose(2, 3, 0, 1), params["depthwise.bias"]]
    )
    for bn in BNS:
        model.get_layer(bn).set_weights([params[f"{bn}.{k}"] for k in BN_KEYS])
    return model
