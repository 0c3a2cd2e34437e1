"""transformer_encoder: two post-norm encoder layers, d_model 64, 4 heads, FFN 128 (GELU).

Each layer computes ``x = LN(x + MHA(x)); x = LN(x + FFN(x))`` with
``FFN = Linear 64->128, GELU (exact, erf), Linear 128->64`` and LayerNorm eps 1e-5, the
arithmetic of ``nn.TransformerEncoderLayer(norm_first=False, activation="gelu")``. No
masks, dropout off. Covers MatMul/Gemm, Softmax, LayerNormalization (or its
ReduceMean/Sqrt decomposition), Erf/Gelu, Transpose/Reshape.

The torch twin composes standard layers (``nn.MultiheadAttention``, ``nn.LayerNorm``,
``nn.Linear``) in its own module, as users write them; it avoids
``nn.TransformerEncoderLayer`` only so the layer boundaries match Keras one to one.
What the exporters make of ``nn.MultiheadAttention`` is part of what the pack tests
(the TorchScript exporter freezes the traced sequence length into its Reshapes).

Conventions: torch packs the q, k, v projections in ``in_proj_weight`` ``[3*64, 64]``
(rows q, k, v; within each, row ``h*16 + d`` is head h, dim d). Keras'
``MultiHeadAttention`` holds per-projection kernels ``[64, 4, 16]`` and biases
``[4, 16]``, and an output kernel ``[4, 16, 64]``. Both scale queries by 1/sqrt(16).
"""

from __future__ import annotations

import numpy as np

from reference_models import init
from reference_models.interface import BATCH, SEQ, ModelSpec, Params, StressSet, TensorSpec

D_MODEL = 64
HEADS = 4
HEAD_DIM = D_MODEL // HEADS
FFN = 128
LAYERS = 2
LN_EPS = 1e-5

SPEC = ModelSpec(
    name="transformer_encoder",
    description=(
        "[batch, seq, 64] -> 2 x post-norm encoder layer (MHA 4 heads, FFN 128 GELU)"
        " -> [batch, seq, 64]"
    ),
    inputs=(TensorSpec("embeddings", "float32", (BATCH, SEQ, D_MODEL), "NLC"),),
    outputs=(TensorSpec("encoded", "float32", (BATCH, SEQ, D_MODEL), "NLC"),),
    tags=("matmul", "gemm", "softmax", "layer_norm", "gelu", "attention", "transpose", "reshape"),
    seq_lens=(12, 20),
    stress=(
        StressSet(
            "attention_logits_above_88",
            "inputs x3: first-layer attention logits up to ~130 before the softmax, large erf"
            " arguments in the GELU",
            batch=2,
            scale=3.0,
        ),
        StressSet("long_sequence", "128 positions: a 128-key softmax", batch=1, seq_len=128),
    ),
)


def make_params(seed: int) -> Params:
    rng = init.rng_for(seed)
    params: Params = {}
    for i in range(LAYERS):
        p = f"layers.{i}"
        # Projections at twice Glorot scale (per projection) so the attention logits
        # spread and the softmax is far from uniform.
        params[f"{p}.self_attn.in_proj_weight"] = np.concatenate(
            [
                init.glorot(rng, (D_MODEL, D_MODEL), fan_in=D_MODEL, fan_out=D_MODEL) * 2.0
                for _ in range(3)
            ]
        )
        params[f"{p}.self_attn.in_proj_bias"] = init.bias(rng, 3 * D_MODEL)
        params[f"{p}.self_attn.out_proj.weight"] = init.glorot(
            rng, (D_MODEL, D_MODEL), fan_in=D_MODEL, fan_out=D_MODEL
        )
        params[f"{p}.self_attn.out_proj.bias"] = init.bias(rng, D_MODEL)
        params[f"{p}.linear1.weight"] = init.he(rng, (FFN, D_MODEL), fan_in=D_MODEL)
        params[f"{p}.linear1.bias"] = init.bias(rng, FFN)
        params[f"{p}.linear2.weight"] = init.glorot(
            rng, (D_MODEL, FFN), fan_in=FFN, fan_out=D_MODEL
        )
        params[f"{p}.linear2.bias"] = init.bias(rng, D_MODEL)
        for norm in ("norm1", "norm2"):
            params[f"{p}.{norm}.weight"] = rng.uniform(0.5, 1.5, size=(D_MODEL,))
            params[f"{p}.{norm}.bias"] = init.bias(rng, D_MODEL)
    return params


def make_inputs(batch: int, seq_len: int | None, seed: int) -> dict[str, np.ndarray]:
    if seq_len is None:
        raise ValueError("transformer_encoder is a sequence model: seq_len is required")
    rng = init.rng_for(seed)
    return {"embeddings": init.normal_inputs(rng, (batch, seq_len, D_MODEL))}


def build_torch(params: Params):
    import torch
    import torch.nn.functional as F
    from torch import nn

    class EncoderLayer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.self_attn = nn.MultiheadAttention(D_MODEL, HEADS, dropout=0.0, batch_first=True)
            self.linear1 = nn.Linear(D_MODEL, FFN)
            self.linear2 = nn.Linear(FFN, D_MODEL)
            self.norm1 = nn.LayerNorm(D_MODEL, eps=LN_EPS)
            self.norm2 = nn.LayerNorm(D_MODEL, eps=LN_EPS)

        def forward(self, x):
            x = self.norm1(x + self.self_attn(x, x, x, need_weights=False)[0])
            ffn = self.linear2(F.gelu(self.linear1(x), approximate="none"))
            return self.norm2(x + ffn)

    class TransformerEncoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList(EncoderLayer() for _ in range(LAYERS))

        def forward(self, embeddings):
            x = embeddings
            for layer in self.layers:
                x = layer(x)
            return (x,)

    model = TransformerEncoder().double()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    return model.eval()


def build_keras(params: Params, dtype: str):
    import keras

    # keras.activations.gelu(approximate=False) goes to tf.nn.gelu, which builds its
    # 1/sqrt(2) as a float32 constant: in float64 that is a ~1e-8 relative error, far
    # above the twin tolerance. So the float64 twin spells out torch's formula with the
    # constant in float64, and the float32 model (the one exported) uses Keras' own GELU
    # as users do -- tf2onnx's handling of it (TF Erfc) is part of what the pack tests.
    inv_sqrt2 = np.asarray(np.sqrt(0.5), dtype=dtype)

    def exact_gelu(t):
        if dtype == "float32":
            return keras.activations.gelu(t, approximate=False)
        return 0.5 * t * (1.0 + keras.ops.erf(t * inv_sqrt2))

    embeddings = keras.Input(shape=(None, D_MODEL), dtype=dtype, name="embeddings")
    x = embeddings
    for i in range(LAYERS):
        p = f"layers_{i}"
        attn = keras.layers.MultiHeadAttention(
            num_heads=HEADS,
            key_dim=HEAD_DIM,
            dropout=0.0,
            dtype=dtype,
            name=f"{p}_self_attn",
        )(x, x)
        x = keras.layers.Add(dtype=dtype)([x, attn])
        x = keras.layers.LayerNormalization(epsilon=LN_EPS, dtype=dtype, name=f"{p}_norm1")(x)
        ffn = keras.layers.Dense(FFN, dtype=dtype, name=f"{p}_linear1")(x)
        ffn = keras.layers.Activation(exact_gelu, dtype=dtype, name=f"{p}_gelu")(ffn)
        ffn = keras.layers.Dense(D_MODEL, dtype=dtype, name=f"{p}_linear2")(ffn)
        x = keras.layers.Add(dtype=dtype)([x, ffn])
        x = keras.layers.LayerNormalization(epsilon=LN_EPS, dtype=dtype, name=f"{p}_norm2")(x)
    model = keras.Model(inputs=embeddings, outputs=[x], name="transformer_encoder")

    for i in range(LAYERS):
        src, dst = f"layers.{i}", f"layers_{i}"
        w_q, w_k, w_v = np.split(params[f"{src}.self_attn.in_proj_weight"], 3, axis=0)
        b_q, b_k, b_v = np.split(params[f"{src}.self_attn.in_proj_bias"], 3)

        def in_kernel(w: np.ndarray) -> np.ndarray:
            # torch [out=h*16+d, in] -> Keras [in, heads, head_dim]
            return w.T.reshape(D_MODEL, HEADS, HEAD_DIM)

        mha = model.get_layer(f"{dst}_self_attn")
        mha.query_dense.set_weights([in_kernel(w_q), b_q.reshape(HEADS, HEAD_DIM)])
        mha.key_dense.set_weights([in_kernel(w_k), b_k.reshape(HEADS, HEAD_DIM)])
        mha.value_dense.set_weights([in_kernel(w_v), b_v.reshape(HEADS, HEAD_DIM)])
        mha.output_dense.set_weights(
            [
                params[f"{src}.self_attn.out_proj.weight"].T.reshape(HEADS, HEAD_DIM, D_MODEL),
                params[f"{src}.self_attn.out_proj.bias"],
            ]
        )
        for layer in ("linear1", "linear2"):
            model.get_layer(f"{dst}_{layer}").set_weights(
                [params[f"{src}.{layer}.weight"].T, params[f"{src}.{layer}.bias"]]
            )
        for norm in ("norm1", "norm2"):
            model.get_layer(f"{dst}_{norm}").set_weights(
                [params[f"{src}.{norm}.weight"], params[f"{src}.{norm}.bias"]]
            )
    return model
