"""lstm: a single-layer LSTM classifier, [batch, seq, 16] -> LSTM 32 -> last hidden -> Dense 10.

Covers the ONNX LSTM op (or its unrolled MatMul/Sigmoid/Tanh form) and Gemm. The
output is taken from the last time step's hidden state, so every step contributes.

Conventions: torch's ``weight_ih_l0`` is ``[4u, in]`` with gate blocks i, f, g, o and
two biases ``bias_ih_l0 + bias_hh_l0``; Keras' kernel is ``[in, 4u]`` with gate blocks
i, f, c, o (the same order, g == c) and a single bias equal to the sum of the two.
"""

from __future__ import annotations

import numpy as np

from reference_models import init
from reference_models.interface import BATCH, SEQ, ModelSpec, Params, StressSet, TensorSpec

INPUT_SIZE = 16
HIDDEN = 32
CLASSES = 10

SPEC = ModelSpec(
    name="lstm",
    description="[batch, seq, 16] -> LSTM 32 (batch first) -> last hidden state -> Dense 10",
    inputs=(TensorSpec("sequence", "float32", (BATCH, SEQ, INPUT_SIZE), "NLC"),),
    outputs=(TensorSpec("logits", "float32", (BATCH, CLASSES), "NC"),),
    tags=("lstm", "sigmoid", "tanh", "gemm"),
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
    gates = 4 * HIDDEN
    return {
        # Twice Glorot over the full gate block: pre-activations near unit scale, so the
        # gates stay in their sensitive range. h = o * tanh(c) is damped by the output
        # gate; at plain Glorot |h| averages ~0.1, at 2x ~0.15 with max ~0.8 (unsaturated).
        "lstm.weight_ih_l0": 2.0
        * init.glorot(rng, (gates, INPUT_SIZE), fan_in=INPUT_SIZE, fan_out=gates),
        "lstm.weight_hh_l0": 2.0 * init.glorot(rng, (gates, HIDDEN), fan_in=HIDDEN, fan_out=gates),
        "lstm.bias_ih_l0": init.bias(rng, gates),
        "lstm.bias_hh_l0": init.bias(rng, gates),
        # Larger than He so the logits spread across the batch.
        "fc.weight": init.he(rng, (CLASSES, HIDDEN), fan_in=HIDDEN) * 2.0,
        "fc.bias": init.bias(rng, CLASSES),
    }


def make_inputs(batch: int, seq_len: int | None, seed: int) -> dict[str, np.ndarray]:
    if seq_len is None:
        raise ValueError("lstm is a sequence model: seq_len is required")
    rng = init.rng_for(seed)
    return {"sequence": init.normal_inputs(rng, (batch, seq_len, INPUT_SIZE))}


def build_torch(params: Params):
    import torch
    from torch import nn

    class LstmClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(INPUT_SIZE, HIDDEN, batch_first=True)
            self.fc = nn.Linear(HIDDEN, CLASSES)

        def forward(self, sequence):
            outputs, _ = self.lstm(sequence)
            return (self.fc(outputs[:, -1, :]),)

    model = LstmClassifier().double()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    return model.eval()


def build_keras(params: Params, dtype: str):
    import keras

    sequence = keras.Input(shape=(None, INPUT_SIZE), dtype=dtype, name="sequence")
    hidden = keras.layers.LSTM(
        HIDDEN,
        activation="tanh",
        recurrent_activation="sigmoid",
        return_sequences=False,
        dtype=dtype,
        name="lstm",
    )(sequence)
    logits = keras.layers.Dense(CLASSES, dtype=dtype, name="fc")(hidden)
    model = keras.Model(inputs=sequence, outputs=[logits], name="lstm")
    # Gate order i, f, g(c), o is the same in both frameworks: transpose only.
    model.get_layer("lstm").set_weights(
        [
            params["lstm.weight_ih_l0"].T,
            params["lstm.weight_hh_l0"].T,
            params["lstm.bias_ih_l0"] + params["lstm.bias_hh_l0"],
        ]
    )
    model.get_layer("fc").set_weights([params["fc.weight"].T, params["fc.bias"]])
    return model
