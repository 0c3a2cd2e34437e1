"""Results documents for the report tests: a real small run, and documents derived from it
(hostile names, a regression against a baseline, benchmarks, a full-size matrix)."""

from __future__ import annotations

import copy
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HOSTILE = "<img src=x onerror=alert(1)>"
# Real checks: honest targets, two negative controls (values and a crash) and one unavailable
# target;
# transformer_encoder has exporter findings recorded in the pack.
SMALL_RUN = [
    "--target",
    "ort:cpu",
    "--target",
    "reference",
    "--target",
    "defect:noise",
    "--target",
    "defect:crash",
    "--target",
    "ort:cuda",
    "--model",
    "mlp",
    "--model",
    "transformer_encoder",
]


def run_small(run_dir: Path) -> Path:
    result = subprocess.run(
        [sys.executable, "-m", "conformance", "run", *SMALL_RUN, "--out", str(run_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode in (0, 1), result.stdout[-2000:] + result.stderr[-2000:]
    return run_dir / "results.json"


def save(document: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def rename_target(document: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    document = copy.deepcopy(document)
    document["targets"] = {
        new if name == old else name: info for name, info in document["targets"].items()
    }
    if "name" in document["targets"][new]:
        document["targets"][new]["name"] = new
    for check in document["checks"]:
        if check["target"] == old:
            check["target"] = new
            check["id"] = check["id"][: -len(old)] + new
    return document


def hostile(document: dict[str, Any]) -> dict[str, Any]:
    """Untrusted names everywhere a vendor can put text: a target, a problem, the environment,
    a benchmark."""
    document = rename_target(document, "ort:cpu", HOSTILE)
    failing = next(c for c in document["checks"] if c["verdict"] == "failed")
    failing["problems"] = [f"{HOSTILE} <script>alert(2)</script>", *failing["problems"][1:]]
    document["environment"]["cpu"] = HOSTILE
    document["benchmarks"] = [dict(benchmarks()[0], target=HOSTILE, model=HOSTILE)]
    return document


def first(document: dict[str, Any], target: str, verdict: str) -> dict[str, Any]:
    return next(c for c in document["checks"] if c["target"] == target and c["verdict"] == verdict)


def with_regression(document: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The same run with one passed check on ort:cpu now failing: (current document, that
    check's id)."""
    current = copy.deepcopy(document)
    check = first(current, "ort:cpu", "passed")
    output = next(iter(check["outputs"]))
    check.update(
        verdict="failed",
        margin=3.5,
        attributed_to="target",
        problems=[
            f"{output}: values out of tolerance: margin 3.5 (made up for the regression test)"
        ],
    )
    check["outputs"][output]["margin"] = 3.5
    return current, check["id"]


def benchmarks() -> list[dict[str, Any]]:
    """A small synthetic benchmarks list in the shape the benchmarks issue writes, plus partial
    records."""

    def single(target: str, model: str, p50: float, queries: int) -> dict[str, Any]:
        latency = {
            "p50": p50,
            "p90": p50 * 1.2,
            "p95": p50 * 1.3,
            "p99": p50 * 1.8,
            "p99.9": p50 * 2.5,
            "mean": p50 * 1.05,
            "min": p50 * 0.8,
            "max": p50 * 3,
        }
        return {
            "id": f"{model}-torch-dynamo-SingleStream-{target}",
            "model": model,
            "exporter": "torch-dynamo",
            "target": target,
            "scenario": "SingleStream",
            "mode": "dev",
            "rules": {"warmup_queries": 10, "min_queries": 64, "min_duration_s": 1.0},
            "latency_ms": latency,
            "valid": {"p90": queries >= 64, "p99": queries >= 662},
            "queries": queries,
            "duration_s": queries * p50 / 1000,
            "latency_histogram": {
                "edges_ms": [p50 * f for f in (0.8, 1.0, 1.2, 1.5, 2.0, 3.0)],
                "counts": [queries // 3, queries // 3, queries // 5, 8, 2],
            },
            "status": "ok",
            "problems": [],
            "caching_guard": {"flagged": False, "ratio": 1.01},
        }

    def offline(target: str, model: str, scale: float) -> dict[str, Any]:
        return {
            "id": f"{model}-torch-dynamo-Offline-{target}",
            "model": model,
            "exporter": "torch-dynamo",
            "target": target,
            "scenario": "Offline",
            "mode": "dev",
            "status": "ok",
            "throughput": [
                {"batch": b, "samples_per_s": scale * b / (1 + b / 16)} for b in (1, 8, 32)
            ],
        }

    records = [
        single("ort:cpu", "mlp", 0.05, 700),
        single("reference", "mlp", 1.9, 100),
        single("ort:cpu", "transformer_encoder", 0.4, 40),
        offline("ort:cpu", "mlp", 20000.0),
        offline("reference", "mlp", 500.0),
        {
            "id": "mlp-torch-dynamo-ColdStart-ort:cpu",
            "model": "mlp",
            "exporter": "torch-dynamo",
            "target": "ort:cpu",
            "scenario": "ColdStart",
            "status": "ok",
            "cold_start": {
                "session_create_ms": 12.5,
                "first_inference_ms": 0.9,
                "peak_rss_mb": 88.0,
            },
        },
        {
            "id": "mlp-torch-dynamo-CachingGuard-reference",
            "model": "mlp",
            "exporter": "torch-dynamo",
            "target": "reference",
            "scenario": "CachingGuard",
            "status": "ok",
            "caching_guard": {
                "flagged": True,
                "ratio": 3.2,
                "rotating_p50_ms": 1.9,
                "repeated_p50_ms": 0.6,
            },
        },
        {
            "id": "mlp-torch-dynamo-LoadGen-Offline-ort:cpu",
            "model": "mlp",
            "exporter": "torch-dynamo",
            "target": "ort:cpu",
            "scenario": "LoadGen-Offline",
            "status": "ok",
            "latency_ms": {"p50": 0.3, "p90": 0.4},
            "loadgen": {
                "result": "VALID",
                "valid": True,
                "settings": {},
                "logs": {"summary": "s", "detail": "d"},
            },
            "throughput": [{"batch": 8, "samples_per_s": 90000.0, "queries": 100}],
        },
        {
            "id": "gru-tf2onnx-SingleStream-tract",
            "model": "gru",
            "exporter": "tf2onnx",
            "target": "tract",
            "scenario": "SingleStream",
            "status": "error",
            "problems": ["load failed: TractError"],
        },
        {"scenario": "SingleStream", "target": "reference"},  # partial: every figure missing
        {"scenario": "Offline", "target": "ort:cpu", "throughput": [{"batch": "x"}, None]},
    ]
    return records


def full_size(
    document: dict[str, Any], models: int = 10, exporters: int = 3, targets: int = 8
) -> dict[str, Any]:
    """A matrix of the size the issue names (10 models x 3 exporters x 8 targets x 3 data sets),
    each check a real record of the small run; the small run's share of failures (negative
    controls) is far above a default run's, so this bounds the default run's report size from
    above."""
    document = copy.deepcopy(document)
    records = itertools.cycle(document["checks"])
    target_names = [f"runtime-{i}:cpu" for i in range(targets)]
    checks = []
    for model, exporter, target, data_set in itertools.product(
        [f"model_{i}" for i in range(models)],
        [f"exporter-{i}" for i in range(exporters)],
        target_names,
        range(3),
    ):
        check = copy.deepcopy(next(records))
        check.update(
            model=model,
            exporter=exporter,
            target=target,
            data_set=data_set,
            data_set_label=f"set{data_set}",
        )
        check["id"] = f"{model}-{exporter}-set{data_set}-{target}"
        checks.append(check)
    template = next(info for info in document["targets"].values() if info.get("available"))
    document["targets"] = {name: dict(template, name=name) for name in target_names}
    document["checks"] = checks
    return document


def ops_size(document: dict[str, Any], per_target: int = 2000, targets: int = 7) -> dict[str, Any]:
    """The coming ops profile's size: ``per_target`` checks on each of ``targets`` targets
    (14,000 by default), each a real record of the small run under a new id."""
    document = copy.deepcopy(document)
    records = itertools.cycle(document["checks"])
    target_names = [f"runtime-{i}:cpu" for i in range(targets)]
    checks = []
    for target, index in itertools.product(target_names, range(per_target)):
        check = copy.deepcopy(next(records))
        model, exporter = f"op_{index // 6:04d}", f"exporter-{index % 3}"
        data_set = (index // 3) % 2
        check.update(
            model=model,
            exporter=exporter,
            target=target,
            data_set=data_set,
            data_set_label=f"set{data_set}",
        )
        check["id"] = f"{model}-{exporter}-set{data_set}-{target}"
        checks.append(check)
    template = next(info for info in document["targets"].values() if info.get("available"))
    document["targets"] = {name: dict(template, name=name) for name in target_names}
    document["checks"] = checks
    return document


# A real message: IREE 3.13 (iree:llvm-cpu) compiling the tf2onnx GRU of pack 0.1.0, as the
# run recorded it. Its useful part (the operator, onnx.Loop) comes after 330 characters.
IREE_LOOP_ERROR = "\n".join(
    [
        "load failed: CompilerToolError: Error invoking IREE compiler tool iree-compile",
        "Error code: 1",
        "Diagnostics:",
        (
            "/tmp/conformance-iree-_sak2jrr/model.mlir:31:13: error: failed to legalize opera"
            "tion 'torch.operator' that was explicitly marked illegal: %114:7 = \"torch.operat"
            'or"(%77, %72, %1, %113, %63, %3, %7, %5) <{name = "onnx.Loop"}> ({...}) : (!torc'
            "h.vtensor<[],si64>, !torch.vtensor<[],i1>, !torch.vtensor<[],si32>, !torch.vtens"
            "or<[?,32],f32>, !torch.vtensor<[],si32>, !torch.vtensor<[2,96],f32>, !torch.vten"
            "sor<[16,96],f32>, !torch.vtensor<[32,96],f32>) -> (!torch.vtensor<[],si32>, !tor"
            "ch.vtensor<[],f32>, !torch.vtensor<[],si32>, !torch.vtensor<[],f32>, !torch.vten"
            'sor<[],f32>, !torch.vtensor<[],f32>, !torch.vtensor<[?,?,32],f32>) loc("/tmp/con'
            'formance-iree-_sak2jrr/model.mlir":31:13)'
        ),
        (
            '    %27:7 = torch.operator "onnx.Loop"(%22, %21, %0, %26, %18, %1, %3, %2) : (!t'
            "orch.vtensor<[],si64>, !torch.vtensor<[],i1>, !torch.vtensor<[],si32>, !torch.vt"
            "ensor<[?,32],f32>, !torch.vtensor<[],si32>, !torch.vtensor<[2,96],f32>, !torch.v"
            "tensor<[16,96],f32>, !torch.vtensor<[32,96],f32>) -> (!torch.vtensor<[],si32>, !"
            "torch.vtensor<[],f32>, !torch.vtensor<[],si32>, !torch.vtensor<[],f32>, !torch.v"
            "tensor<[],f32>, !torch.vtensor<[],f32>, !torch.vtensor<[?,?,32],f32>) {"
        ),
        "            ^",
        "",
        "",
        "Invoked with:",
        (
            " iree-compile /work/main/.venv/lib/python3.11/site-packages/iree/compiler/tools/"
            "../_mlir_libs/iree-compile /tmp/conformance-iree-_sak2jrr/model.mlir --iree-inpu"
            "t-type=auto --iree-vm-bytecode-module-output-format=flatbuffer-binary --iree-hal"
            "-target-backends=llvm-cpu -o=/tmp/conformance-iree-_sak2jrr/model.vmfb --iree-ll"
            "vmcpu-embedded-linker-path=/work/main/.venv/lib/python3.11/site-packages/iree/co"
            "mpiler/tools/../_mlir_libs/iree-lld --mlir-print-debuginfo --mlir-print-op-on-di"
            "agnostic=false --iree-llvmcpu-target-cpu=host"
        ),
        "",
        (
            "Need more information? Set IREE_SAVE_TEMPS=/some/dir in your environment to save"
            " all artifacts and reproducers."
        ),
        "",
    ]
)


def run_bench(run_dir: Path) -> Path:
    """A real benchmark run (dev mode, two targets, mlp): every scenario, a few seconds."""
    command = ["bench", "--target", "ort:cpu", "--target", "reference", "--model", "mlp"]
    result = subprocess.run(
        [sys.executable, "-m", "conformance", *command, "--out", str(run_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return run_dir / "results.json"


def with_iree_error(document: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Every data set of one artifact on ort:cpu errors with IREE's real message (and writes
    something on stderr): (the document, those checks' ids)."""
    document = copy.deepcopy(document)
    artifact = first(document, "ort:cpu", "passed")
    ids = []
    for check in document["checks"]:
        same = (check["model"], check["exporter"]) == (artifact["model"], artifact["exporter"])
        if check["target"] == "ort:cpu" and same:
            check.update(
                verdict="error",
                margin=None,
                outputs={},
                attributed_to="target",
                problems=[IREE_LOOP_ERROR],
                stderr=f"iree-compile: {check['data_set_label']}\nlast line of stderr <b>x</b>\n",
            )
            ids.append(check["id"])
    return document, ids


# ---- reduced precision ----
# The pack's int8 (QDQ) artifacts of mlp and of digits (the model with a task: accuracy checks),
# on ORT and on a negative control whose int8 zero point is wrong on one activation.
INT8_RUN = [
    "--profile",
    "int8",
    "--target",
    "ort:cpu",
    "--target",
    "defect:int8-zero-point",
    "--model",
    "mlp",
    "--model",
    "digits",
]


def run_int8(run_dir: Path) -> Path:
    result = subprocess.run(
        [sys.executable, "-m", "conformance", "run", *INT8_RUN, "--out", str(run_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode in (0, 1), result.stdout[-2000:] + result.stderr[-2000:]
    return run_dir / "results.json"
