"""The Python API for CI: ``compare(model, inputs, targets=..., tolerance=...)``.

    from conformance.usermodel import compare
    compare("model.onnx", {"image": x}, targets=["ort:cpu", "openvino:cpu"]).assert_conforms()

Same run as the CLI (run session, isolated children, float64 reference, localisation); bad input
raises ``UserInputError`` (a ValueError) with the CLI's one line. The targets run in spawned child
processes, so a script that calls it keeps its work under ``if __name__ == "__main__":`` (pytest
tests need nothing).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from conformance.compare.tolerance import Tolerance
from conformance.results.records import CheckRecord
from conformance.usermodel.comparison import CompareOutcome, CompareRequest, run_compare
from conformance.usermodel.model import UserInputError

Inputs = Mapping[str, np.ndarray] | Sequence[Mapping[str, np.ndarray]] | str | Path | None


@dataclass
class CompareResults:
    outcome: CompareOutcome

    @property
    def records(self) -> list[CheckRecord]:
        return self.outcome.records

    @property
    def findings(self) -> list[CheckRecord]:
        return self.outcome.findings

    @property
    def conforms(self) -> bool:
        return not self.findings

    @property
    def localizations(self) -> list[dict[str, Any]]:
        return self.outcome.localizations

    @property
    def run_dir(self) -> Path:
        return self.outcome.run_dir

    @property
    def reference(self) -> str:
        """What the outputs were judged against."""
        return self.outcome.golden_source or self.outcome.reference.describe()

    def explain(self) -> str:
        where = {entry["check"]: entry for entry in self.localizations}
        lines = [
            f"{len(self.findings)} of {len(self.records)} checks did not pass "
            f"(tolerance atol {self.outcome.tolerance.atol:g}, rtol "
            f"{self.outcome.tolerance.rtol:g}; reference: {self.reference}):"
        ]
        for record in self.findings:
            problem = record.problems[0] if record.problems else ""
            lines.append(f"- {record.check_id}: {record.verdict}: {problem}")
            entry = where.get(record.check_id)
            if entry:
                lines.append(f"  {entry.get('summary', entry.get('error'))}")
                if entry.get("reproducer"):
                    lines.append(f"  reproducer: {entry['reproducer']['command']}")
        lines.append(f"results: {self.outcome.results_path}")
        return "\n".join(lines)

    def assert_conforms(self) -> None:
        """AssertionError naming every failing check, its first diverging node and reproducer."""
        if not self.conforms:
            raise AssertionError(self.explain())


def _tolerance(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        return {"tolerance_class": value}
    if isinstance(value, Tolerance):
        return {"atol": value.atol, "rtol": value.rtol}
    if isinstance(value, Mapping):
        return {"atol": value.get("atol"), "rtol": value.get("rtol")}
    if isinstance(value, tuple) and len(value) == 2:
        return {"atol": float(value[0]), "rtol": float(value[1])}
    raise UserInputError(
        f"tolerance {value!r}: give a class name, (atol, rtol), {{'atol':, 'rtol':}} or a Tolerance"
    )


def compare(
    model: str | Path | onnx.ModelProto,
    inputs: Inputs = None,
    *,
    targets: Sequence[str] = (),
    tolerance: Any = None,
    shapes: Mapping[str, Sequence[int]] | None = None,
    seed: int = 0,
    samples: int = 1,
    run_dir: str | Path | None = None,
    localize: bool = True,
    timeout_s: float | None = None,
    exporter: str = "torch-script",
) -> CompareResults:
    """Check ``model`` (an ONNX path or ModelProto, a torch.nn.Module exported by ``exporter``
    "torch-script" or "torch-dynamo", or a Keras model exported by tf2onnx) on ``targets``
    (default: every available honest CPU target) against its float64 reference (for a torch
    module: the eager module in float64; for a Keras model: the model cloned in float64 where
    it can be, else the float64 rewrite of its export). A framework model needs ``inputs`` by
    name."""
    paths: tuple[Path, ...] = ()
    given: tuple[dict[str, np.ndarray], ...] = ()
    if isinstance(inputs, (str, Path)):
        paths = (Path(inputs),)
    elif isinstance(inputs, Mapping):
        given = (dict(inputs),)
    elif inputs is not None:
        given = tuple(dict(sample) for sample in inputs)
    folder = Path(run_dir) if run_dir else Path(tempfile.mkdtemp(prefix="conformance-compare-"))
    framework: dict[str, Any] = {}
    model = _onnx_of(model, given, folder, exporter, framework)
    request = CompareRequest(
        model if isinstance(model, onnx.ModelProto) else Path(model),
        folder,
        inputs=paths,
        samples_given=given,
        shapes=[f"{k}={'x'.join(str(int(d)) for d in v)}" for k, v in (shapes or {}).items()],
        seed=seed,
        samples=samples,
        targets=tuple(targets),
        timeout_s=timeout_s,
        localize=localize,
        name=model.graph.name if isinstance(model, onnx.ModelProto) else "model",
        **_tolerance(tolerance),
        **framework,
    )
    return CompareResults(run_compare(request))


def _onnx_of(
    model: Any,
    given: Sequence[Mapping[str, np.ndarray]],
    folder: Path,
    exporter: str,
    framework: dict[str, Any],
) -> str | Path | onnx.ModelProto:
    """An ONNX path or ModelProto as given; a torch module or Keras model exported (into the
    run folder's export/), with the eager float64 torch module or the float64 Keras clone as
    the goldens (where a Keras model cannot be cloned so: the float64 rewrite, saying why)."""
    if isinstance(model, (str, Path, onnx.ModelProto)):
        return model
    from conformance.usermodel import frameworks

    if frameworks.is_torch_module(model):
        path, _, golden, source = frameworks.export_torch(model, given, folder / "export", exporter)
        framework.update(golden=golden, golden_source=source)
        return path
    if frameworks.is_keras_model(model):
        path = frameworks.export_keras(model, given, folder / "export")
        outputs = [o.name for o in onnx.load(str(path), load_external_data=False).graph.output]
        keras_golden, source = frameworks.keras_reference(model, given, outputs)
        framework.update(golden=keras_golden, golden_source=source)
        return path
    raise UserInputError(
        f"model of type {type(model).__name__}: give an ONNX path, an onnx.ModelProto, a "
        "torch.nn.Module or a Keras model"
    )
