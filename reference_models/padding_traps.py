"""padding_traps: TensorFlow "same" padding that is asymmetric, and an explicit asymmetric Pad.

4x16x16 -> Conv 3x3 stride 2 "same" (8 ch; TF pads 0 before and 1 after on even sizes) -> ReLU
-> subtract 1 (so the pooled values are often negative) -> MaxPool 3x3 stride 2 "same" (pads 0
before, 1 after, padded with -inf) -> explicit Pad ((1, 2) rows, (2, 0) columns, zeros) ->
Conv 3x3 "valid" (8 ch): 8x5x4. A runtime that puts "same" padding on the wrong side, pads
a max pool with zeros, or reads the Pad's begin/end pairs in the wrong order gives different
numbers.

The Keras twin is written as TensorFlow users write it: ``padding="same"`` on the stride-2
Conv2D and MaxPooling2D, ``ZeroPadding2D(((1, 2), (2, 0)))``. torch has no asymmetric "same"
for strided layers, so its twin pads explicitly: ``F.pad(x, (0, 1, 0, 1))`` before the conv,
``F.pad(..., value=-inf)`` before the pool, ``F.pad(x, (2, 0, 1, 2))`` (last dim first).
tests/test_reference_models.py asserts that every artifact of this family carries asymmetric
pads (Conv/MaxPool ``pads``, or a Pad node's pads) or a SAME_UPPER/SAME_LOWER ``auto_pad``.
"""

from __future__ import annotations

import numpy as np

from reference_models import init
from reference_models.interface import BATCH, ModelSpec, Params, TensorSpec

C_IN = 4
C_MID = 8
SIZE = 16
EXPLICIT_PAD = ((1, 2), (2, 0))  # (rows before, after), (columns before, after)
OUT_H = SIZE // 4 + sum(EXPLICIT_PAD[0]) - 2
OUT_W = SIZE // 4 + sum(EXPLICIT_PAD[1]) - 2

SPEC = ModelSpec(
    name="padding_traps",
    description=(
        "4x16x16 -> Conv 3x3/2 'same' ReLU -> MaxPool 3x3/2 'same' -> Pad ((1,2),(2,0)) ->"
        " Conv 3x3 valid: 8x5x4 (asymmetric padding that survives export)"
    ),
    inputs=(TensorSpec("features_in", "float32", (BATCH, C_IN, SIZE, SIZE), "NCHW"),),
    outputs=(TensorSpec("features", "float32", (BATCH, C_MID, OUT_H, OUT_W), "NCHW"),),
    tags=("conv", "strided_conv", "same_padding", "max_pool", "pad", "asymmetric_padding"),
)


def make_params(seed: int) -> Params:
    rng = init.rng_for(seed)
    return {
        "conv1.weight": init.he(rng, (C_MID, C_IN, 3, 3), fan_in=C_IN * 9),
        "conv1.bias": init.bias(rng, C_MID),
        "conv2.weight": init.he(rng, (C_MID, C_MID, 3, 3), fan_in=C_MID * 9),
        "conv2.bias": init.bias(rng, C_MID),
    }


def make_inputs(batch: int, seq_len: int | None, seed: int) -> dict[str, np.ndarray]:
    rng = init.rng_for(seed)
    return {"features_in": init.normal_inputs(rng, (batch, C_IN, SIZE, SIZE))}


def build_torch(params: Params):
    import torch
    import torch.nn.functional as F
    from torch import nn

    (top, bottom), (left, right) = EXPLICIT_PAD

    class PaddingTraps(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(C_IN, C_MID, 3, stride=2)
            self.conv2 = nn.Conv2d(C_MID, C_MID, 3)

        def forward(self, features_in):
            x = torch.relu(self.conv1(F.pad(features_in, (0, 1, 0, 1)))) - 1.0
            x = F.max_pool2d(F.pad(x, (0, 1, 0, 1), value=float("-inf")), 3, stride=2)
            x = self.conv2(F.pad(x, (left, right, top, bottom)))
            return (x,)

    model = PaddingTraps().double()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    return model.eval()


def build_keras(params: Params, dtype: str):
    import keras

    features_in = keras.Input(shape=(SIZE, SIZE, C_IN), dtype=dtype, name="features_in")
    x = keras.layers.Conv2D(
        C_MID, 3, strides=2, padding="same", activation="relu", dtype=dtype, name="conv1"
    )(features_in)
    x = keras.layers.Lambda(lambda t: t - 1.0, dtype=dtype)(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", dtype=dtype)(x)
    x = keras.layers.ZeroPadding2D(EXPLICIT_PAD, dtype=dtype)(x)
    features = keras.layers.Conv2D(C_MID, 3, padding="valid", dtype=dtype, name="conv2")(x)
    model = keras.Model(inputs=features_in, outputs=features, name="padding_traps")
    for conv in ("conv1", "conv2"):
        # torch [out, in, kh, kw] -> Keras [kh, kw, in, out]
        model.get_layer(conv).set_weights(
            [params[f"{conv}.weight"].transpose(2, 3, 1, 0), params[f"{conv}.bias"]]
        )
    return model
