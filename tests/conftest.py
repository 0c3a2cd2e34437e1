"""Shared fixtures: the committed pack, and a skip for build-stage tests without frameworks."""

from __future__ import annotations

import importlib.util

import pytest

from conformance.pack.load import Pack
from conformance.spec import PACK_DIR

FRAMEWORKS = all(importlib.util.find_spec(m) for m in ("torch", "tensorflow", "tf2onnx"))
needs_frameworks = pytest.mark.skipif(
    not FRAMEWORKS, reason="needs the frameworks extra (torch, tensorflow, tf2onnx)"
)


@pytest.fixture(scope="session")
def pack() -> Pack:
    return Pack(PACK_DIR)
