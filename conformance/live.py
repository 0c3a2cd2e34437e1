"""Live mode: re-export the reference models with the frameworks installed here.

The fresh pack is judged against the shipped goldens, so a torch, TensorFlow or tf2onnx
upgrade shows up as exporter or runtime findings against the same numbers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from conformance.pack.load import Pack

LIVE_PACK = "live-pack"
EXPORT_LOG = "live-export.log"  # what the frameworks wrote on stderr while exporting
NATIVE_TARGETS = ("torch", "tf")


class LiveModeError(RuntimeError):
    pass


def build_live_pack(run_dir: Path, models: list[str], progress) -> Path:
    """Export the selected models (all when empty) into <run_dir>/live-pack."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        from conformance.pack.build import build_pack
    except ImportError as error:
        raise LiveModeError(
            f"--live needs the frameworks ({error.name} is missing): "
            "pip install 'ml-conformance[frameworks]'"
        ) from error
    from conformance.isolation import native_stderr_captured

    out = run_dir / LIVE_PACK
    run_dir.mkdir(parents=True, exist_ok=True)
    # TensorFlow's and absl's start-up lines ignore TF_CPP_MIN_LOG_LEVEL: keep them in a log file
    with native_stderr_captured() as captured:
        build_pack(out, models or None, progress=progress)
    (run_dir / EXPORT_LOG).write_text("".join(captured), encoding="utf-8")
    return out


def golden_drift(live: Pack, shipped: Pack) -> dict[str, Any]:
    """How far the goldens this machine's frameworks compute are from the shipped ones."""
    worst, where = 0.0, ""
    for model in live.models:
        fresh = model.golden
        with np.load(shipped.directory / model.name / "golden.npz", allow_pickle=False) as data:
            for key in data.files:
                scale = float(np.abs(data[key]).max()) or 1.0
                drift = float(np.abs(fresh[key].astype(np.float64) - data[key]).max()) / scale
                if drift > worst:
                    worst, where = drift, f"{model.name}:{key}"
    return {"max_rel_drift": worst, "where": where}


def live_section(live_dir: Path, shipped_dir: Path) -> dict[str, Any]:
    live, shipped = Pack(live_dir), Pack(shipped_dir)
    return {
        "pack_dir": str(live_dir),
        "live_pack_digest": live.digest,
        "goldens_from_digest": shipped.digest,
        "toolchain": live.manifest["toolchain"],
        "golden_drift": golden_drift(live, shipped),
    }
