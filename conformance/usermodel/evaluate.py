"""The float64 rewrite evaluated node by node, each value kept only while it is still needed.

``onnx.reference.ReferenceEvaluator.run`` keeps every intermediate value of the graph until it
returns: for a model with large activations, the float64 reference then holds all of them at
once (a 500-node model, 256 x 256 activations: 256 MB), several times what the model's own run
needs. Here each node runs alone on the evaluator (conformance.localize.nodes.evaluate_node:
the same operator implementations) and a value is dropped after its last reader, an
initializer is converted to an array only when a node reads it. A caller that wants some
intermediate values (localisation, chunk by chunk) asks for them with ``collect``.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from conformance.localize.nodes import evaluate_nodes, node_inputs, opsets_of, outside_inputs


class NodeError(ValueError):
    """A node the evaluator could not run (its index, the underlying error as the cause)."""

    def __init__(self, index: int, node: onnx.NodeProto, error: Exception) -> None:
        super().__init__(f"node {node.name or index} ({node.op_type}): {type(error).__name__}")
        self.index = index
        self.error = error


SEGMENT_BYTES = 2 * 1024 * 1024  # about what one segment of nodes may give at once
MAX_SEGMENT = 64  # nodes run by one evaluator
FIRST_SEGMENT = 8


class NodeStream:
    """The model's nodes evaluated in order on ``feeds``, a segment of consecutive nodes per
    evaluator (sized so a segment gives about SEGMENT_BYTES); the graph's outputs are kept, and
    ``retain`` names (what the caller will ``collect``, maybe more than once) until released."""

    def __init__(
        self,
        model: onnx.ModelProto,
        feeds: Mapping[str, np.ndarray],
        retain: Iterable[str] = (),
    ) -> None:
        graph = model.graph
        self._nodes = list(graph.node)
        self._opsets = opsets_of(model)
        self._functions = list(model.functions)
        self._initializers = {t.name: t for t in graph.initializer}
        self.values: dict[str, np.ndarray] = dict(feeds)
        self._outputs = {o.name for o in graph.output}
        self._retained: set[str] = set(retain)  # until release()
        self._wanted: set[str] = set()  # during a collect()
        self._last_read: dict[str, int] = {}
        for index, node in enumerate(self._nodes):
            for name in node_inputs(node):
                self._last_read[name] = index
        self.produced = {n for node in self._nodes for n in node.output if n}
        self._next = 0
        self._segment = FIRST_SEGMENT

    @property
    def done(self) -> bool:
        return self._next >= len(self._nodes)

    def _value(self, name: str) -> np.ndarray | None:
        if name in self.values:
            return self.values[name]
        tensor = self._initializers.get(name)
        return None if tensor is None else numpy_helper.to_array(tensor)

    def step(self) -> None:
        """Evaluate the next segment of nodes; NodeError names the node the evaluator cannot
        run (a failing segment is retried node by node to find it)."""
        start = self._next
        segment = self._nodes[start : start + self._segment]
        feeds: dict[str, Any] = {}
        for name in outside_inputs(segment):
            value = self._value(name)
            if value is not None:
                feeds[name] = value
        try:
            produced = evaluate_nodes(segment, feeds, self._opsets, self._functions)
        except Exception as error:  # noqa: BLE001 - the caller says what the reference was
            if len(segment) == 1:
                raise NodeError(start, segment[0], error) from error
            self._segment = 1
            return
        del feeds
        self.values.update(produced)
        self._next = start + len(segment)
        for name in {*outside_inputs(segment), *produced}:
            if self._last_read.get(name, -1) < self._next:
                self._drop(name)
        given = sum(np.asarray(v).nbytes for v in produced.values()) / len(segment)
        self._segment = max(1, min(MAX_SEGMENT, int(SEGMENT_BYTES / max(given, 1.0))))

    def _drop(self, name: str) -> None:
        if name not in self._outputs and name not in self._wanted and name not in self._retained:
            self.values.pop(name, None)

    def release(self, names: Iterable[str]) -> None:
        """The caller will not collect ``names`` again: they go once no later node reads them."""
        for name in names:
            self._retained.discard(name)
            if self._last_read.get(name, -1) < self._next:
                self._drop(name)

    def _available(self, name: str) -> bool:
        return name in self.values or name in self._initializers

    def collect(self, names: Iterable[str]) -> dict[str, np.ndarray]:
        """The values of ``names`` (evaluating as far as needed); names the graph never gives
        are left out. What no later node reads is dropped once handed out."""
        wanted = [n for n in dict.fromkeys(names) if n in self.produced or self._available(n)]
        self._wanted.update(wanted)
        try:
            while not self.done and not all(self._available(n) for n in wanted):
                self.step()
            found = {n: v for n in wanted if (v := self._value(n)) is not None}
        finally:
            self._wanted.difference_update(wanted)
        for name in wanted:
            if self._last_read.get(name, -1) < self._next:
                self._drop(name)
        return found

    def outputs(self) -> dict[str, np.ndarray]:
        """Every node evaluated; the graph's outputs by name."""
        while not self.done:
            self.step()
        return {name: self.values[name] for name in self._outputs if name in self.values}


def trim_heap() -> None:
    """Hand freed heap memory back to the system (glibc keeps it otherwise: the transient
    copies of a large model's weights would stay in the process's peak). Linux only."""
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC: Any = None
