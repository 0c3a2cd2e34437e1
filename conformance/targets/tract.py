"""tract (Sonos): a Rust inference engine; one optimised runnable serves every batch size.

tf2onnx gives each input its own batch symbol (``unk__23``, ``unk__24``), which tract refuses to
unify; where inputs disagree this way their input facts are reset from the ONNX graph with one
shared batch symbol. Other dims keep the graph's own values and symbols.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from conformance.targets.interface import Outputs, Session, Target, TargetError, TargetInfo

# ONNX TensorProto element type -> tract's datum type mnemonic in a fact string
TRACT_DTYPES = {
    1: "f32",
    2: "u8",
    3: "i8",
    4: "u16",
    5: "i16",
    6: "i32",
    7: "i64",
    9: "bool",
    10: "f16",
    11: "f64",
    12: "u32",
    13: "u64",
}


def _clean(error: Exception) -> TargetError:
    """tract's messages carry a Rust backtrace when RUST_BACKTRACE is set: keep the message."""
    message = str(error).split("\n\nStack backtrace:")[0].strip()
    return TargetError(f"{type(error).__name__}: {message}")


def tied_batch_facts(graph) -> dict[str, str]:
    """Input name -> fact with one shared batch symbol, when inputs' first dims disagree.

    Empty when there is nothing to tie: fewer than two inputs with a symbolic first dim, or
    all of them already share one symbol.
    """
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    used = {d.dim_param for i in inputs for d in i.type.tensor_type.shape.dim if d.dim_param}
    batch = next(s for s in ("B", "B_tied", "B_tied_batch") if s not in used)
    dims, firsts = {}, set()
    for index, value in enumerate(inputs):
        tensor = value.type.tensor_type
        shape = [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in tensor.shape.dim
        ]
        if not shape or isinstance(shape[0], int) or tensor.elem_type not in TRACT_DTYPES:
            continue
        firsts.add(shape[0] or f"unknown{index}")
        rest = [
            str(d) if d is not None else f"unk_{index}_{axis}"
            for axis, d in enumerate(shape[1:], 1)
        ]
        dims[value.name] = ",".join([batch, *rest, TRACT_DTYPES[tensor.elem_type]])
    return dims if len(dims) > 1 and len(firsts) > 1 else {}


class TractSession(Session):
    def __init__(self, runnable, input_names: list[str], output_names: list[str]) -> None:
        super().__init__(input_names)
        self._runnable = runnable
        self._output_names = output_names

    def _run(self, inputs: dict[str, np.ndarray]) -> Outputs:
        import tract

        try:
            results = self._runnable.run(
                [np.require(inputs[name], requirements="C") for name in self.input_names]
            )
        except tract.TractError as error:
            raise _clean(error) from error
        return [(name, result.to_numpy()) for name, result in zip(self._output_names, results)]


class TractTarget(Target):
    def unavailable_reason(self) -> str | None:
        try:
            import tract  # noqa: F401
        except ImportError:
            return "tract is not installed: pip install tract"
        return None

    def describe(self) -> TargetInfo:
        import tract

        return TargetInfo(
            self.name,
            "tract",
            tract.version(),
            "cpu",
            {"batch_symbols": "tied across inputs when the graph gives each its own"},
        )

    def _load(self, model_path: Path) -> Session:
        import onnx
        import tract

        # With RUST_BACKTRACE=1 (exported by many shells) every refusal captures a backtrace,
        # about 100x the cost of the refusal itself; _clean() cuts it from the message anyway.
        os.environ["RUST_BACKTRACE"] = "0"

        graph = onnx.load(str(model_path), load_external_data=False).graph
        try:
            model = tract.onnx().load(str(model_path))
            input_names = [model.input_name(i) for i in range(model.input_count())]
            for name, fact in tied_batch_facts(graph).items():
                model.set_input_fact(input_names.index(name), fact)
            runnable = model.into_model().into_runnable()
        except tract.TractError as error:
            raise _clean(error) from error
        output_names = [o.name for o in graph.output]
        if len(output_names) != runnable.output_count():
            raise TargetError(
                f"tract has {runnable.output_count()} outputs, "
                f"the graph declares {len(output_names)}"
            )
        return TractSession(runnable, input_names, output_names)
