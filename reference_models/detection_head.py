"""detection_head: a single-level, one-anchor detection head with box decoding, 16x8x8 in.

``f = Mish(Conv 3x3 16 -> 16 (x))`` (YOLOv4-style; Mish(x) = x tanh(softplus(x))); class logits
``Conv 1x1 16 -> 10`` and box deltas ``Conv 1x1 16 -> 4`` per location (64 locations,
row-major). Boxes are decoded against a fixed anchor per location (centre of the cell, size 2
cells): ``cx = ax + dx * aw``, ``cy = ay + dy * ah``, ``w = aw * exp(dw)``, ``h = ah *
exp(dh)``. Outputs: ``boxes`` [batch, 64, 4] (cx, cy, w, h), ``scores`` = sigmoid(logits)
[batch, 64, 10], ``labels`` = ArgMax of the logits over classes [batch, 64] (int64),
``log_probs`` = LogSoftmax of the logits [batch, 64, 10], ``top_logits`` = the 5 largest of the
per-location ReduceMax of the logits [batch, 5] (TopK values, sorted), and ``top_boxes`` = the
boxes of those 5 locations [batch, 5, 4] (gathered by the TopK indices). Covers Exp, Sigmoid,
LogSoftmax, ArgMax, ReduceMax, TopK, GatherElements/GatherND, Mish (or Softplus/Tanh/Mul),
Slice/Concat, Reshape/Transpose, Conv.

Labels come from the logits, not the sigmoid scores: saturated scores tie in float32 where the
float64 golden does not. The stress set scales the input by 8: exp arguments near 20, class
logits well above 88 before the sigmoid.
"""

from __future__ import annotations

import numpy as np

from reference_models import init
from reference_models.interface import BATCH, ModelSpec, Params, StressSet, TensorSpec

CHANNELS = 16
SIZE = 8
CLASSES = 10
TOP_K = 5
LOCATIONS = SIZE * SIZE

SPEC = ModelSpec(
    name="detection_head",
    description=(
        "16x8x8 -> Conv 3x3 Mish -> class logits (10) and box deltas (4) per location ->"
        " boxes (Exp decoding), sigmoid scores, ArgMax labels, TopK(5) of ReduceMax logits"
    ),
    inputs=(TensorSpec("features_in", "float32", (BATCH, CHANNELS, SIZE, SIZE), "NCHW"),),
    outputs=(
        TensorSpec("boxes", "float32", (BATCH, LOCATIONS, 4), "NLC"),
        TensorSpec("scores", "float32", (BATCH, LOCATIONS, CLASSES), "NLC"),
        TensorSpec("labels", "int64", (BATCH, LOCATIONS), "NL"),
        TensorSpec("log_probs", "float32", (BATCH, LOCATIONS, CLASSES), "NLC"),
        TensorSpec("top_logits", "float32", (BATCH, TOP_K), "NL"),
        TensorSpec("top_boxes", "float32", (BATCH, TOP_K, 4), "NLC"),
    ),
    tags=(
        "conv",
        "mish",
        "exp",
        "sigmoid",
        "log_softmax",
        "argmax",
        "reduce_max",
        "top_k",
        "gather_elements",
        "box_decoding",
    ),
    stress=(
        StressSet(
            "large_exp_and_logits",
            "inputs x8: exp arguments near 20, class logits above 110 before the sigmoid",
            batch=2,
            scale=8.0,
        ),
    ),
)


def anchors() -> np.ndarray:
    """[64, 4] (cx, cy, w, h) in cell units, row-major over the 8x8 grid."""
    ys, xs = np.meshgrid(np.arange(SIZE) + 0.5, np.arange(SIZE) + 0.5, indexing="ij")
    centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
    return np.concatenate([centres, np.full((LOCATIONS, 2), 2.0)], axis=1)


def make_params(seed: int) -> Params:
    rng = init.rng_for(seed)
    return {
        "conv.weight": init.he(rng, (CHANNELS, CHANNELS, 3, 3), fan_in=CHANNELS * 9),
        "conv.bias": init.bias(rng, CHANNELS),
        # Class logits spread over several units so ArgMax has clear winners.
        "cls.weight": init.he(rng, (CLASSES, CHANNELS, 1, 1), fan_in=CHANNELS) * 3.0,
        "cls.bias": init.bias(rng, CLASSES, scale=1.0),
        "box.weight": init.he(rng, (4, CHANNELS, 1, 1), fan_in=CHANNELS),
        "box.bias": init.bias(rng, 4),
    }


def make_inputs(batch: int, seq_len: int | None, seed: int) -> dict[str, np.ndarray]:
    rng = init.rng_for(seed)
    return {"features_in": init.normal_inputs(rng, (batch, CHANNELS, SIZE, SIZE))}


def build_torch(params: Params):
    import torch
    import torch.nn.functional as F
    from torch import nn

    class DetectionHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(CHANNELS, CHANNELS, 3, padding=1)
            self.cls = nn.Conv2d(CHANNELS, CLASSES, 1)
            self.box = nn.Conv2d(CHANNELS, 4, 1)
            self.register_buffer("anchors", torch.from_numpy(anchors()), persistent=False)

        def forward(self, features_in):
            f = F.mish(self.conv(features_in))
            logits = self.cls(f).flatten(2).transpose(1, 2)  # [B, 64, 10]
            deltas = self.box(f).flatten(2).transpose(1, 2)  # [B, 64, 4]
            centre = self.anchors[:, :2] + deltas[..., :2] * self.anchors[:, 2:]
            size = self.anchors[:, 2:] * torch.exp(deltas[..., 2:])
            boxes = torch.cat([centre, size], dim=-1)
            scores = torch.sigmoid(logits)
            labels = torch.argmax(logits, dim=-1)
            log_probs = torch.log_softmax(logits, dim=-1)
            best = torch.amax(logits, dim=-1)
            top = torch.topk(best, TOP_K, dim=-1)
            index = top.indices.unsqueeze(-1).expand(-1, -1, 4)
            top_boxes = torch.gather(boxes, 1, index)
            return boxes, scores, labels, log_probs, top.values, top_boxes

    model = DetectionHead().double()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    return model.eval()


def build_keras(params: Params, dtype: str):
    import keras
    from keras import ops

    class DecodeHead(keras.layers.Layer):
        """Box decoding against the fixed anchors, sigmoid, ArgMax, LogSoftmax, ReduceMax, TopK
        and the boxes of the top locations."""

        def call(self, logits, deltas):
            logits = ops.reshape(logits, (-1, LOCATIONS, CLASSES))
            deltas = ops.reshape(deltas, (-1, LOCATIONS, 4))
            grid = ops.convert_to_tensor(anchors().astype(dtype))
            centre = grid[:, :2] + deltas[..., :2] * grid[:, 2:]
            size = grid[:, 2:] * ops.exp(deltas[..., 2:])
            boxes = ops.concatenate([centre, size], axis=-1)
            labels = ops.cast(ops.argmax(logits, axis=-1), "int64")
            log_probs = ops.log_softmax(logits, axis=-1)
            top_logits, top_index = ops.top_k(ops.max(logits, axis=-1), TOP_K)
            top_boxes = ops.take_along_axis(boxes, ops.expand_dims(top_index, -1), axis=1)
            return boxes, ops.sigmoid(logits), labels, log_probs, top_logits, top_boxes

    features_in = keras.Input(shape=(SIZE, SIZE, CHANNELS), dtype=dtype, name="features_in")
    f = keras.layers.Conv2D(
        CHANNELS, 3, padding="same", activation="mish", dtype=dtype, name="conv"
    )(features_in)
    logits = keras.layers.Conv2D(CLASSES, 1, dtype=dtype, name="cls")(f)
    deltas = keras.layers.Conv2D(4, 1, dtype=dtype, name="box")(f)
    outputs = DecodeHead(dtype=dtype, name="decode")(logits, deltas)
    model = keras.Model(inputs=features_in, outputs=list(outputs), name="detection_head")
    for conv in ("conv", "cls", "box"):
        # torch [out, in, kh, kw] -> Keras [kh, kw, in, out]
        model.get_layer(conv).set_weights(
            [params[f"{conv}.weight"].transpose(2, 3, 1, 0), params[f"{conv}.bias"]]
        )
    return model
