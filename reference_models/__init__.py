"""Reference model families, each defined twice (PyTorch and Keras) with the same weights.

``FAMILIES`` is the registry; :func:`load_family` imports one module, which must fulfil
the contract in :mod:`reference_models.interface` (checked by tests/test_reference_models.py).
"""

from __future__ import annotations

import importlib
from types import ModuleType

FAMILIES: tuple[str, ...] = (
    "mlp",
    "cnn",
    "resnet_block",
    "mobilenet_block",
    "lstm",
    "gru",
    "transformer_encoder",
    "unet_tiny",
    "embedding_mlp",
    "conv1d_audio",
    "decoder_block",
    "conv_decoder",
    "mobile_se_block",
    "detection_head",
    "padding_traps",
    "digits",
)

REQUIRED_NAMES = ("SPEC", "make_params", "make_inputs", "build_torch", "build_keras")


class UnknownFamilyError(KeyError):
    pass


def load_family(name: str) -> ModuleType:
    if name not in FAMILIES:
        raise UnknownFamilyError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}")
    return importlib.import_module(f"reference_models.{name}")
