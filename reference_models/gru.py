"""gru: a single-layer GRU classifier, [batch, seq, 16] -> GRU 32 -> last hidden -> Dense 10.

Covers the ONNX GRU op (``linear_before_reset=1``) or its unrolled form, and Gemm.

Conventions: torch's ``weight_ih_l0`` is ``[3u, in]`` with gate blocks r, z, n; Keras'
kernel is ``[in, 3u]`` with gate blocks z, r, h, so the first two blocks swap. Keras
with ``reset_after=True`` applies the reset gate after the recurrent matmul, as torch
does, and keeps both biases: its bias is ``(2, 3u)`` = [input bias; recurrent bias].
"""

from __future__ import annotations

import numpy as np

from reference_models import init
from reference_models.interface import BATCH, SEQ, ModelSpec, Params, StressSet, TensorSpec

INPUT_SIZE = 16
HIDDEN = 32
CLASSES = 10

SPEC = ModelSpec(
    name="gru",
    description=(
        "[batch, seq, 16] -> GRU 32 (batch first, reset after) -> last hidden state -> Dense 10"
    ),
    inputs=(TensorSpec("sequence", "float32", (BATCH, SEQ, INPUT_SIZE), "NLC"),),
    outputs=(TensorSpec("logits", "float32", (BATCH, CLASSES), "NC"),),
    tags=("gru", "sigmoid", "tanh", "gemm"),
    seq_lens=(12, 20),
    stress=(
        StressSet(
            "saturated_gates",
            "inputs x10: gate pre-activations far into the flat tails of sigmoid and tanh",
            batch=2,
            scale=10.0,
        ),
        StressSet(
            "long_sequence",
            "200 steps: state carried through a long recurrence",
            batch=1,
            seq_len=200,
        ),
    ),
)


def make_params(seed: int) -> Params:
    rng = init.rng_for(seed)
    gates = 3 * HIDDEN
    return {
        # Glorot over the full gate block: gates stay unsaturated, the state keeps moving.
        "gru.weight_ih_l0": init.glorot(rng, (gates, INPUT_SIZE), fan_in=INPUT_SIZE, fan_out=gates),
        "gru.weight_hh_l0": init.glorot(rng, (gates, HIDDEN), fan_in=HIDDEN, fan_out=gates),
        "gru.bias_ih_l0": init.bias(rng, gates),
        "gru.bias_hh_l0": init.bias(rng, gates),
        # Larger than He so the logits spread across the batch.
        "fc.weight": init.he(rng, (CLASSES, HIDDEN), fan_in=HIDDEN) * 2.0,
        "fc.bias": init.bias(rng, CLASSES),
    }


def make_inputs(batch: int, seq_len: int | None, seed: int) -> dict[str, np.ndarray]:
    if seq_len is None:
        raise ValueError("gru is a sequence model: seq_len is required")
    rng = init.rng_for(seed)
    return {"sequence": init.normal_inputs(rng, (batch, seq_len, INPUT_SIZE))}


def build_torch(params: Params):
    import torch
    from torch import nn

    class GruClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gru = nn.GRU(INPUT_SIZE, HIDDEN, batch_first=True)
            self.fc = nn.Linear(HIDDEN, CLASSES)

        def forward(self, sequence):
            outputs, _ = self.gru(sequence)
            return (self.fc(outputs[:, -1, :]),)

    model = GruClassifier().double()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    return model.eval()


def _torch_to_keras_gates(array: np.ndarray) -> np.ndarray:
    """Reorder the gate blocks along axis 0 from torch's r, z, n to Keras' z, r, h."""
    r, z, n = np.split(array, 3, axis=0)
    return np.concatenate([z, r, n], axis=0)


def build_keras(params: Params, dtype: str):
    import keras

    sequence = keras.Input(shape=(None, INPUT_SIZE), dtype=dtype, name="sequence")
    hidden = keras.layers.GRU(
        HIDDEN,
        activation="tanh",
        recurrent_activation="sigmoid",
        reset_after=True,
        return_sequences=False,
        dtype=dtype,
        name="gru",
    )(sequence)
    logits = keras.layers.Dense(CLASSES, dtype=dtype, name="fc")(hidden)
    model = keras.Model(inputs=sequence, outputs=[logits], name="gru")
    model.get_layer("gru").set_weights(
        [
            _torch_to_keras_gates(params["gru.weight_ih_l0"]).T,
            _torch_to_keras_gates(params["gru.weight_hh_l0"]).T,
            np.stack(
                [
                    _torch_to_keras_gates(params["gru.bias_ih_l0"]),
                    _torch_to_keras_gates(params["gru.bias_hh_l0"]),
                ]
            ),
        ]
    )
    model.get_layer("fc").set_weights([params["fc.weight"].T, params["fc.bias"]])
    return model
