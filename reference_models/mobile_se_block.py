"""mobile_se_block: a MobileNetV3 bottleneck with squeeze-excite, 16x16x16 -> 16x16x16.

Conv 1x1 expand (16 -> 32) -> hard-swish -> depthwise Conv 3x3 -> hard-swish -> squeeze-excite
(global average pool -> Conv 1x1 32 -> 8 -> ReLU -> Conv 1x1 8 -> 32 -> hard-sigmoid -> Mul)
-> Conv 1x1 project (32 -> 16), plus the identity shortcut (Add). The depthwise and the
project convolutions are the depthwise-separable pair. Covers HardSwish, HardSigmoid (or
their Clip/Relu6 decompositions), GlobalAveragePool / ReduceMean, Mul with broadcasting,
depthwise Conv.

hard_sigmoid(x) = relu6(x + 3) / 6 and hard_swish(x) = x * hard_sigmoid(x) in both frameworks
(torch ``F.hardsigmoid`` / ``F.hardswish``, Keras ``hard_sigmoid`` / ``hard_swish``). Inputs
are scaled by 3 so activations reach both knees (-3 and +3) of the hard functions.
"""

from __future__ import annotations

import numpy as np

from reference_models import init
from reference_models.interface import BATCH, ModelSpec, Params, TensorSpec

CHANNELS = 16
HIDDEN = 32
SQUEEZE = 8
SIZE = 16

SPEC = ModelSpec(
    name="mobile_se_block",
    description=(
        "MobileNetV3 bottleneck: expand 1x1 (32) hard-swish, depthwise 3x3 hard-swish,"
        " squeeze-excite (pool, 8, ReLU, 32, hard-sigmoid, Mul), project 1x1, residual: 16x16x16"
    ),
    inputs=(TensorSpec("features_in", "float32", (BATCH, CHANNELS, SIZE, SIZE), "NCHW"),),
    outputs=(TensorSpec("features", "float32", (BATCH, CHANNELS, SIZE, SIZE), "NCHW"),),
    tags=(
        "conv",
        "depthwise_conv",
        "hard_swish",
        "hard_sigmoid",
        "squeeze_excite",
        "global_average_pool",
        "mul",
        "add",
    ),
)

CONVS = ("expand", "se_reduce", "se_expand", "project")


def make_params(seed: int) -> Params:
    rng = init.rng_for(seed)
    return {
        "expand.weight": init.he(rng, (HIDDEN, CHANNELS, 1, 1), fan_in=CHANNELS),
        "expand.bias": init.bias(rng, HIDDEN),
        "depthwise.weight": init.he(rng, (HIDDEN, 1, 3, 3), fan_in=9),
        "depthwise.bias": init.bias(rng, HIDDEN),
        "se_reduce.weight": init.he(rng, (SQUEEZE, HIDDEN, 1, 1), fan_in=HIDDEN) * 2.0,
        "se_reduce.bias": init.bias(rng, SQUEEZE),
        # Large enough that the excitation spreads over the whole (0, 1) range of hard-sigmoid.
        "se_expand.weight": init.he(rng, (HIDDEN, SQUEEZE, 1, 1), fan_in=SQUEEZE) * 2.0,
        "se_expand.bias": init.bias(rng, HIDDEN, scale=1.0),
        "project.weight": init.he(rng, (CHANNELS, HIDDEN, 1, 1), fan_in=HIDDEN),
        "project.bias": init.bias(rng, CHANNELS),
    }


def make_inputs(batch: int, seq_len: int | None, seed: int) -> dict[str, np.ndarray]:
    rng = init.rng_for(seed)
    offset = rng.uniform(-1.0, 1.0, size=(batch, CHANNELS, 1, 1))
    return {"features_in": 3.0 * (offset + init.normal_inputs(rng, (batch, CHANNELS, SIZE, SIZE)))}


def build_torch(params: Params):
    import torch
    import torch.nn.functional as F
    from torch import nn

    class MobileSEBlock(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.expand = nn.Conv2d(CHANNELS, HIDDEN, 1)
            self.depthwise = nn.Conv2d(HIDDEN, HIDDEN, 3, padding=1, groups=HIDDEN)
            self.se_reduce = nn.Conv2d(HIDDEN, SQUEEZE, 1)
            self.se_expand = nn.Conv2d(SQUEEZE, HIDDEN, 1)
            self.project = nn.Conv2d(HIDDEN, CHANNELS, 1)

        def forward(self, features_in):
            x = F.hardswish(self.expand(features_in))
            x = F.hardswish(self.depthwise(x))
            s = F.adaptive_avg_pool2d(x, 1)
            s = F.hardsigmoid(self.se_expand(torch.relu(self.se_reduce(s))))
            x = self.project(x * s)
            return (features_in + x,)

    model = MobileSEBlock().double()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    return model.eval()


def build_keras(params: Params, dtype: str):
    import keras

    def act(name: str, t):
        return keras.layers.Activation(name, dtype=dtype)(t)

    features_in = keras.Input(shape=(SIZE, SIZE, CHANNELS), dtype=dtype, name="features_in")
    x = act("hard_swish", keras.layers.Conv2D(HIDDEN, 1, dtype=dtype, name="expand")(features_in))
    x = keras.layers.DepthwiseConv2D(3, padding="same", dtype=dtype, name="depthwise")(x)
    x = act("hard_swish", x)
    s = keras.layers.GlobalAveragePooling2D(keepdims=True, dtype=dtype)(x)
    s = act("relu", keras.layers.Conv2D(SQUEEZE, 1, dtype=dtype, name="se_reduce")(s))
    s = act("hard_sigmoid", keras.layers.Conv2D(HIDDEN, 1, dtype=dtype, name="se_expand")(s))
    x = keras.layers.Multiply(dtype=dtype)([x, s])
    x = keras.layers.Conv2D(CHANNELS, 1, dtype=dtype, name="project")(x)
    features = keras.layers.Add(dtype=dtype, name="features")([features_in, x])
    model = keras.Model(inputs=features_in, outputs=features, name="mobile_se_block")
    for conv in CONVS:
        # torch [out, in, kh, kw] -> Keras [kh, kw, in, out]
        model.get_layer(conv).set_weights(
            [params[f"{conv}.weight"].transpose(2, 3, 1, 0), params[f"{conv}.bias"]]
        )
    # torch depthwise [C, 1, kh, kw] -> Keras DepthwiseConv2D [kh, kw, C, 1]
    model.get_layer("depthwise").set_weights(
        [params["depthwise.weight"].transpose(2, 3, 0, 1), params["depthwise.bias"]]
    )
    return model
