"""The operator cases: every node case the installed onnx generates, plus its on-disk sets.

A case set is identified like the pack: the onnx version plus a digest over every case's
model and data (``CaseSet.digest``). The set is written once into a content-addressed cache
folder (``<cache>/<onnx version>-<digest[:16]>``) in the ONNX test layout (``model.onnx``,
``test_data_set_N/input_i.pb``, ``output_i.pb``), so the target's child process loads a case
by path, like a pack artifact. An index keyed by a fingerprint of onnx's case sources (and the
numpy that generates the data) finds the folder again without regenerating the cases.

Generating the node cases runs onnx's own case modules in memory (about 5 s); reading the
cache's manifest back costs a fraction of that.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

NODE, SIMPLE, PYTORCH_CONVERTED, PYTORCH_OPERATOR = (
    "node",
    "simple",
    "pytorch-converted",
    "pytorch-operator",
)
SETS = (NODE, SIMPLE, PYTORCH_CONVERTED, PYTORCH_OPERATOR)
DISK_SETS = (SIMPLE, PYTORCH_CONVERTED, PYTORCH_OPERATOR)
RULE_RTOL, RULE_ATOL = 1e-3, 1e-7  # the ONNX backend runner's rule (onnx.backend.test.runner)
CACHE_ENV = "CONFORMANCE_OPS_CACHE"
MANIFEST = "manifest.json"
MANIFEST_VERSION = 2  # 2: cases carry expected_rounded_from
DIGEST_VERSION = 1  # what the case-set digest covers (the cases' bytes, not the manifest's form)
ROUNDED_FROM_FLOAT64 = "float64"

# Ops whose outputs are random draws: judged by properties, never by values.
RANDOM_OPS: tuple[str, ...] = (
    "RandomNormal",
    "RandomNormalLike",
    "RandomUniform",
    "RandomUniformLike",
    "Bernoulli",
    "Multinomial",
)

# Element types numpy cannot hold natively (ml_dtypes arrays): a target's Python API may not
# take them. TensorProto numbering.
EXOTIC_TYPES = {
    16: "bfloat16",
    17: "float8e4m3fn",
    18: "float8e4m3fnuz",
    19: "float8e5m2",
    20: "float8e5m2fnuz",
    21: "uint4",
    22: "int4",
    23: "float4e2m1",
    24: "float8e8m0",
    25: "uint2",
    26: "int2",
}
STRING_TYPE = 8


class CaseSetError(ValueError):
    """A selection names nothing, or a cache folder is not a case set (bad input: exit 2)."""


@dataclass(frozen=True)
class Value:
    """One graph input or output of a case: a tensor (elem_type) or another kind."""

    name: str
    kind: str  # "tensor", "sequence", "optional", "map", "sparse", "unknown"
    elem_type: int = 0

    @property
    def exotic(self) -> str | None:
        return EXOTIC_TYPES.get(self.elem_type) if self.kind == "tensor" else None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "elem_type": self.elem_type}


@dataclass(frozen=True)
class Case:
    """One case: a model, its data sets, the op it tests and the rule it is judged by."""

    name: str
    set: str  # one of SETS
    op: str  # the op type it tests ("" for an on-disk model case)
    domain: str
    opset: int
    rtol: float
    atol: float
    inputs: tuple[Value, ...]
    outputs: tuple[Value, ...]
    data_sets: int
    digest: str  # over the model and its data
    path: str = ""  # the case folder, relative to the case set folder
    expanded: bool = False  # a function op expanded into its body
    training: bool = False  # Dropout in training mode (judged by properties)
    # "float64": onnx's generator computed an expected output in float64 and rounded it to the
    # output's (narrower) float dtype; "" when it was not seen doing so (see expected_rounding)
    expected_rounded_from: str = ""
    root: Path | None = field(default=None, compare=False)

    @property
    def op_key(self) -> str:
        """The op type with its domain, e.g. "Softmax", "ai.onnx.ml:LabelEncoder"."""
        return f"{self.domain}:{self.op}" if self.domain not in ("", "ai.onnx") else self.op

    @property
    def folder(self) -> Path:
        assert self.root is not None, "a case read from a manifest knows its folder"
        return self.root / self.path

    @property
    def model_path(self) -> Path:
        return self.folder / "model.onnx"

    @property
    def nondeterministic(self) -> bool:
        return self.op in RANDOM_OPS or self.training

    def untestable_reason(self) -> str | None:
        """Why no target can take this case through the tensor-only target contract."""
        others = [v for v in (*self.inputs, *self.outputs) if v.kind != "tensor"]
        if others:
            first = others[0]
            return f"{first.kind} value {first.name!r}: the target API carries tensors only"
        return None

    def exotic_values(self) -> list[str]:
        """Inputs and outputs of an element type numpy holds only through ml_dtypes."""
        return [
            f"{kind} {v.name} ({v.exotic})"
            for kind, values in (("input", self.inputs), ("output", self.outputs))
            for v in values
            if v.exotic
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "set": self.set,
            "op": self.op,
            "domain": self.domain,
            "opset": self.opset,
            "rtol": self.rtol,
            "atol": self.atol,
            "inputs": [v.as_dict() for v in self.inputs],
            "outputs": [v.as_dict() for v in self.outputs],
            "data_sets": self.data_sets,
            "digest": self.digest,
            "path": self.path,
            "expanded": self.expanded,
            "training": self.training,
            "expected_rounded_from": self.expected_rounded_from,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], root: Path) -> Case:
        return cls(
            name=data["name"],
            set=data["set"],
            op=data["op"],
            domain=data["domain"],
            opset=int(data["opset"]),
            rtol=float(data["rtol"]),
            atol=float(data["atol"]),
            inputs=tuple(Value(v["name"], v["kind"], v["elem_type"]) for v in data["inputs"]),
            outputs=tuple(Value(v["name"], v["kind"], v["elem_type"]) for v in data["outputs"]),
            data_sets=int(data["data_sets"]),
            digest=data["digest"],
            path=data["path"],
            expanded=bool(data.get("expanded", False)),
            training=bool(data.get("training", False)),
            expected_rounded_from=str(data.get("expected_rounded_from", "")),
            root=root,
        )

    # ---- data ----------------------------------------------------------------------------
    def feeds(self, index: int) -> dict[str, np.ndarray]:
        """The inputs of a data set, keyed by graph input name (0-d stays 0-d)."""
        folder = self.folder / f"test_data_set_{index}"
        return {v.name: read_tensor(folder / f"input_{i}.pb") for i, v in enumerate(self.inputs)}

    def expected(self, index: int) -> list[tuple[str, np.ndarray]]:
        """The expected outputs of a data set, by graph output name, in graph order."""
        folder = self.folder / f"test_data_set_{index}"
        return [
            (v.name, read_tensor(folder / f"output_{i}.pb")) for i, v in enumerate(self.outputs)
        ]


def read_tensor(path: Path) -> np.ndarray:
    from onnx import TensorProto, numpy_helper

    tensor = TensorProto()
    tensor.ParseFromString(path.read_bytes())
    return np.asarray(numpy_helper.to_array(tensor))


@dataclass(frozen=True)
class CaseSet:
    """Every case, read from its cache folder; identified by onnx version and digest."""

    onnx_version: str
    digest: str
    folder: Path
    cases: tuple[Case, ...]
    numpy_version: str = ""

    @property
    def name(self) -> str:
        return f"onnx-{self.onnx_version}-{self.digest[:12]}"

    def by_name(self) -> dict[str, Case]:
        return {c.name: c for c in self.cases}

    def counts(self) -> dict[str, int]:
        counts = {s: 0 for s in SETS}
        for case in self.cases:
            counts[case.set] += 1
        return counts

    def identity(self) -> dict[str, Any]:
        """What every results file records of the case set."""
        return {
            "name": self.name,
            "onnx_version": self.onnx_version,
            "digest": self.digest,
            "cases": len(self.cases),
            "sets": self.counts(),
        }

    def select(
        self, ops: Sequence[str] = (), globs: Sequence[str] = (), sets: Sequence[str] = ()
    ) -> list[Case]:
        """Cases of the named op types (any case of the op, expanded ones included) and/or
        names matching a glob; CaseSetError when a name selects nothing."""
        chosen = list(self.cases)
        if sets:
            unknown = [s for s in sets if s not in SETS]
            if unknown:
                raise CaseSetError(f"--set {unknown[0]!r}: the sets are {', '.join(SETS)}")
            chosen = [c for c in chosen if c.set in sets]
        if ops:
            known = {c.op for c in self.cases} | {c.op_key for c in self.cases}
            wanted = {o.lower() for o in ops}
            missing = [o for o in ops if o.lower() not in {k.lower() for k in known}]
            if missing:
                raise CaseSetError(
                    f"--op {missing[0]!r}: no case of this op in {self.name}; "
                    "op types are spelt as in ONNX, e.g. Softmax, Conv, ai.onnx.ml:LabelEncoder"
                )
            chosen = [c for c in chosen if c.op.lower() in wanted or c.op_key.lower() in wanted]
        if globs:
            for glob in globs:
                if not any(fnmatch.fnmatchcase(c.name, glob) for c in self.cases):
                    raise CaseSetError(
                        f"--case {glob!r} matches no case of {self.name}; e.g. 'test_softmax_*'"
                    )
            chosen = [c for c in chosen if any(fnmatch.fnmatchcase(c.name, g) for g in globs)]
        return chosen


# ---- where the cache lives ----------------------------------------------------------------
def default_cache_dir() -> Path:
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "conformance" / "ops"


def onnx_dirs() -> tuple[Path, Path]:
    import onnx.backend.test

    root = Path(onnx.backend.test.__file__).parent
    return root / "case", root / "data"


def source_fingerprint() -> str:
    """What the generated cases depend on: onnx, numpy and ml_dtypes versions (onnx casts to
    int2/int4 through ml_dtypes), onnx's case sources and its on-disk sets. Equal fingerprints
    give equal case sets (the digest says so)."""
    import onnx

    case_dir, data_dir = onnx_dirs()
    versions = f"onnx {onnx.__version__} numpy {np.__version__} ml_dtypes {_ml_dtypes_version()}"
    digest = hashlib.sha256(f"{versions}\n".encode())
    files = sorted(case_dir.rglob("*.py")) + sorted(
        p for s in DISK_SETS for p in (data_dir / s).rglob("*") if p.is_file()
    )
    for path in files:
        digest.update(str(path.relative_to(case_dir.parent)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _ml_dtypes_version() -> str:
    import ml_dtypes

    return str(ml_dtypes.__version__)


def load_case_set(cache_dir: Path | None = None) -> CaseSet:
    """The installed onnx's case set, from the cache (written on first use)."""
    import onnx

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    fingerprint = source_fingerprint()
    index = cache_dir / "index" / f"{onnx.__version__}-{fingerprint[:24]}.json"
    if index.is_file():
        try:
            folder = cache_dir / json.loads(index.read_text(encoding="utf-8"))["folder"]
            return read_case_set(folder)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged cache is rebuilt, never trusted
    case_set = write_case_set(cache_dir)
    index.parent.mkdir(parents=True, exist_ok=True)
    scratch = index.with_suffix(f".{os.getpid()}.tmp")  # concurrent first runs (xdist)
    scratch.write_text(json.dumps({"folder": case_set.folder.name}), encoding="utf-8")
    os.replace(scratch, index)
    return case_set


def read_case_set(folder: Path) -> CaseSet:
    path = Path(folder) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CaseSetError(f"{path}: not a case set manifest ({error})") from error
    if not isinstance(data, dict) or data.get("manifest_version") != MANIFEST_VERSION:
        raise CaseSetError(f"{path}: not a case set manifest of version {MANIFEST_VERSION}")
    root = Path(folder)
    return CaseSet(
        data["onnx_version"],
        data["digest"],
        root,
        tuple(Case.from_dict(c, root) for c in data["cases"]),
        data.get("numpy_version", ""),
    )


# ---- generating and writing ----------------------------------------------------------------
def _value(info: Any) -> Value:
    kind = info.type.WhichOneof("value")
    names = {
        "tensor_type": "tensor",
        "sequence_type": "sequence",
        "optional_type": "optional",
        "map_type": "map",
        "sparse_tensor_type": "sparse",
    }
    elem = info.type.tensor_type.elem_type if kind == "tensor_type" else 0
    return Value(info.name, names.get(kind or "", "unknown"), int(elem))


def _proto_bytes(value: Any, name: str) -> bytes | None:
    """A data value as the ONNX test layout stores it (TensorProto, SequenceProto,
    OptionalProto), or None for a value onnx cannot serialise."""
    from onnx import TensorProto, numpy_helper

    if isinstance(value, TensorProto):
        proto = TensorProto()
        proto.CopyFrom(value)
        proto.name = name
        return proto.SerializeToString(deterministic=True)
    try:
        if isinstance(value, np.ndarray) or np.isscalar(value):
            return numpy_helper.from_array(np.asarray(value), name).SerializeToString(
                deterministic=True
            )
        if isinstance(value, list):
            return numpy_helper.from_list(value, name).SerializeToString(deterministic=True)
        return numpy_helper.from_optional(value, name).SerializeToString(deterministic=True)
    except Exception:  # noqa: BLE001 - a value kind onnx cannot write: not testable here anyway
        return None


@dataclass
class _Draft:
    name: str
    set: str
    model: bytes
    data: list[tuple[list[bytes | None], list[bytes | None]]]
    graph: Any
    rtol: float
    atol: float
    opset_imports: dict[str, int]


def _node_drafts(rounded: dict[str, str] | None = None) -> list[_Draft]:
    """onnx's generated node cases; ``rounded`` gets, per case name (as expect() named it),
    ROUNDED_FROM_FLOAT64 where an expected output was computed in float64 and rounded."""
    from onnx.backend.test.loader import load_model_tests

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        trace = expected_rounding() if rounded is not None else None
        try:
            cases = load_model_tests(kind=NODE)
        finally:
            flags = trace.finish() if trace is not None else None
    if rounded is not None:
        rounded.update(flags if flags is not None else rounding_in_child())
    drafts = []
    for case in cases:
        model = case.model
        assert model is not None and case.data_sets is not None  # generated in memory
        graph = model.graph
        data: list[tuple[list[bytes | None], list[bytes | None]]] = []
        for inputs, outputs in case.data_sets:
            data.append(
                (
                    [_proto_bytes(v, i.name) for v, i in zip(inputs, graph.input)],
                    [_proto_bytes(v, o.name) for v, o in zip(outputs, graph.output)],
                )
            )
        drafts.append(
            _Draft(
                case.name,
                NODE,
                model.SerializeToString(deterministic=True),
                data,
                graph,
                float(case.rtol),
                float(case.atol),
                {o.domain: o.version for o in model.opset_import},
            )
        )
    return drafts


class _RoundingTrace:
    """Watches onnx's node case generators run (their export functions call ``expect`` with
    the inputs and the expected outputs): every float64 array the generator casts with
    ``astype`` or a Python function returns is remembered until the next ``expect``; an
    expected output of a narrower float dtype that is one of them rounded (and differs from
    it: the rounding changed something) was computed in float64 and rounded. An output equal
    to a value the model holds (an input, a tensor attribute: Identity, Constant) is a copy,
    not a computation. Outputs cast by ``np.float32(...)`` or ``np.array(..., dtype=...)``
    from an inline float64 expression are not seen (they stay unflagged)."""

    def __init__(self, expect_code: Any) -> None:
        self.expect_code = expect_code
        self.sources: list[np.ndarray] = []
        self.flags: dict[str, str] = {}
        self.seen = 0

    def __call__(self, frame: Any, event: str, arg: Any) -> None:
        if event == "c_call":
            if getattr(arg, "__name__", None) == "astype":
                source = getattr(arg, "__self__", None)
                if isinstance(source, (np.ndarray, np.float64)) and source.dtype == np.float64:
                    self.sources.append(np.asarray(source))
        elif event == "return":
            if isinstance(arg, np.ndarray) and arg.dtype == np.float64:
                self.sources.append(arg)
        elif event == "call" and frame.f_code is self.expect_code:
            self._expect(frame.f_locals)

    def _expect(self, local: dict[str, Any]) -> None:
        from onnx import numpy_helper

        self.seen += 1
        held = [np.asarray(v) for v in local.get("inputs", ()) if isinstance(v, np.ndarray)]
        node = local.get("node_op")
        for attribute in getattr(node, "attribute", ()):
            if attribute.HasField("t"):
                held.append(numpy_helper.to_array(attribute.t))
        sources, self.sources = self.sources, []
        for y in local.get("outputs", ()):
            if not isinstance(y, np.ndarray) or y.dtype.kind != "f" or y.dtype.itemsize >= 8:
                continue
            if any(h.dtype == y.dtype and _same(h, y) for h in held):
                continue
            wide = y.astype(np.float64)
            if any(
                s.shape == y.shape and _same(s.astype(y.dtype), y) and not _same(s, wide)
                for s in sources
            ):
                self.flags[str(local.get("name"))] = ROUNDED_FROM_FLOAT64
                return

    def finish(self) -> dict[str, str]:
        import sys

        sys.setprofile(None)
        return self.flags


def rounding_in_child() -> dict[str, str]:
    """The flags from a fresh interpreter (onnx runs its generators once per process)."""
    import subprocess
    import sys

    probe = (
        "import json, sys; from conformance.ops.cases import _node_drafts; "
        "flags = {}; _node_drafts(flags); json.dump(flags, sys.stdout)"
    )
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    flags = json.loads(done.stdout)
    return {str(k): str(v) for k, v in flags.items()}


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))


def expected_rounding() -> _RoundingTrace | None:
    """Start tracing the generators (None: they already ran in this process, so onnx would
    not run them again; the flags are then left unset)."""
    import sys

    import onnx.backend.test.case.node as node_cases

    if node_cases._NodeTestCases:
        return None
    trace = _RoundingTrace(node_cases.expect.__code__)
    sys.setprofile(trace)
    return trace


def _disk_drafts() -> list[_Draft]:
    import onnx

    _, data_dir = onnx_dirs()
    drafts = []
    for kind in DISK_SETS:
        for folder in sorted(p for p in (data_dir / kind).iterdir() if p.is_dir()):
            model_file = folder / "model.onnx"
            if not model_file.is_file():
                continue  # a case that names a download (real models): not offline
            rtol, atol = RULE_RTOL, RULE_ATOL
            spec = folder / "data.json"
            if spec.is_file():
                meta = json.loads(spec.read_text(encoding="utf-8"))
                rtol, atol = float(meta.get("rtol", rtol)), float(meta.get("atol", atol))
            model = onnx.load(str(model_file))
            data: list[tuple[list[bytes | None], list[bytes | None]]] = []
            for data_set in sorted(folder.glob("test_data_set_*"), key=_set_index):
                count_in = len(list(data_set.glob("input_*.pb")))
                count_out = len(list(data_set.glob("output_*.pb")))
                data.append(
                    (
                        [(data_set / f"input_{i}.pb").read_bytes() for i in range(count_in)],
                        [(data_set / f"output_{i}.pb").read_bytes() for i in range(count_out)],
                    )
                )
            drafts.append(
                _Draft(
                    folder.name,
                    kind,
                    model_file.read_bytes(),
                    data,
                    model.graph,
                    rtol,
                    atol,
                    {o.domain: o.version for o in model.opset_import},
                )
            )
    return drafts


def _set_index(path: Path) -> int:
    return int(path.name.rsplit("_", 1)[1])


def _op_of(draft: _Draft, node_ops: dict[str, tuple[str, str]]) -> tuple[str, str, bool]:
    """(op type, domain, expanded) of a case: its node's op; an expanded function case counts
    for the op it expands; an on-disk model case tests no single op."""
    if draft.set != NODE:
        return "", "", False
    if "_expanded" in draft.name:
        base = draft.name.split("_expanded")[0]
        while base and base not in node_ops:
            base = base.rsplit("_", 1)[0] if "_" in base else ""
        if base:
            return (*node_ops[base], True)
    node = draft.graph.node[0]
    return node.op_type, node.domain, False


def _training(draft: _Draft) -> bool:
    """Dropout with training_mode given (a third input): its mask and output are random."""
    return any(
        n.op_type == "Dropout" and len(n.input) >= 3 and n.input[2] for n in draft.graph.node
    )


def write_case_set(cache_dir: Path) -> CaseSet:
    """Generate every case, digest it, and write it into its content-addressed folder
    (an existing, complete folder of the same digest is kept as it is)."""
    import onnx

    rounded: dict[str, str] = {}
    drafts = _node_drafts(rounded) + _disk_drafts()
    node_ops = {
        d.name: (d.graph.node[0].op_type, d.graph.node[0].domain)
        for d in drafts
        if d.set == NODE and "_expanded" not in d.name
    }
    total = hashlib.sha256(f"onnx-ops-cases {DIGEST_VERSION}\n".encode())
    cases: list[dict[str, Any]] = []
    for draft in sorted(drafts, key=lambda d: (SETS.index(d.set), d.name)):
        digest = hashlib.sha256(draft.model)
        for inputs, outputs in draft.data:
            for blob in (*inputs, *outputs):
                digest.update(b"\0" if blob is None else hashlib.sha256(blob).digest())
        op, domain, expanded = _op_of(draft, node_ops)
        initializers = {t.name for t in draft.graph.initializer}
        case = {
            "name": draft.name,
            "set": draft.set,
            "op": op,
            "domain": domain,
            "opset": draft.opset_imports.get(domain, draft.opset_imports.get("", 0)),
            "rtol": draft.rtol,
            "atol": draft.atol,
            "inputs": [
                _value(i).as_dict() for i in draft.graph.input if i.name not in initializers
            ],
            "outputs": [_value(o).as_dict() for o in draft.graph.output],
            "data_sets": len(draft.data),
            "digest": digest.hexdigest(),
            "path": f"{draft.set}/{draft.name}",
            "expanded": expanded,
            "training": _training(draft),
            "expected_rounded_from": rounded.get(draft.name.split("_expanded")[0], "")
            if draft.set == NODE
            else "",
        }
        total.update(f"{draft.set}/{draft.name} {case['digest']}\n".encode())
        cases.append(case)
    set_digest = total.hexdigest()
    folder = Path(cache_dir) / f"{onnx.__version__}-{set_digest[:16]}"
    if (folder / MANIFEST).is_file():
        try:
            return read_case_set(folder)
        except CaseSetError:  # an older manifest form: written again below
            pass
    scratch = Path(cache_dir) / f".writing-{os.getpid()}-{set_digest[:16]}"
    by_name = {(d.set, d.name): d for d in drafts}
    for entry in cases:
        _write_case(scratch / str(entry["path"]), by_name[(str(entry["set"]), str(entry["name"]))])
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "onnx_version": onnx.__version__,
        "numpy_version": np.__version__,
        "ml_dtypes_version": _ml_dtypes_version(),
        "digest": set_digest,
        "rule": {"rtol": RULE_RTOL, "atol": RULE_ATOL},
        "cases": cases,
    }
    (scratch / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    if folder.exists():  # of an older manifest form: set aside, then replaced
        stale = Path(cache_dir) / f".stale-{os.getpid()}-{set_digest[:16]}"
        try:
            os.replace(folder, stale)
        except OSError:
            pass
        _remove_tree(stale)
    try:
        os.replace(scratch, folder)
    except OSError:  # another process wrote the same content first
        _remove_tree(scratch)
    return read_case_set(folder)


def _write_case(folder: Path, draft: _Draft) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(draft.model)
    for index, (inputs, outputs) in enumerate(draft.data):
        data_set = folder / f"test_data_set_{index}"
        data_set.mkdir()
        for kind, blobs in (("input", inputs), ("output", outputs)):
            for i, blob in enumerate(blobs):
                if blob is not None:
                    (data_set / f"{kind}_{i}.pb").write_bytes(blob)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def all_op_types() -> list[tuple[str, str]]:
    """(domain, op type) of every non-deprecated operator onnx defines (latest schemas)."""
    import onnx.defs

    return sorted(
        {(s.domain, s.name) for s in onnx.defs.get_all_schemas() if not s.deprecated},
    )


def op_key(domain: str, op: str) -> str:
    return f"{domain}:{op}" if domain not in ("", "ai.onnx") else op
