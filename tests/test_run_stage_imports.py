"""The run stage never loads torch or TensorFlow: a vendor certifies with onnx and numpy only."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import conformance

BUILD_STAGE = ("conformance.export", "conformance.pack.build", "conformance.pack.artifact")


def run_stage_modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(conformance.__path__, "conformance.")]
    return sorted(n for n in names if not n.startswith(BUILD_STAGE))


def test_run_stage_imports_no_framework():
    modules = run_stage_modules()
    # The run session (conformance.run, a module or a package) and the CLI are among them.
    assert "conformance.run" in modules and "conformance.cli" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "import reference_models, reference_models.interface\n"
        "loaded = [m for m in ('torch', 'tensorflow', 'keras', 'tf2onnx') if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"run stage loaded: {result.stdout.strip()}"
