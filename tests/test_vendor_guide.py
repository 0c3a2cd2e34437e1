"""docs/vendor-guide.md, followed as a new vendor would: its own files and commands, in order.

The guide's files (a fenced block right after a line "File `path`:") are written into a work
folder, the adapter is installed the way the guide says (``pip install ./acme_adapter``, here
with ``--no-deps --target <folder>`` so the shared environment is left as it is), and every
``conformance`` command of the guide runs in a subprocess with PYTHONPATH pointing there: it
must end in a certified bundle that verifies. The shipped example (examples/vendor_adapter) is
installed the same way, and adapter bugs the guide warns about are shown to be reported as
adapter errors, not as the runtime's findings.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.targets.interface import (
    InvalidTargetError,
    Option,
    Target,
    TargetInfo,
    validate_options,
)

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "vendor-guide.md"
EXAMPLE = REPO / "examples" / "vendor_adapter"

FENCE = re.compile(r"^```(?P<lang>[a-z]*)\n(?P<body>.*?)^```$", re.M | re.S)
FILE_LABEL = re.compile(r"File `(?P<path>[^`]+)`:\s*$")


@dataclasses.dataclass(frozen=True)
class Block:
    lang: str
    body: str
    file: str | None  # the path the guide says to save it as


def guide_blocks() -> list[Block]:
    text = GUIDE.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").splitlines()
        label = FILE_LABEL.search(before[-1]) if before else None
        blocks.append(Block(match["lang"], match["body"], label["path"] if label else None))
    return blocks


def guide_files() -> dict[str, str]:
    return {b.file: b.body for b in guide_blocks() if b.file}


def guide_commands() -> list[str]:
    """The guide's commands after the suite is installed, in order."""
    commands = []
    for block in guide_blocks():
        if block.lang != "sh":
            continue
        for line in block.body.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith(("conformance ", "pip install ./")):
                commands.append(line)
    return commands


def pip_install_target(source: Path, site: Path) -> None:
    """``pip install <source>`` as the guide says, into ``site`` (offline, no dependencies)."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation"]
        + ["--no-index", "--quiet", "--target", str(site), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def assert_dependencies_are_the_suites(source: Path) -> None:
    """The guide's own ``pip install <source>``, dependencies included, in the suite's
    environment (dry run: nothing changes): the adapter is all it would add, since its
    dependencies (ml-conformance, onnxruntime) are the suite installed in step 0."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-build-isolation"]
        + ["--no-index", str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (would,) = [line for line in result.stdout.splitlines() if line.startswith("Would install")]
    assert would.split() == ["Would", "install", "acme-runtime-0.1.0"], would


def env_with(site: Path) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def conformance(args: list[str], cwd: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conformance", *args],
        cwd=cwd,
        env=env_with(site),
        capture_output=True,
        text=True,
        timeout=600,
    )


def write_files(files: dict[str, str], root: Path) -> None:
    for relative, body in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")


# -- the guide's text -------------------------------------------------------------------------


def test_guide_files_are_the_shipped_example():
    files = guide_files()
    assert set(files) == {
        "acme_adapter/acme_runtime.py",
        "acme_adapter/pyproject.toml",
        "system.json",
    }
    assert files["acme_adapter/acme_runtime.py"] == (EXAMPLE / "acme_runtime.py").read_text()
    assert files["acme_adapter/pyproject.toml"] == (EXAMPLE / "pyproject.toml").read_text()
    json.loads(files["system.json"])


def test_guide_lists_every_field_of_the_contract():
    text = GUIDE.read_text(encoding="utf-8")
    for field in dataclasses.fields(TargetInfo):
        assert f"| `{field.name}` |" in text, f"TargetInfo.{field.name} is not in the guide's table"
    for field in dataclasses.fields(Option):
        assert field.name in text, f"Option.{field.name} is not in the guide"
    assert "super().__init__(input_names)" in text and "AdapterError" in text


def test_guide_installs_the_suite_from_a_checkout():
    text = GUIDE.read_text(encoding="utf-8")
    assert ".venv/bin/pip install -e ." in text
    # Not published: the guide must not tell anyone to install it from an index.
    assert not re.search(r"^\s*pip install ml-conformance", text, re.M)


def test_guide_options_snippet_declares_valid_options():
    (snippet,) = [b.body for b in guide_blocks() if b.lang == "python" and "OPTIONS = (" in b.body]
    namespace: dict[str, object] = {"Target": Target, "Option": Option}
    exec(snippet, namespace)  # the guide's own code: a Target subclass with declared OPTIONS
    declared = namespace["AcmeTarget"].OPTIONS  # type: ignore[attr-defined]
    assert validate_options("acme:threads=4", declared, {"threads": "4"}) == {"threads": 4}
    assert validate_options("acme", declared, {}) == {"threads": 0}
    for bad in ("-1", "abc", "257"):
        with pytest.raises(InvalidTargetError, match="threads"):
            validate_options(f"acme:threads={bad}", declared, {"threads": bad})


# -- the guide's path, end to end -------------------------------------------------------------


def test_following_the_guide_gives_a_certified_bundle_that_verifies(tmp_path: Path):
    work, site = tmp_path / "work", tmp_path / "site"
    work.mkdir()
    write_files(guide_files(), work)
    commands = guide_commands()
    verbs = [shlex.split(c)[1] for c in commands if c.startswith("conformance ")]
    assert verbs == ["targets", "run", "keygen", "certify", "verify"], commands
    for command in commands:
        argv = shlex.split(command)
        if argv[:2] == ["pip", "install"]:
            (source,) = argv[2:]
            assert_dependencies_are_the_suites(work / source)
            pip_install_target(work / source, site)
            continue
        result = conformance(argv[1:], work, site)
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{command}\n{output[-4000:]}"
        assert "Traceback" not in output, f"{command}\n{output[-4000:]}"
        if argv[1] == "keygen":
            fingerprint = re.search(r"sha256:[0-9a-f]{64}", result.stdout)
            assert fingerprint, result.stdout
        if argv[1] == "targets":
            assert re.search(r"^acme\s+available", result.stdout, re.M), result.stdout
        if argv[1] == "certify":
            assert "profile core: CERTIFIED" in result.stdout, result.stdout[-3000:]
        if argv[1] == "verify":
            assert "VERIFIED" in result.stdout and "REJECTED" not in result.stdout, output
    assert (work / "acme-core.zip").is_file()
    assert (work / "runs" / "acme-core" / "report.html").is_file()
    # What the guide tells the vendor's users to do with a plug-in target: rerun a sample here.
    rerun = ["verify", "acme-core.zip", "--public-key", "acme_key.pub", "--rerun"]
    result = conformance(
        [*rerun, "--allow-plugin", "acme", "--sample", "2", "--seed", "1"], work, site
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "2 agree with the bundle" in result.stdout, result.stdout[-3000:]
    # A standards body's scoreboard, with the submitter's key listed as the guide shows.
    submitter = json.loads((work / "system.json").read_text())["submitter"]
    (work / "keys.json").write_text(json.dumps({submitter: [fingerprint[0]]}))
    result = conformance(
        ["scoreboard", "acme-core.zip", "-o", "scoreboard.html", "--trusted-keys", "keys.json"],
        work,
        site,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "1 compared, 0 not compared" in result.stdout, result.stdout


# -- the shipped example, installed as the guide says -----------------------------------------


@pytest.fixture(scope="module")
def example_site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("example")
    source = root / "vendor_adapter"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    pip_install_target(source, root / "site")  # a build in the copy leaves the checkout clean
    return root / "site"


def test_example_adapter_installed_with_pip_runs_the_pack(example_site: Path, tmp_path: Path):
    assert (example_site / "acme_runtime.py").is_file()
    assert list(example_site.glob("acme_runtime-0.1.0.dist-info/entry_points.txt"))
    result = conformance(
        ["run", "--target", "acme", "--model", "mlp", "--out", str(tmp_path / "run")],
        tmp_path,
        example_site,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    document = json.loads((tmp_path / "run" / "results.json").read_text())
    assert document["targets"]["acme"]["available"] is True
    assert document["targets"]["acme"]["runtime"] == "acme"
    verdicts = {check["verdict"] for check in document["checks"]}
    assert verdicts == {"passed"}, verdicts


def test_example_adapter_refuses_an_unknown_option(example_site: Path, tmp_path: Path):
    result = conformance(
        ["run", "--target", "acme:fastmath=1", "--model", "mlp", "--out", str(tmp_path / "run")],
        tmp_path,
        example_site,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "fastmath" in result.stderr and "acme takes no options" in result.stderr
    assert "Traceback" not in result.stderr


# -- adapter bugs the guide warns about -------------------------------------------------------


def broken_adapter(tmp_path: Path, old: str, new: str) -> Path:
    """The guide's adapter with one line changed, installed as the guide says."""
    files = guide_files()
    source = files["acme_adapter/acme_runtime.py"]
    assert old in source
    files["acme_adapter/acme_runtime.py"] = source.replace(old, new)
    write_files(files, tmp_path / "work")
    site = tmp_path / "site"
    pip_install_target(tmp_path / "work" / "acme_adapter", site)
    return site


def test_a_session_that_forgets_super_init_is_an_adapter_error(tmp_path: Path):
    site = broken_adapter(
        tmp_path,
        "        super().__init__([i.name for i in compiled.get_inputs()])",
        "        self._inputs = [i.name for i in compiled.get_inputs()]",
    )
    run_dir = tmp_path / "run"
    result = conformance(
        ["run", "--target", "acme", "--model", "mlp", "--out", str(run_dir)], tmp_path, site
    )
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    checks = json.loads((run_dir / "results.json").read_text())["checks"]
    assert checks
    # The terminal says whose bug it is, never that the runtime diverges.
    assert f"{len(checks)} adapter errors (the adapter broke the target contract" in result.stdout
    assert "on the runtime's account" not in result.stdout
    assert "runtime finding, the artifact is good" not in result.stdout
    for check in checks:
        problems = " ".join(check["problems"])
        assert check["verdict"] == "error", check
        assert check["attributed_to"] == "adapter", check  # not the runtime's finding
        assert problems.startswith("adapter error: "), problems
        # Said as the adapter's bug, with the fix; never "AttributeError" from the runtime.
        assert "did not call super().__init__(input_names)" in problems, problems
        assert "AttributeError" not in problems, problems


def test_a_target_info_without_runtime_is_one_line_naming_the_fields(tmp_path: Path):
    site = broken_adapter(tmp_path, '            runtime="acme",\n', "")
    run_dir = tmp_path / "run"
    result = conformance(
        ["run", "--target", "acme", "--model", "mlp", "--out", str(run_dir)], tmp_path, site
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    (line,) = [line for line in result.stderr.splitlines() if "TargetInfo" in line]
    assert "missing 1 required positional argument: 'runtime'" in line
    assert "TargetInfo takes name, runtime, version, device" in line
    assert not (run_dir / "results.json").exists() or not json.loads(
        (run_dir / "results.json").read_text()
    ).get("checks")
