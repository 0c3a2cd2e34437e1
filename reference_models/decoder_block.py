"""decoder_block: one pre-norm decoder-only transformer block with a tied output head.

``tokens [batch, seq] -> Embedding(1000, 16) -> x``; ``x = x + Attn(RMSNorm(x))`` with 2 heads
of 8, rotary position embeddings on q and k (the "rotate half" form, base 10000) and a causal
mask (scores of future keys set to -inf before the softmax); ``x = x + SwiGLU(RMSNorm(x))``
with ``SwiGLU(h) = down(silu(gate(h)) * up(h))``, 16 -> 32 -> 16; then ``logits = RMSNorm(x) @
E^T`` over the vocabulary of 1,000 (the head is tied to the embedding E). RMSNorm: ``x *
rsqrt(mean(x^2) + 1e-6) * g``. No biases (as in Llama-style blocks). Outputs: ``hidden`` =
RMSNorm(x) at every position [batch, seq, 16] (where a wrong causal mask shows: position i must
not see position j > i) and ``next_token_logits`` = the head at the last position [batch,
1000], as generation reads it (full [seq, 1000] logits would make the long-sequence test data
alone megabytes).

Covers Gather, Pow/Mul/ReduceMean/Sqrt (RMSNorm), Sin/Cos/Range (rotary), Einsum or MatMul,
Trilu + Where (torch: ``triu`` of ones, ``masked_fill``) or Greater + Where (Keras: position
comparison, ``where``) for the causal mask, Softmax, Sigmoid/Mul (SiLU), MatMul with a
transposed tied weight. Both twins write the same arithmetic with their own ops; what each
exporter makes of ``arange``/``einsum``/``masked_fill`` is part of what the pack tests. The
long-sequence stress set puts rotary angles up to 255 rad and a 256-key causal softmax in front
of the head.
"""

from __future__ import annotations

import numpy as np

from reference_models import init
from reference_models.interface import BATCH, SEQ, ModelSpec, Params, StressSet, TensorSpec

VOCAB = 1000
D_MODEL = 16
HEADS = 2
HEAD_DIM = D_MODEL // HEADS
FFN = 32
EPS = 1e-6
ROPE_BASE = 10000.0

SPEC = ModelSpec(
    name="decoder_block",
    description=(
        "tokens -> Embedding 1000x16 -> pre-norm decoder block (RMSNorm, causal 2-head attention"
        " with rotary embeddings, SwiGLU 32) -> RMSNorm (hidden) -> tied head at the last position:"
        " next_token_logits [batch, 1000]"
    ),
    inputs=(TensorSpec("tokens", "int64", (BATCH, SEQ), "NL"),),
    outputs=(
        TensorSpec("hidden", "float32", (BATCH, SEQ, D_MODEL), "NLC"),
        TensorSpec("next_token_logits", "float32", (BATCH, VOCAB), "NC"),
    ),
    tags=(
        "gather",
        "rms_norm",
        "rotary",
        "causal_mask",
        "einsum",
        "softmax",
        "swiglu",
        "silu",
        "tied_head",
        "large_vocabulary",
    ),
    seq_lens=(12, 20),
    stress=(
        StressSet(
            "long_sequence",
            "256 tokens: rotary angles up to 255 rad, a 256-key causal softmax",
            batch=1,
            seq_len=256,
        ),
    ),
)

LINEARS = {
    "q_proj": (D_MODEL, D_MODEL),
    "k_proj": (D_MODEL, D_MODEL),
    "v_proj": (D_MODEL, D_MODEL),
    "o_proj": (D_MODEL, D_MODEL),
    "gate": (FFN, D_MODEL),
    "up": (FFN, D_MODEL),
    "down": (D_MODEL, FFN),
}
NORMS = ("attn_norm", "ffn_norm", "final_norm")


def inv_freq() -> np.ndarray:
    return 1.0 / ROPE_BASE ** (np.arange(0, HEAD_DIM, 2, dtype=np.float64) / HEAD_DIM)


def make_params(seed: int) -> Params:
    rng = init.rng_for(seed)
    params: Params = {"embed.weight": init.normal_inputs(rng, (VOCAB, D_MODEL))}
    for name, (out, inp) in LINEARS.items():
        # q and k at twice Glorot scale so the attention logits spread (not a uniform softmax).
        gain = 2.0 if name in ("q_proj", "k_proj") else 1.0
        params[f"{name}.weight"] = init.glorot(rng, (out, inp), fan_in=inp, fan_out=out) * gain
    for norm in NORMS:
        params[f"{norm}.weight"] = rng.uniform(0.5, 1.5, size=(D_MODEL,))
    return params


def make_inputs(batch: int, seq_len: int | None, seed: int) -> dict[str, np.ndarray]:
    if seq_len is None:
        raise ValueError("decoder_block is a sequence model: seq_len is required")
    rng = init.rng_for(seed)
    # Token 0 is a valid id, but keep ids >= 1 so "never zeros" holds for the inputs.
    return {"tokens": rng.integers(1, VOCAB, size=(batch, seq_len)).astype(np.int64)}


def build_torch(params: Params):
    import torch
    import torch.nn.functional as F
    from torch import nn

    class RMSNorm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.ones(D_MODEL))

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * self.weight

    def rotate_half(x):
        half = HEAD_DIM // 2
        return torch.cat((-x[..., half:], x[..., :half]), dim=-1)

    class DecoderBlock(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(VOCAB, D_MODEL)
            for name, (out, inp) in LINEARS.items():
                self.add_module(name, nn.Linear(inp, out, bias=False))
            for norm in NORMS:
                self.add_module(norm, RMSNorm())
            self.register_buffer("inv_freq", torch.from_numpy(inv_freq()), persistent=False)

        def heads(self, t, b, s):
            return t.view(b, s, HEADS, HEAD_DIM).transpose(1, 2)

        def forward(self, tokens):
            b, s = tokens.shape
            x = self.embed(tokens)
            h = self.attn_norm(x)
            q = self.heads(self.q_proj(h), b, s)
            k = self.heads(self.k_proj(h), b, s)
            v = self.heads(self.v_proj(h), b, s)
            pos = torch.arange(s, dtype=x.dtype, device=x.device)
            angles = pos[:, None] * self.inv_freq[None, :]
            emb = torch.cat((angles, angles), dim=-1)
            cos, sin = emb.cos(), emb.sin()
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            scores = torch.einsum("bhqd,bhkd->bhqk", q, k) * (HEAD_DIM**-0.5)
            future = torch.ones(s, s, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(future, float("-inf"))
            attn = torch.softmax(scores, dim=-1)
            out = torch.einsum("bhqk,bhkd->bhqd", attn, v).transpose(1, 2).reshape(b, s, D_MODEL)
            x = x + self.o_proj(out)
            h = self.ffn_norm(x)
            x = x + self.down(F.silu(self.gate(h)) * self.up(h))
            hidden = self.final_norm(x)
            return hidden, F.linear(hidden[:, -1], self.embed.weight)

    model = DecoderBlock().double()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    return model.eval()


def build_keras(params: Params, dtype: str):
    import keras
    from keras import ops

    class RMSNorm(keras.layers.Layer):
        def build(self, input_shape):
            self.weight = self.add_weight(name="weight", shape=(D_MODEL,), initializer="ones")

        def call(self, x):
            return (
                x * ops.rsqrt(ops.mean(ops.square(x), axis=-1, keepdims=True) + EPS) * self.weight
            )

    class RotaryCausalAttention(keras.layers.Layer):
        """Split heads, rotate q and k, causal softmax(q k^T / sqrt(8)) v, merge heads."""

        def call(self, q, k, v):
            shape = ops.shape(q)
            b, s = shape[0], shape[1]

            def heads(t):
                return ops.transpose(ops.reshape(t, (b, s, HEADS, HEAD_DIM)), (0, 2, 1, 3))

            def rotate_half(t):
                half = HEAD_DIM // 2
                return ops.concatenate([-t[..., half:], t[..., :half]], axis=-1)

            q, k, v = heads(q), heads(k), heads(v)
            pos = ops.arange(s, dtype=self.compute_dtype)
            angles = ops.expand_dims(pos, 1) * ops.expand_dims(
                ops.convert_to_tensor(inv_freq().astype(dtype)), 0
            )
            emb = ops.concatenate([angles, angles], axis=-1)
            cos, sin = ops.cos(emb), ops.sin(emb)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            scale = np.asarray(HEAD_DIM**-0.5, dtype=dtype)
            scores = ops.einsum("bhqd,bhkd->bhqk", q, k) * scale
            future = ops.expand_dims(pos, 0) > ops.expand_dims(pos, 1)
            scores = ops.where(future, np.asarray(-np.inf, dtype=dtype), scores)
            attn = ops.softmax(scores, axis=-1)
            out = ops.transpose(ops.einsum("bhqk,bhkd->bhqd", attn, v), (0, 2, 1, 3))
            return ops.reshape(out, (b, s, D_MODEL))

    class TiedHead(keras.layers.Layer):
        """Last-position logits = h[:, -1] @ E^T with E the embedding's own table."""

        def __init__(self, embedding, **kwargs):
            super().__init__(**kwargs)
            self.embedding = embedding

        def call(self, h):
            return ops.matmul(h[:, -1], ops.transpose(self.embedding.embeddings))

    tokens = keras.Input(shape=(None,), dtype="int64", name="tokens")
    embed = keras.layers.Embedding(VOCAB, D_MODEL, dtype=dtype, name="embed")
    x = embed(tokens)

    def dense(name: str, units: int):
        return keras.layers.Dense(units, use_bias=False, dtype=dtype, name=name)

    h = RMSNorm(dtype=dtype, name="attn_norm")(x)
    q, k, v = (dense(n, D_MODEL)(h) for n in ("q_proj", "k_proj", "v_proj"))
    attn = RotaryCausalAttention(dtype=dtype, name="attention")(q, k, v)
    x = keras.layers.Add(dtype=dtype)([x, dense("o_proj", D_MODEL)(attn)])
    h = RMSNorm(dtype=dtype, name="ffn_norm")(x)
    gated = keras.layers.Activation("silu", dtype=dtype)(dense("gate", FFN)(h))
    ffn = dense("down", D_MODEL)(keras.layers.Multiply(dtype=dtype)([gated, dense("up", FFN)(h)]))
    x = keras.layers.Add(dtype=dtype)([x, ffn])
    hidden = RMSNorm(dtype=dtype, name="final_norm")(x)
    logits = TiedHead(embed, dtype=dtype, name="head")(hidden)
    model = keras.Model(inputs=tokens, outputs=[hidden, logits], name="decoder_block")

    embed.set_weights([params["embed.weight"]])
    for name in LINEARS:
        model.get_layer(name).set_weights([params[f"{name}.weight"].T])  # torch [out, in]
    for norm in NORMS:
        model.get_layer(norm).set_weights([params[f"{norm}.weight"]])
    return model
