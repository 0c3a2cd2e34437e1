"""`conformance compare`: a user's own ONNX model on the chosen targets, judged against its
float64 reference with the pack's checks.

Compare is one more caller of the run session: the model, its samples and their float64
reference outputs are written into the run folder as a one-model pack (``pack/``, the pack's
own layout: model.json, golden.npz, test_data_set_* folders), the session opens that pack and
runs the plans in its isolated child processes with the same check (run/check.py: structure,
NaN/Inf, values, determinism, batch invariance when the batch axis is dynamic) and the same
judge. Every failing (sample, target) on values is then localised (conformance.localize) and
gets a minimal reproducer; what compare found beyond the check records is the results
document's "usermodel" section.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from conformance.compare.tolerance import Tolerance, tolerance_for
from conformance.pack import layout
from conformance.pack.load import Artifact, PackModel, TestDataSet
from conformance.results.records import EXPORTER, FAILED, NOT_PASSED, CheckRecord
from conformance.run.plan import DEFAULT_PRECISION, CheckPlan
from conformance.spec import load_json
from conformance.targets import DEFAULT_TARGETS
from conformance.untrusted import printable
from conformance.usermodel.evaluate import trim_heap
from conformance.usermodel.inputs import (
    InputSpec,
    Sample,
    batch_of,
    check_sample,
    generate,
    parse_shapes,
    read_inputs,
    specs_of,
)
from conformance.usermodel.model import UserInputError, UserModel, load_user_model
from conformance.usermodel.reference import Reference, ReferenceError, reference_for

if TYPE_CHECKING:
    from conformance.run.session import StartedTargets

EXPORTER_NAME = "onnx"  # the exporter column of a user's model: the file as given
PACK_FOLDER = "pack"
USERMODEL = "usermodel"  # the results document's section for a user's model
GPU_WORDS = ("cuda", "tensorrt", "gpu")
# Every honest CPU target of the suite (compare's default: those available here).
CPU_TARGETS = tuple(t for t in DEFAULT_TARGETS if not any(w in t for w in GPU_WORDS))
Message = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class CompareRequest:
    model: Path | onnx.ModelProto
    run_dir: Path
    inputs: Sequence[Path] = ()
    samples_given: Sequence[Sample] = ()  # the Python API's arrays
    shapes: Sequence[str] = ()
    seed: int = 0
    samples: int = 1
    targets: Sequence[str] = ()
    atol: float | None = None
    rtol: float | None = None
    tolerance_class: str | None = None
    timeout_s: float | None = None
    localize: bool = True
    name: str = "model"  # a ModelProto's name in the results
    # The Python API's framework reference (the eager torch module in float64): the goldens;
    # None: the float64 rewrite's outputs. Localisation always uses the rewrite per node.
    golden: Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]] | None = None
    golden_source: str = ""


@dataclass(frozen=True)
class SampleSet(TestDataSet):
    """One sample of a user's model as a test data set (its label names the sample)."""

    @property
    def label(self) -> str:
        return f"sample{self.index}"


@dataclass(frozen=True)
class UserArtifact(Artifact):
    """The user's file, where it lies (its external data next to it)."""

    source: Path = Path()

    @property
    def path(self) -> Path:
        return self.source


@dataclass
class CompareOutcome:
    run_dir: Path
    results_path: Path
    records: list[CheckRecord]
    reference: Reference
    tolerance: Tolerance
    localizations: list[dict[str, Any]] = field(default_factory=list)
    targets: dict[str, Any] = field(default_factory=dict)
    report: Path | None = None
    golden_source: str = ""  # the goldens' source when not the float64 rewrite (torch twin)
    source: Path | None = None  # the model file the checks loaded

    @property
    def findings(self) -> list[CheckRecord]:
        return [r for r in self.records if r.verdict in NOT_PASSED and r.attributed_to != EXPORTER]

    @property
    def exit_code(self) -> int:
        return 1 if self.findings else 0


# ---- inputs of the comparison -----------------------------------------------------------------
def choose_tolerance(request: CompareRequest) -> Tolerance:
    base = tolerance_for(DEFAULT_PRECISION, "", "default")
    if request.tolerance_class is not None:
        table = load_json("tolerances.json")[DEFAULT_PRECISION]
        classes = sorted(k for k in table if k != "models") + sorted(table.get("models", {}))
        entry = table.get(request.tolerance_class) or table.get("models", {}).get(
            request.tolerance_class
        )
        if request.tolerance_class == "models" or not entry:
            raise UserInputError(
                f"--tolerance-class {printable(request.tolerance_class, 60)!r}: "
                f"the spec's fp32 classes are {', '.join(classes)}"
            )
        base = Tolerance(float(entry["atol"]), float(entry["rtol"]))
    atol = base.atol if request.atol is None else request.atol
    rtol = base.rtol if request.rtol is None else request.rtol
    for flag, value in (("--atol", atol), ("--rtol", rtol)):
        if not np.isfinite(value) or value < 0:
            raise UserInputError(f"{flag} {value!r}: a tolerance is a finite number >= 0")
    if atol == 0 and rtol == 0:
        raise UserInputError("--atol 0 --rtol 0: one of them must be positive")
    return Tolerance(float(atol), float(rtol))


def open_model(request: CompareRequest) -> UserModel:
    if isinstance(request.model, onnx.ModelProto):
        from conformance.usermodel.model import user_model

        return user_model(request.model, request.name)
    return load_user_model(request.model)


def choose_samples(request: CompareRequest, model: UserModel) -> list[Sample]:
    specs = specs_of(model)
    if not 1 <= request.samples <= 64:
        raise UserInputError(f"--samples {request.samples}: from 1 to 64")
    if request.inputs or request.samples_given:
        samples = [*read_inputs(request.inputs, specs), *map(dict, request.samples_given)]
        for k, sample in enumerate(samples):
            where = (
                f"--inputs {printable(request.inputs[k], 200)}"
                if k < len(request.inputs)
                else (f"inputs sample {k}")
            )
            check_sample(sample, specs, where)
        return samples
    shapes = parse_shapes(request.shapes, specs)
    return generate(model, specs, shapes, request.seed, request.samples)


def valid_targets(names: Sequence[str]) -> list[str]:
    """The chosen targets (default: every available honest CPU target); bad names are bad
    input before anything runs."""
    from conformance.targets import InvalidTargetError, TargetError, get_target

    chosen = []
    try:
        if names:
            return [get_target(n).name for n in dict.fromkeys(names)]
        for name in CPU_TARGETS:
            target = get_target(name)
            if target.unavailable_reason() is None:
                chosen.append(target.name)
    except InvalidTargetError as error:
        raise UserInputError(str(error)) from error
    except TargetError as error:
        raise UserInputError(str(error)) from error
    return chosen


# ---- the one-model pack ---------------------------------------------------------------------
def _tensor_record(name: str, dtype: str, ndim: int) -> dict[str, Any]:
    return {
        "name": name,
        "spec_name": name,
        "dtype": dtype,
        "shape": [],
        "transpose": list(range(ndim)),
    }


def _digest(model: UserModel) -> str:
    if model.path is not None and not model.external_data:
        return hashlib.sha256(model.path.read_bytes()).hexdigest()
    return hashlib.sha256(model.proto.SerializeToString()).hexdigest()


def write_user_pack(
    run_dir: Path,
    model: UserModel,
    specs: Sequence[InputSpec],
    samples: Sequence[Sample],
    goldens: Sequence[Mapping[str, np.ndarray]],
    tolerance: Tolerance,
) -> tuple[Path, PackModel, UserArtifact, list[SampleSet]]:
    """The model, its samples and their float64 reference as a one-model pack in the run
    folder; the artifact points at the user's own file (ModelProtos are saved there)."""
    pack_dir = run_dir / PACK_FOLDER
    model_dir = pack_dir / model.name
    artifact_dir = model_dir / EXPORTER_NAME
    artifact_dir.mkdir(parents=True, exist_ok=True)
    source = model.path
    if source is None:
        source = artifact_dir / layout.MODEL_ONNX
        onnx.save_model(model.proto, str(source))
    outputs = [o.name for o in model.outputs]
    out_types = {
        o.name: str(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(o.type.tensor_type.elem_type)))
        for o in model.outputs
    }
    golden: dict[str, np.ndarray] = {}
    sets = []
    for k, (sample, reference) in enumerate(zip(samples, goldens)):
        folder = layout.data_set_dir(artifact_dir, k)
        folder.mkdir(exist_ok=True)
        for i, spec in enumerate(specs):
            layout.write_tensor(folder / f"input_{i}.pb", sample[spec.name], spec.name)
            golden[layout.golden_key(k, "input", spec.name)] = sample[spec.name]
        for i, name in enumerate(outputs):
            layout.write_tensor(folder / f"output_{i}.pb", reference[name], name)
            golden[layout.golden_key(k, "output", name)] = reference[name]
        sets.append(SampleSet(k, batch_of(sample, specs), None))
    layout.write_case_tolerance(artifact_dir, tolerance.rtol, tolerance.atol)
    np.savez(model_dir / layout.GOLDEN_NPZ, **golden)  # type: ignore[arg-type]
    artifact_record = {
        "exporter": EXPORTER_NAME,
        "valid_onnx": True,
        "inputs": [_tensor_record(i.name, str(i.dtype), len(i.dims)) for i in specs],
        "outputs": [
            _tensor_record(n, out_types[n], np.asarray(goldens[0][n]).ndim) for n in outputs
        ],
        "fidelity": [],
        "findings": [],
    }
    record = {
        "name": model.name,
        "description": f"a user's model: {printable(source, 300)}",
        "tolerance_class": "default",
        "tolerance": {"atol": tolerance.atol, "rtol": tolerance.rtol},
        "inputs": [{"name": spec.name, "dtype": str(spec.dtype)} for spec in specs],
        "outputs": [{"name": n, "dtype": out_types[n]} for n in outputs],
        "golden": {"source": "float64 rewrite on onnx.reference", "file": layout.GOLDEN_NPZ},
        "test_data_sets": [{"index": d.index, "batch": d.batch, "seq_len": None} for d in sets],
        "artifacts": {EXPORTER_NAME: artifact_record},
    }
    (model_dir / layout.MODEL_JSON).write_text(json.dumps(record, indent=1), encoding="utf-8")
    spec_file = load_json("spec.json")
    manifest = {
        "pack_version": f"user-model {model.name}",
        "spec_version": spec_file["spec_version"],
        "models": [],  # the session's plans are compare's own (below), not the pack's
        "exporters": [EXPORTER_NAME],
        "digest": _digest(model),
        "files": {},
    }
    (pack_dir / "pack.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    pack_model = PackModel(model.name, model_dir, record)
    artifact = UserArtifact(model.name, EXPORTER_NAME, artifact_dir, artifact_record, source)
    return pack_dir, pack_model, artifact, sets


def make_plan(
    model: PackModel, artifact: Artifact, data_set: TestDataSet, target: str, tolerance: Tolerance
) -> CheckPlan:
    return CheckPlan(
        model, artifact, data_set, target, DEFAULT_PRECISION, tolerance_override=tolerance
    )


# ---- the comparison -------------------------------------------------------------------------
def prepare(
    request: CompareRequest,
) -> tuple[UserModel, list[InputSpec], list[Sample], Reference, Tolerance, list[str]]:
    """Every input checked before anything runs (UserInputError)."""
    model, specs, samples, tolerance, targets = checked_inputs(request)
    return model, specs, samples, float64_reference(model, samples), tolerance, targets


def checked_inputs(
    request: CompareRequest,
) -> tuple[UserModel, list[InputSpec], list[Sample], Tolerance, list[str]]:
    """The tolerance, the model, its samples and the targets, checked (UserInputError)."""
    tolerance = choose_tolerance(request)
    results = Path(request.run_dir) / "results.json"
    if results.exists():
        raise UserInputError(f"{results} exists; name a new run folder with --out")
    model = open_model(request)
    specs = specs_of(model)
    samples = choose_samples(request, model)
    targets = valid_targets(request.targets)
    return model, specs, samples, tolerance, targets


def float64_reference(model: UserModel, samples: Sequence[Sample]) -> Reference:
    try:
        return reference_for(model.proto, samples)
    except ReferenceError as error:
        raise UserInputError(f"no float64 reference: {error}") from error


def run_compare(request: CompareRequest, message: Message = _quiet) -> CompareOutcome:
    """Run the comparison; UserInputError for bad input (before any check runs).

    The targets' children start (and import their runtimes, and describe their targets) as
    soon as the targets are known, side by side, while this process computes the float64
    reference: that start-up, not the targets' load and run, was most of a small model's wall.
    """
    from conformance.isolation import start_children_early
    from conformance.run.session import RunInputError, StartedTargets

    start_children_early()  # the targets' fork server starts while the inputs are read
    model, specs, samples, tolerance, targets = checked_inputs(request)
    if not targets:
        raise UserInputError("no target available here; name one with --target")
    try:
        started = StartedTargets(targets, Path(request.run_dir), request.timeout_s)
    except RunInputError as error:
        raise UserInputError(str(error)) from error
    try:
        return _compare(request, message, model, specs, samples, tolerance, started)
    finally:
        started.close()  # the children no session adopted (every one, on bad input)


def _compare(
    request: CompareRequest,
    message: Message,
    model: UserModel,
    specs: list[InputSpec],
    samples: list[Sample],
    tolerance: Tolerance,
    started: StartedTargets,
) -> CompareOutcome:
    from conformance.run.session import RunInputError, RunRequest, RunSession

    reference = float64_reference(model, samples)
    targets = list(started.runners)
    message(f"reference: {request.golden_source or reference.describe()}")
    goldens = [request.golden(s) if request.golden else reference.run(s) for s in samples]
    trim_heap()  # the model's load, check and rewrite left freed copies of its weights
    run_dir = Path(request.run_dir)
    pack_dir, pack_model, artifact, sets = write_user_pack(
        run_dir, model, specs, samples, goldens, tolerance
    )
    run_request = RunRequest(
        pack_dir, run_dir, targets=tuple(targets), timeout_s=request.timeout_s, verify=False
    )
    try:
        session = RunSession.open(run_request, started=started)
    except RunInputError as error:
        raise UserInputError(str(error)) from error
    plans = [
        make_plan(pack_model, artifact, data_set, target, tolerance)
        for target in session.targets
        for data_set in sets
    ]
    with session:
        for name, reason in session.unavailable.items():
            message(f"{name}: unavailable, its checks are skipped ({reason})")
        warm_report_templates()  # compiled in this process while it waits on the children
        records = session.run_checks(  # side by side; the children stay for localisation
            plans, on_record=lambda r: message(f"{r.check_id}: {r.verdict}"), keep_runners=True
        )
        outcome = CompareOutcome(
            run_dir,
            session.path,
            records,
            reference,
            tolerance,
            targets={n: t.as_dict() for n, t in session.targets.items()},
            golden_source=request.golden_source,
            source=artifact.path,
        )
        if request.localize:
            from conformance.localize.localize import localize_failures

            # the checks' own child processes: no second start-up per failing target
            outcome.localizations = localize_failures(
                outcome, model, samples, session.runner, message
            )
        # what compare found beyond the checks lives in the results document itself
        session.document[USERMODEL] = usermodel_section(outcome, model, samples)
        session.finish("complete")
    outcome.report = write_report_beside(outcome.results_path, message)
    return outcome


def warm_report_templates() -> threading.Thread:
    """Import the report and compile its templates in a background thread (the report's
    environment keeps them for the process): the parent only waits on its children's pipes
    meanwhile, so the report at the end does neither (0.15-0.4 s of a small model's wall; the
    import alone was 0.04 s of the calling thread's)."""

    def compile_all() -> None:
        try:
            from conformance.report.html import environment

            env = environment()
            for name in env.list_templates(filter_func=lambda n: n.endswith(".j2")):
                env.get_template(name)
        except Exception:  # noqa: BLE001 - a warm-up only: the report itself says what failed
            pass

    thread = threading.Thread(target=compile_all, name="warm-report", daemon=True)
    thread.start()
    return thread


def write_report_beside(results_path: Path, message: Message) -> Path | None:
    """report.html next to results.json, with the user-model section; a report failure is a
    warning, never the comparison's verdict."""
    from conformance.report import ReportError, write_report

    target = results_path.with_name("report.html")
    try:
        write_report(results_path, target)
    except (ReportError, OSError) as error:
        message(f"warning: no report: {error}")
        return None
    return target


def usermodel_section(
    outcome: CompareOutcome, model: UserModel, samples: Sequence[Sample]
) -> dict[str, Any]:
    """The results document's "usermodel" section: the model, its samples, what the reference
    was, the tolerance and every localisation."""
    document = {
        "model": {
            "name": model.name,
            "path": str(model.path) if model.path else None,
            "external_data": model.external_data,
            "nodes": len(model.proto.graph.node),
            "opsets": {(o.domain or "ai.onnx"): o.version for o in model.proto.opset_import},
        },
        "samples": [
            {name: list(np.asarray(a).shape) for name, a in sample.items()} for sample in samples
        ],
        "reference": {
            **outcome.reference.as_dict(),
            **({"golden": outcome.golden_source} if outcome.golden_source else {}),
        },
        "tolerance": {"atol": outcome.tolerance.atol, "rtol": outcome.tolerance.rtol},
        "localizations": outcome.localizations,
    }
    return dict(jsonable(document))


def jsonable(value: Any) -> Any:
    """A section for the results document: non-finite floats become None (the writer refuses
    NaN/Infinity), numpy scalars plain numbers, tuples lists, anything else text."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


def failing_on_values(records: Sequence[CheckRecord]) -> list[CheckRecord]:
    """Checks that failed on values (a number out of tolerance, NaN/Inf): what localisation
    explains. Structure, determinism and batch-invariance failures are named in the record."""
    return [
        r
        for r in records
        if r.verdict == FAILED
        and r.attributed_to != EXPORTER
        and r.outputs
        and r.margin
        and (r.margin > 1 or any("NaN" in p for p in r.problems))
    ]
