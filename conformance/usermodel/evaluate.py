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

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from conformance.localize.nodes import evaluate_node, node_inputs, opsets_of


class NodeError(ValueError):
    """A node the evaluator could not run (its index, the underlying error as the cause)."""

    def __init__(self, index: int, node: onnx.NodeProto, error: Exception) -> None:
        super().__init__(f"node {node.name or index} ({node.op_type}): {type(error).__name__}")
        self.index = index
        self.error = error


class NodeStream:
    """The model's nodes evaluated in order on ``feeds``; outputs of the graph are kept."""

    def __init__(self, model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> None:
        graph = model.graph
        self._nodes = list(graph.node)
        self._opsets = opsets_of(model)
        self._functions = list(model.functions)
        self._initializers = {t.name: t for t in graph.initializer}
        self.values: dict[str, np.ndarray] = dict(feeds)
        self._outputs = {o.name for o in graph.output}
        self._wanted: set[str] = set()
        self._last_read: dict[str, int] = {}
        for index, node in enumerate(self._nodes):
            for name in node_inputs(node):
                self._last_read[name] = index
        self.produced = {n for node in self._nodes for n in node.output if n}
        self._next = 0

    @property
    def done(self) -> bool:
        return self._next >= len(self._nodes)

    def _value(self, name: str) -> np.ndarray | None:
        if name in self.values:
            return self.values[name]
        tensor = self._initializers.get(name)
        return None if tensor is None else numpy_helper.to_array(tensor)

    def step(self) -> None:
        """Evaluate the next node; NodeError when the evaluator cannot."""
        index, node = self._next, self._nodes[self._next]
        feeds: dict[str, Any] = {}
        for name in node_inputs(node):
            value = self._value(name)
            if value is not None:
                feeds[name] = value
        try:
            produced = evaluate_node(node, feeds, self._opsets, self._functions)
        except Exception as error:  # noqa: BLE001 - the caller says what the reference was
            raise NodeError(index, node, error) from error
        self.values.update(produced)
        self._next += 1
        for name in node_inputs(node):
            if self._last_read.get(name) == index:
                self._drop(name)

    def _drop(self, name: str) -> None:
        if name not in self._outputs and name not in self._wanted:
            self.values.pop(name, None)

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
