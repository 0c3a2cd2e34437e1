"""unet_tiny: a two-level U-Net, 3x32x32 -> 2x32x32 per-pixel class logits.

Down path: [Conv 3x3 -> ReLU] -> skip, MaxPool 2x2, twice (16, 32 channels); bottleneck
Conv 3x3 -> ReLU (48 channels); up path: bilinear x2 upsampling -> concat with the skip
along channels (upsampled first, skip second) -> Conv 3x3 -> ReLU, twice (32, 16
channels); head Conv 1x1 -> 2 classes. Covers Conv, Relu, MaxPool, Resize (bilinear,
half-pixel centres) and Concat.

Upsampling is ``nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)`` in
torch, half-pixel centres with the source coordinate clamped at the border. Keras'
``UpSampling2D(interpolation="bilinear")`` computes the same function, but TensorFlow's
bilinear resize kernels only compute in float32 (a float64 input comes back with ~6e-8
relative error), far above the twin tolerance. So the float32 Keras model (the one
exported) uses ``UpSampling2D`` and exports as an ONNX Resize, while the float64 twin
spells the same x2 interpolation out exactly: output row 2i is 0.75 x[i] + 0.25 x[i-1],
row 2i+1 is 0.75 x[i] + 0.25 x[i+1], indices clamped to the image, then the same along
columns.
"""

from __future__ import annotations

import numpy as np

from reference_models import init
from reference_models.interface import BATCH, ModelSpec, Params, TensorSpec

IN_CHANNELS = 3
SIZE = 32
CLASSES = 2
ENC1, ENC2, BOTTLENECK = 16, 32, 48
DEC2, DEC1 = 32, 16

SPEC = ModelSpec(
    name="unet_tiny",
    description=(
        "two-level U-Net (16, 32, 48 ch), MaxPool down, bilinear x2 up, skip concat,"
        " 1x1 head to 2 classes"
    ),
    inputs=(TensorSpec("image", "float32", (BATCH, IN_CHANNELS, SIZE, SIZE), "NCHW"),),
    outputs=(TensorSpec("mask_logits", "float32", (BATCH, CLASSES, SIZE, SIZE), "NCHW"),),
    tags=("conv", "relu", "max_pool", "resize", "bilinear", "concat"),
)

# name, in channels, out channels, kernel size
CONVS = (
    ("enc1", IN_CHANNELS, ENC1, 3),
    ("enc2", ENC1, ENC2, 3),
    ("bottleneck", ENC2, BOTTLENECK, 3),
    ("dec2", BOTTLENECK + ENC2, DEC2, 3),
    ("dec1", DEC2 + ENC1, DEC1, 3),
    ("head", DEC1, CLASSES, 1),
)


def make_params(seed: int) -> Params:
    rng = init.rng_for(seed)
    params: Params = {}
    for name, c_in, c_out, k in CONVS:
        params[f"{name}.weight"] = init.he(rng, (c_out, c_in, k, k), fan_in=c_in * k * k)
        params[f"{name}.bias"] = init.bias(rng, c_out)
    return params


def make_inputs(batch: int, seq_len: int | None, seed: int) -> dict[str, np.ndarray]:
    rng = init.rng_for(seed)
    return {"image": init.normal_inputs(rng, (batch, IN_CHANNELS, SIZE, SIZE))}


def build_torch(params: Params):
    import torch
    from torch import nn

    class UnetTiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            for name, c_in, c_out, k in CONVS:
                self.add_module(name, nn.Conv2d(c_in, c_out, k, padding=k // 2))
            self.pool = nn.MaxPool2d(2)
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)

        def forward(self, image):
            skip1 = torch.relu(self.enc1(image))
            skip2 = torch.relu(self.enc2(self.pool(skip1)))
            x = torch.relu(self.bottleneck(self.pool(skip2)))
            x = torch.relu(self.dec2(torch.cat([self.up(x), skip2], dim=1)))
            x = torch.relu(self.dec1(torch.cat([self.up(x), skip1], dim=1)))
            return self.head(x)

    model = UnetTiny().double()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    return model.eval()


def build_keras(params: Params, dtype: str):
    import keras

    class ExactBilinearUp2x(keras.layers.Layer):
        """x2 bilinear upsampling, half-pixel centres, clamped border, NHWC, in any dtype."""

        @staticmethod
        def _up_axis(x, axis: int):
            n = x.shape[axis]

            def take(start: int, stop: int):
                return keras.ops.take(x, np.arange(start, stop), axis=axis)

            prev = keras.ops.concatenate([take(0, 1), take(0, n - 1)], axis=axis)
            nxt = keras.ops.concatenate([take(1, n), take(n - 1, n)], axis=axis)
            even = 0.75 * x + 0.25 * prev
            odd = 0.75 * x + 0.25 * nxt
            shape = [-1 if d is None else d for d in x.shape]
            shape[axis] = 2 * n
            return keras.ops.reshape(keras.ops.stack([even, odd], axis=axis + 1), shape)

        def call(self, x):
            return self._up_axis(self._up_axis(x, 1), 2)

    def upsample(x, name: str):
        if dtype == "float64":
            return ExactBilinearUp2x(dtype=dtype, name=name)(x)
        return keras.layers.UpSampling2D(2, interpolation="bilinear", dtype=dtype, name=name)(x)

    def conv(x, name: str, relu: bool = True):
        ((_, _, c_out, k),) = [c for c in CONVS if c[0] == name]
        x = keras.layers.Conv2D(c_out, k, padding="same", dtype=dtype, name=name)(x)
        return keras.layers.ReLU(dtype=dtype)(x) if relu else x

    image = keras.Input(shape=(SIZE, SIZE, IN_CHANNELS), dtype=dtype, name="image")
    skip1 = conv(image, "enc1")
    skip2 = conv(keras.layers.MaxPooling2D(2, dtype=dtype)(skip1), "enc2")
    x = conv(keras.layers.MaxPooling2D(2, dtype=dtype)(skip2), "bottleneck")
    x = keras.layers.Concatenate(axis=-1, dtype=dtype)([upsample(x, "up2"), skip2])
    x = conv(x, "dec2")
    x = keras.layers.Concatenate(axis=-1, dtype=dtype)([upsample(x, "up1"), skip1])
    x = conv(x, "dec1")
    mask_logits = conv(x, "head", relu=False)
    model = keras.Model(inputs=image, outputs=mask_logits, name="unet_tiny")
    for name, *_ in CONVS:
        # torch [out, in, kh, kw] -> Keras [kh, kw, in, out]
        model.get_layer(name).set_weights(
            [params[f"{name}.weight"].transpose(2, 3, 1, 0), params[f"{name}.bias"]]
        )
    return model
