"""conv1d_audio: a tiny raw-waveform keyword classifier over 1024 samples.

Conv1d(1, 16, k=9, stride 2) -> BN -> ReLU -> MaxPool1d(4) -> Conv1d(16, 32, k=5) -> BN
-> ReLU -> AvgPool1d(4) -> global average pool -> Linear 8. Covers 1-D Conv (strided),
BatchNormalization, Relu, MaxPool, AveragePool, GlobalAveragePool/ReduceMean, Gemm.
All convolutions and pools are "valid" (no padding); BN eps is 1e-5 on both sides.
"""

from __future__ import annotations

import numpy as np

from reference_models import init
from reference_models.interface import BATCH, ModelSpec, Params, TensorSpec

LENGTH = 1024
NUM_CLASSES = 8
BN_EPS = 1e-5

SPEC = ModelSpec(
    name="conv1d_audio",
    description=(
        "Conv1d(1,16,k9,s2) BN ReLU MaxPool4 -> Conv1d(16,32,k5) BN ReLU AvgPool4 "
        "-> global average pool -> Linear 8 (raw-audio classifier)"
    ),
    inputs=(TensorSpec("waveform", "float32", (BATCH, 1, LENGTH), "NCL"),),
    outputs=(TensorSpec("logits", "float32", (BATCH, NUM_CLASSES), "NC"),),
    tags=(
        "conv1d",
        "strided_conv",
        "batchnorm",
        "relu",
        "maxpool",
        "avgpool",
        "global_avgpool",
        "gemm",
    ),
)


def make_params(seed: int) -> Params:
    rng = init.rng_for(seed)
    params: Params = {
        "conv1.weight": init.he(rng, (16, 1, 9), fan_in=1 * 9),
        "conv1.bias": init.bias(rng, 16),
    }
    params.update(init.batch_norm(rng, 16, "bn1"))
    params["conv2.weight"] = init.he(rng, (32, 16, 5), fan_in=16 * 5)
    params["conv2.bias"] = init.bias(rng, 32)
    params.update(init.batch_norm(rng, 32, "bn2"))
    # Larger than He: global average pooling over ~30 steps smooths the features, so
    # the head is scaled up for the logits to spread across samples.
    params["fc.weight"] = init.he(rng, (NUM_CLASSES, 32), fan_in=32) * 3.0
    params["fc.bias"] = init.bias(rng, NUM_CLASSES)
    return params


def make_inputs(batch: int, seq_len: int | None, seed: int) -> dict[str, np.ndarray]:
    """Per sample: three sinusoids of random frequency, amplitude and phase, plus noise."""
    rng = init.rng_for(seed)
    t = np.arange(LENGTH) / LENGTH
    freqs = rng.uniform(4.0, 200.0, size=(batch, 3, 1))  # cycles per 1024 samples
    amps = rng.uniform(0.2, 1.0, size=(batch, 3, 1))
    phases = rng.uniform(0.0, 2.0 * np.pi, size=(batch, 3, 1))
    wave = np.sum(amps * np.sin(2.0 * np.pi * freqs * t + phases), axis=1)
    wave = wave + 0.1 * rng.standard_normal(size=(batch, LENGTH))
    return {"waveform": wave[:, None, :]}


def build_torch(params: Params):
    import torch
    from torch import nn

    class Conv1dAudio(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv1d(1, 16, kernel_size=9, stride=2)
            self.bn1 = nn.BatchNorm1d(16, eps=BN_EPS)
            self.pool1 = nn.MaxPool1d(4)
            self.conv2 = nn.Conv1d(16, 32, kernel_size=5)
            self.bn2 = nn.BatchNorm1d(32, eps=BN_EPS)
            self.pool2 = nn.AvgPool1d(4)
            self.fc = nn.Linear(32, NUM_CLASSES)

        def forward(self, waveform):
            x = self.pool1(torch.relu(self.bn1(self.conv1(waveform))))
            x = self.pool2(torch.relu(self.bn2(self.conv2(x))))
            x = x.mean(dim=2)
            return (self.fc(x),)

    model = Conv1dAudio().double()
    state = {k: torch.from_numpy(v) for k, v in params.items()}
    for bn in ("bn1", "bn2"):
        state[f"{bn}.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    model.load_state_dict(state)
    return model.eval()


def build_keras(params: Params, dtype: str):
    import keras

    waveform = keras.Input(shape=(LENGTH, 1), dtype=dtype, name="waveform")
    x = keras.layers.Conv1D(16, 9, strides=2, padding="valid", dtype=dtype, name="conv1")(waveform)
    x = keras.layers.BatchNormalization(epsilon=BN_EPS, dtype=dtype, name="bn1")(x)
    x = keras.layers.ReLU(dtype=dtype)(x)
    x = keras.layers.MaxPooling1D(4, padding="valid", dtype=dtype, name="pool1")(x)
    x = keras.layers.Conv1D(32, 5, padding="valid", dtype=dtype, name="conv2")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPS, dtype=dtype, name="bn2")(x)
    x = keras.layers.ReLU(dtype=dtype)(x)
    x = keras.layers.AveragePooling1D(4, padding="valid", dtype=dtype, name="pool2")(x)
    x = keras.layers.GlobalAveragePooling1D(dtype=dtype, name="gap")(x)
    logits = keras.layers.Dense(NUM_CLASSES, dtype=dtype, name="fc")(x)
    model = keras.Model(inputs=waveform, outputs=logits, name="conv1d_audio")
    for conv in ("conv1", "conv2"):
        # torch [out, in, k] -> Keras [k, in, out]
        kernel = np.transpose(params[f"{conv}.weight"], (2, 1, 0))
        model.get_layer(conv).set_weights([kernel, params[f"{conv}.bias"]])
    for bn in ("bn1", "bn2"):
        model.get_layer(bn).set_weights(
            [
                params[f"{bn}.weight"],
                params[f"{bn}.bias"],
                params[f"{bn}.running_mean"],
                params[f"{bn}.running_var"],
            ]
        )
    model.get_layer("fc").set_weights([params["fc.weight"].T, params["fc.bias"]])
    return model
