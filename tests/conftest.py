"""Shared fixtures: the committed pack, a skip for build-stage tests without frameworks, and
the CI rule that a missing part of the README's set-up fails the run instead of skipping.

In CI (``CI`` set to true, 1 or yes), everything ``scripts/test.sh`` installs must be here: the
targets ORT (CPU), the reference evaluator, OpenVINO (CPU), tract and IREE (llvm-cpu), the
benchmark's LoadGen, Debian's Chromium and playwright for the browser tests, and the
frameworks extra (torch, tensorflow, tf2onnx). A test that skips because one of them is missing
is reported as FAILED with the reason and the fix, and the run's exit status is 1 even if no
test happened to skip. GPU targets (ort:cuda, ort:tensorrt, openvino:gpu, iree:cuda) and other
optional tools still skip, with their reason. Outside CI every skip stays a skip.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from conformance.pack.load import Pack
from conformance.spec import PACK_DIR

FRAMEWORK_MODULES = ("torch", "tensorflow", "tf2onnx")
SETUP = "scripts/test.sh"  # the README's set-up, what .ci/run runs


def importable(module: str) -> bool:
    """Whether ``module`` can be found, without importing it (a broken finder counts as no)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


FRAMEWORKS = all(importable(m) for m in FRAMEWORK_MODULES)
needs_frameworks = pytest.mark.skipif(
    not FRAMEWORKS, reason="needs the frameworks extra (torch, tensorflow, tf2onnx)"
)


@pytest.fixture(scope="session")
def pack() -> Pack:
    return Pack(PACK_DIR)


@pytest.fixture(scope="session")
def ops_case_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated onnx node cases (conformance.ops.cases), once per session, under tmp."""
    return tmp_path_factory.mktemp("ops-case-cache")


COMPILE_CACHE_ENV = "CONFORMANCE_CACHE_DIR"


def pytest_configure(config: pytest.Config) -> None:
    """Tests never touch the user's cache folder: every IREE / OpenVINO compile of the session
    (in-process and in the isolated children, which inherit the environment) caches under one
    temporary folder of this session, shared by its tests. A caller's own folder is kept."""
    if COMPILE_CACHE_ENV not in os.environ:
        import tempfile

        folder = tempfile.mkdtemp(prefix="conformance-test-cache-")
        os.environ[COMPILE_CACHE_ENV] = config.stash[_OWN_CACHE] = folder


_OWN_CACHE = pytest.StashKey[str]()


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(_OWN_CACHE, None)  # only the process that made it removes it
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(COMPILE_CACHE_ENV, None)


# -- CI: no skip may hide a broken set-up ---------------------------------------------------

# Targets the set-up installs (the runtimes extra and the core dependencies). GPU targets are
# not listed: a CI machine without a GPU skips them, with their reason.
CI_TARGETS = ("ort:cpu", "reference", "openvino:cpu", "tract", "iree:llvm-cpu")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"  # as tests/test_report.py finds it


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class SetupGap:
    """One part of the set-up that is missing here, and how a skip caused by it reads."""

    part: str  # e.g. "target tract"
    reason: str  # why it is missing, e.g. the target's unavailable_reason()
    install: str  # what installs it
    skip_markers: tuple[str, ...]  # a skip whose reason contains one of these is caused by it

    def explain(self, skip_reason: str | None = None) -> str:
        what = f"skipped ({skip_reason}); " if skip_reason else ""
        return (
            f"CI=true: {what}{self.part} is missing here ({self.reason}), but {SETUP} installs "
            f"it ({self.install}): in CI a missing part of the set-up fails the run instead of "
            "skipping its tests"
        )


def _target_reason(name: str) -> str | None:
    try:
        from conformance.targets import get_target

        return get_target(name).unavailable_reason()
    except Exception as error:  # noqa: BLE001 - a target that cannot even be built is missing
        return f"{type(error).__name__}: {error}"


@cache
def setup_gaps() -> tuple[SetupGap, ...]:
    """What the set-up installs that is not here (computed once, only in CI)."""
    runtimes = "pip install -e '.[runtimes]'"
    gaps = []
    for name in CI_TARGETS:
        reason = _target_reason(name)
        if reason:
            gaps.append(SetupGap(f"target {name}", reason, runtimes, (reason,)))
    if not importable("mlperf_loadgen"):
        gaps.append(
            SetupGap(
                "mlcommons-loadgen",
                "module mlperf_loadgen not found",
                runtimes,
                ("mlperf_loadgen", "loadgen"),
            )
        )
    missing = [m for m in FRAMEWORK_MODULES if not importable(m)]
    if missing:
        gaps.append(
            SetupGap(
                "the frameworks extra",
                "not importable: " + ", ".join(missing),
                "pip install -e '.[frameworks]'",
                ("frameworks extra", *(f"'{m}'" for m in missing)),
            )
        )
    if not Path(CHROMIUM).is_file():
        gaps.append(
            SetupGap(
                "Chromium",
                f"no browser at {CHROMIUM}",
                "apt-get install -y chromium",
                ("Chromium",),
            )
        )
    if not importable("playwright"):
        gaps.append(
            SetupGap(
                "playwright",
                "module playwright not found",
                "pip install -e '.[test]'",
                ("playwright",),
            )
        )
    return tuple(gaps)


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _gap_behind(report: pytest.TestReport | pytest.CollectReport) -> tuple[SetupGap, str] | None:
    if not report.skipped or hasattr(report, "wasxfail") or not in_ci():
        return None
    reason = _skip_reason(report)
    for gap in setup_gaps():
        if any(marker in reason for marker in gap.skip_markers):
            return gap, reason
    return None


def _fail(report: pytest.TestReport | pytest.CollectReport) -> None:
    found = _gap_behind(report)
    if found is not None:
        gap, reason = found
        report.outcome = "failed"
        report.longrepr = gap.explain(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    _fail(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    _fail(report)  # a module-level skip (importorskip at import time)
    return report


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if in_ci() and setup_gaps():
        terminalreporter.section("set-up gaps (CI=true)", sep="=", red=True, bold=True)
        for gap in setup_gaps():
            terminalreporter.line(gap.explain())


def pytest_sessionfinish(session, exitstatus):
    if (
        in_ci()
        and setup_gaps()
        and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
    ):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
