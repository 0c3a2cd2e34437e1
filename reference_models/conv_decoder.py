"""conv_decoder: one up-sampling decoder stage (diffusion / segmentation style), 8x8x8 -> 3x16x16.

``h = ConvTranspose 3x3 stride 2 (padding 1, output padding 1)(SiLU(GroupNorm(4)(x)))`` (8x8 ->
16x16), ``h = Conv 3x3(SiLU(GroupNorm(4)(h)))``, plus the skip ``nearest-upsample(x)`` (Add),
then ``InstanceNorm -> Conv 1x1 (8 -> 3)``, plus a sub-pixel branch ``PixelShuffle(2)(Conv 1x1
8 -> 12 (x))`` (Add). Covers ConvTranspose (with output padding), GroupNormalization (or
InstanceNormalization + Reshape, or its decomposition), SiLU, Resize (nearest),
InstanceNormalization, DepthToSpace, Conv, Add.

DepthToSpace: torch's ``pixel_shuffle`` takes input channel ``c * 4 + (i * 2 + j)`` to output
channel c at offset (i, j) (ONNX mode CRD); TensorFlow's ``depth_to_space`` takes channel
``(i * 2 + j) * 3 + c`` (mode DCR). The Keras twin permutes the 1x1 conv's output channels so
both compute the same function; a runtime that ignores ``mode`` gives different numbers.

ConvTranspose conventions: torch ``ConvTranspose2d`` weight ``[in, out, kh, kw]``; Keras
``Conv2DTranspose`` kernel ``[kh, kw, out, in]``. Torch's padding 1 / output padding 1 keeps
elements 1..16 of the full (unpadded, 17-wide) transposed convolution; the Keras twin computes
the full one ("valid") and crops one row and column at the start (Cropping2D), since Keras'
"same" keeps elements 0..15 instead. The instance norm is torch ``InstanceNorm2d(affine)`` and
Keras ``GroupNormalization(groups=channels)``.

The near-zero-variance stress set feeds inputs whose every (sample, group) slice is a small
constant (|c| <= 0.01) plus noise of 1e-4: the first GroupNorm divides by sqrt(var + eps) with
var ~1e-8, a thousandth of eps, so where and whether eps is added decides the output.
"""

from __future__ import annotations

import numpy as np

from reference_models import init
from reference_models.interface import BATCH, ModelSpec, Params, StressSet, TensorSpec

CHANNELS = 8
GROUPS = 4
OUT_CHANNELS = 3
SIZE = 8
EPS = 1e-5

SPEC = ModelSpec(
    name="conv_decoder",
    description=(
        "8x8x8 -> GroupNorm SiLU ConvTranspose 3x3/2 (output padding 1) -> GroupNorm SiLU Conv 3x3"
        " + nearest-upsampled skip -> InstanceNorm -> Conv 1x1, + PixelShuffle branch: 3x16x16"
    ),
    inputs=(TensorSpec("latent", "float32", (BATCH, CHANNELS, SIZE, SIZE), "NCHW"),),
    outputs=(TensorSpec("image", "float32", (BATCH, OUT_CHANNELS, 2 * SIZE, 2 * SIZE), "NCHW"),),
    tags=(
        "conv_transpose",
        "output_padding",
        "group_norm",
        "instance_norm",
        "silu",
        "resize_nearest",
        "conv",
        "skip_connection",
        "depth_to_space",
    ),
    stress=(
        StressSet(
            "near_zero_variance",
            "each (sample, group) slice a constant (|c| <= 0.01) + 1e-4 noise: variance ~1e-8"
            " before GroupNorm (eps 1e-5)",
            batch=2,
        ),
    ),
)


def make_params(seed: int) -> Params:
    rng = init.rng_for(seed)
    params: Params = {}
    for norm in ("norm1", "norm2", "norm_out"):
        params[f"{norm}.weight"] = rng.uniform(0.5, 1.5, size=(CHANNELS,))
        params[f"{norm}.bias"] = init.bias(rng, CHANNELS, scale=0.3)
    params["up.weight"] = init.he(rng, (CHANNELS, CHANNELS, 3, 3), fan_in=CHANNELS * 9 // 4)
    params["up.bias"] = init.bias(rng, CHANNELS)
    params["conv.weight"] = init.he(rng, (CHANNELS, CHANNELS, 3, 3), fan_in=CHANNELS * 9)
    params["conv.bias"] = init.bias(rng, CHANNELS)
    params["out.weight"] = init.he(rng, (OUT_CHANNELS, CHANNELS, 1, 1), fan_in=CHANNELS)
    params["out.bias"] = init.bias(rng, OUT_CHANNELS)
    params["shuffle.weight"] = init.he(rng, (OUT_CHANNELS * 4, CHANNELS, 1, 1), fan_in=CHANNELS)
    params["shuffle.bias"] = init.bias(rng, OUT_CHANNELS * 4)
    return params


def dcr_order() -> list[int]:
    """Keras channel k = (i * 2 + j) * 3 + c reads torch channel c * 4 + (i * 2 + j)."""
    return [c * 4 + block for block in range(4) for c in range(OUT_CHANNELS)]


def make_inputs(batch: int, seq_len: int | None, seed: int) -> dict[str, np.ndarray]:
    rng = init.rng_for(seed)
    # A per-channel offset, so the GroupNorm statistics differ between samples and groups.
    offset = rng.uniform(-1.0, 1.0, size=(batch, CHANNELS, 1, 1))
    return {"latent": offset + init.normal_inputs(rng, (batch, CHANNELS, SIZE, SIZE))}


def make_stress_inputs(
    stress: StressSet, batch: int, seq_len: int | None, seed: int
) -> dict[str, np.ndarray]:
    if stress.name != "near_zero_variance":
        raise ValueError(f"conv_decoder has no stress set {stress.name!r}")
    rng = init.rng_for(seed)
    # Offsets stay small: on a large one, float32 loses the 1e-4 noise itself (x - mean has
    # relative error ulp(offset) / 1e-4), an ill-conditioned input no float32 runtime can pass.
    per_group = rng.uniform(-0.01, 0.01, size=(batch, GROUPS, 1, 1, 1))
    noise = 1e-4 * init.normal_inputs(rng, (batch, GROUPS, CHANNELS // GROUPS, SIZE, SIZE))
    return {"latent": (per_group + noise).reshape(batch, CHANNELS, SIZE, SIZE)}


def build_torch(params: Params):
    import torch
    import torch.nn.functional as F
    from torch import nn

    class ConvDecoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm1 = nn.GroupNorm(GROUPS, CHANNELS, eps=EPS)
            self.up = nn.ConvTranspose2d(
                CHANNELS, CHANNELS, 3, stride=2, padding=1, output_padding=1
            )
            self.norm2 = nn.GroupNorm(GROUPS, CHANNELS, eps=EPS)
            self.conv = nn.Conv2d(CHANNELS, CHANNELS, 3, padding=1)
            self.norm_out = nn.InstanceNorm2d(CHANNELS, eps=EPS, affine=True)
            self.out = nn.Conv2d(CHANNELS, OUT_CHANNELS, 1)
            self.shuffle = nn.Conv2d(CHANNELS, OUT_CHANNELS * 4, 1)

        def forward(self, latent):
            h = self.up(F.silu(self.norm1(latent)))
            h = self.conv(F.silu(self.norm2(h)))
            h = h + F.interpolate(latent, scale_factor=2.0, mode="nearest")
            sub_pixel = F.pixel_shuffle(self.shuffle(latent), 2)
            return (self.out(self.norm_out(h)) + sub_pixel,)

    model = ConvDecoder().double()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    return model.eval()


def build_keras(params: Params, dtype: str):
    import keras
    import tensorflow as tf

    latent = keras.Input(shape=(SIZE, SIZE, CHANNELS), dtype=dtype, name="latent")

    def norm(name: str, groups: int):
        return keras.layers.GroupNormalization(groups, epsilon=EPS, dtype=dtype, name=name)

    def silu(t):
        return keras.layers.Activation("silu", dtype=dtype)(t)

    h = silu(norm("norm1", GROUPS)(latent))
    h = keras.layers.Conv2DTranspose(
        CHANNELS, 3, strides=2, padding="valid", dtype=dtype, name="up"
    )(h)
    h = keras.layers.Cropping2D(((1, 0), (1, 0)), dtype=dtype)(h)
    h = silu(norm("norm2", GROUPS)(h))
    h = keras.layers.Conv2D(CHANNELS, 3, padding="same", dtype=dtype, name="conv")(h)
    skip = keras.layers.UpSampling2D(2, interpolation="nearest", dtype=dtype)(latent)
    h = keras.layers.Add(dtype=dtype)([h, skip])
    h = norm("norm_out", CHANNELS)(h)
    h = keras.layers.Conv2D(OUT_CHANNELS, 1, dtype=dtype, name="out")(h)
    sub_pixel = keras.layers.Conv2D(OUT_CHANNELS * 4, 1, dtype=dtype, name="shuffle")(latent)
    sub_pixel = keras.layers.Lambda(lambda t: tf.nn.depth_to_space(t, 2), dtype=dtype)(sub_pixel)
    image = keras.layers.Add(dtype=dtype)([h, sub_pixel])
    model = keras.Model(inputs=latent, outputs=image, name="conv_decoder")
    for name in ("norm1", "norm2", "norm_out"):
        model.get_layer(name).set_weights([params[f"{name}.weight"], params[f"{name}.bias"]])
    # torch ConvTranspose2d [in, out, kh, kw] -> Keras Conv2DTranspose [kh, kw, out, in]
    model.get_layer("up").set_weights(
        [params["up.weight"].transpose(2, 3, 1, 0), params["up.bias"]]
    )
    for conv in ("conv", "out"):
        model.get_layer(conv).set_weights(
            [params[f"{conv}.weight"].transpose(2, 3, 1, 0), params[f"{conv}.bias"]]
        )
    order = dcr_order()
    model.get_layer("shuffle").set_weights(
        [params["shuffle.weight"][order].transpose(2, 3, 1, 0), params["shuffle.bias"][order]]
    )
    return model
