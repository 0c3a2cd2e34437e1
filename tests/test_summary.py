"""What `conformance run` leaves on the terminal: a verdict per target, findings a user can act
on (grouped, showing the part that names the failure), runtime findings told apart from
exporter findings, and nothing from the runtimes' own logs. Real runs of real runtimes."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

import conformance
from conformance.findings import group_key, informative_part
from conformance.results.document import load_document, records_of
from conformance.results.records import CheckRecord

ROOT = Path(conformance.__file__).resolve().parents[1]


@dataclass(frozen=True)
class Run:
    stdout: str
    stderr: str
    returncode: int
    document: dict[str, Any]

    @property
    def records(self) -> list[CheckRecord]:
        return records_of(self.document)


def conformance_run(out: Path, *args: str) -> Run:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "conformance", "run", *args, "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    path = out / "results.json"
    assert path.is_file(), result.stderr[-3000:]
    return Run(result.stdout, result.stderr, result.returncode, load_document(path))


@pytest.fixture(scope="module")
def ort_run(tmp_path_factory) -> Run:
    """ort:cpu (conformant, with one exporter finding: the TorchScript transformer fails its
    second sequence length, and ORT logs a red [E:onnxruntime:...] line while failing it) and
    the noise control (not conformant) on two models."""
    return conformance_run(
        tmp_path_factory.mktemp("ort") / "run",
        *("--target", "ort:cpu", "--target", "defect:noise"),
        *("--model", "transformer_encoder", "--model", "mlp"),
    )


def test_a_runtimes_log_lines_stay_off_the_terminal(ort_run):
    exporter_errors = [
        r for r in ort_run.records if r.verdict == "error" and r.attributed_to == "exporter"
    ]
    assert exporter_errors  # ORT did fail the artifact, so it did log
    assert "onnxruntime:" not in ort_run.stderr and "\x1b[" not in ort_run.stderr
    assert "onnxruntime:" not in ort_run.stdout.replace("[ONNXRuntimeError]", "")


def test_the_grid_tells_runtime_findings_from_exporter_findings(ort_run):
    from conformance.summary import render_interop

    grid = render_interop(ort_run.records).splitlines()
    header = grid[0].split()
    assert header == ["interop", "ort:cpu", "defect:noise"]
    rows = {line.split()[0]: line for line in grid[1:3]}
    ort_column = grid[0].index("ort:cpu")
    noise_column = grid[0].index("defect:noise")
    transformer = rows["transformer_encoder"]
    # The bad artifact is the exporter's: on the conformant runtime it is not a runtime mark.
    assert transformer[ort_column:noise_column].strip() == "e torch-script"
    assert (
        transformer[noise_column:].strip() == "x tf2onnx,torch-dynamo,torch-script e torch-script"
    )
    assert rows["mlp"][noise_column:].strip() == "x tf2onnx,torch-dynamo,torch-script"
    legend = "\n".join(grid[3:])
    assert "x EXPORTERS: runtime finding" in legend and "e EXPORTERS: exporter finding" in legend


def test_a_verdict_per_target_under_the_reports_rule(ort_run):
    from conformance.report.verdicts import target_verdicts
    from conformance.summary import render_run_summary

    text = render_run_summary(ort_run.document, ort_run.records)
    block = text[text.index("verdict per target") :].splitlines()
    lines = {line.split()[0]: line for line in block[2:]}
    assert set(lines) == {"ort:cpu", "defect:noise"}
    report = {v.target: v for v in target_verdicts(ort_run.document, ort_run.records)}
    assert report["ort:cpu"].profiles[0].status == "conformant"
    assert report["defect:noise"].profiles[0].status == "not conformant"
    assert " conformant " in lines["ort:cpu"] and "NOT CONFORMANT" not in lines["ort:cpu"]
    assert "NOT CONFORMANT (negative control: expected)" in lines["defect:noise"]
    # Counts: the exporter finding has its own count, never among the runtime's errors.
    ort = [r for r in ort_run.records if r.target == "ort:cpu"]
    passed = sum(r.verdict == "passed" for r in ort)
    exporter = sum(r.verdict != "passed" and r.attributed_to == "exporter" for r in ort)
    assert exporter >= 1
    plural = "s" if exporter != 1 else ""
    assert f"{passed} passed, {exporter} exporter finding{plural}" in lines["ort:cpu"]
    assert "error" not in lines["ort:cpu"].split("exporter finding")[0]
    # ... and that is what `conformance run` ends with, before the paths of its files.
    printed = ort_run.stdout[ort_run.stdout.index("verdict per target") :]
    assert printed.startswith("\n".join(block)) and ort_run.returncode == 1


def test_progress_piped_into_a_log_is_plain_lines(ort_run):
    """Not a terminal (a CI log): no bar redrawn with carriage returns, a final count line."""
    assert "\r" not in ort_run.stdout
    total = len(ort_run.records)
    assert f"checks: {total}/{total} done in " in ort_run.stdout


def test_identical_findings_are_one_line_with_their_data_sets(ort_run):
    noise_mlp = [
        r
        for r in ort_run.records
        if r.target == "defect:noise" and r.model == "mlp" and r.exporter == "torch-dynamo"
    ]
    assert noise_mlp and all(r.verdict == "failed" for r in noise_mlp)
    same = [r for r in noise_mlp if group_key(r.problems[0]) == group_key(noise_mlp[0].problems[0])]
    assert len(same) >= 2  # the same finding on several data sets
    # The findings list's lines (the localisation's own lines come before it, unindented).
    lines = [line for line in ort_run.stdout.splitlines() if line.startswith("  mlp-torch-dynamo-")]
    assert len(lines) == len(noise_mlp) - len(same) + 1, lines  # one line for the group
    labels = ", ".join(r.data_set_label for r in same)
    head = f"  {same[0].check_id} failed on {len(same)} data sets ({labels}): "
    grouped = [line for line in lines if line.startswith(head)]
    assert len(grouped) == 1 and "values out of tolerance" in grouped[0], lines


@pytest.fixture(scope="module")
def compiler_run(tmp_path_factory) -> Run:
    from conformance.targets import get_target

    for name in ("iree:llvm-cpu", "tract"):
        reason = get_target(name).unavailable_reason()
        if reason:
            pytest.skip(f"{name}: {reason}")
    return conformance_run(
        tmp_path_factory.mktemp("compilers") / "run",
        *("--target", "iree:llvm-cpu", "--target", "tract", "--model", "gru"),
    )


def test_a_compiler_error_shows_the_operator_it_names(compiler_run):
    """IREE's message names the failing ONNX operator after 200 characters of boilerplate and
    MLIR: the terminal line shows the error with the operator, the results keep the message."""
    legalize = [
        r
        for r in compiler_run.records
        if r.target == "iree:llvm-cpu" and r.problems and "failed to legalize" in r.problems[0]
    ]
    assert legalize, [r.problems[:1] for r in compiler_run.records if r.target == "iree:llvm-cpu"]
    message = legalize[0].problems[0]
    assert "Invoked with" in message  # the whole message is in the results file
    shown = informative_part(message)
    assert "failed to legalize operation 'torch.operator'" in shown
    assert "onnx.Loop" in shown and "model.mlir" in shown and "Invoked with" not in shown
    line = next(
        line
        for line in compiler_run.stdout.splitlines()
        if line.startswith(f"  {legalize[0].check_id} ")
    )
    assert "onnx.Loop" in line and f"{len(legalize)} data sets" in line


def test_a_cause_chain_shows_its_last_cause(compiler_run):
    """tract's messages end in the cause: a head-and-tail view keeps the node and the reason."""
    chains = [
        r
        for r in compiler_run.records
        if r.target == "tract" and r.problems and "Caused by" in r.problems[0]
    ]
    assert chains
    for record in chains:
        message = " ".join(record.problems[0].split())
        shown = informative_part(message, 160)
        assert len(shown) <= 160
        assert shown.startswith(message[:40]) and shown.endswith(message[-30:])


def test_a_compiler_diagnostic_gives_its_error_line_operator_and_location():
    """IREE's raw CompilerToolError (as the adapter raised it before it wrote its own first line):
    boilerplate, then the diagnostic, the operator deep inside an MLIR dump, the command line."""
    message = (
        "load failed: CompilerToolError: Error invoking IREE compiler tool iree-compile\n"
        "Error code: 1\nDiagnostics:\n"
        "/tmp/conformance-iree-6dqq/model.mlir:31:13: error: failed to legalize operation "
        "'torch.operator' that was explicitly marked illegal: %114:7 = \"torch.operator\"(%77) "
        '<{name = "onnx.Loop"}> ({...}) : (!torch.vtensor<[],si64>) -> (!torch.vtensor<[],si32>)\n'
        '    %27:7 = torch.operator "onnx.Loop"(%22) : (!torch.vtensor<[],si64>) {\n'
        "            ^\n\n\nInvoked with:\n iree-compile /tmp/x/model.mlir -o=/tmp/x/model.vmfb\n"
    )
    assert informative_part(message) == (
        "load failed: CompilerToolError: error: failed to legalize operation 'torch.operator' "
        "that was explicitly marked illegal [onnx.Loop] (model.mlir:31:13)"
    )
    # An adapter whose first line already says it: that line, plus the operator if missing.
    summarised = "load failed: iree-compile failed: failed to legalize operation 'torch.operator'"
    summarised += " that was explicitly marked illegal; its input is kept at /run/model.mlir\n"
    assert informative_part(summarised + message) == summarised.strip() + " [onnx.Loop]"


def test_findings_that_differ_only_in_numbers_or_temp_paths_are_one_group():
    first = "load failed: X\n/tmp/conformance-iree-ab12/model.mlir:3:1: error: bad shape 20"
    second = "load failed: X\n/tmp/conformance-iree-zz99/model.mlir:3:1: error: bad shape 12"
    other = "load failed: X\n/tmp/conformance-iree-zz99/model.mlir:3:1: error: bad type f16"
    assert group_key(first) == group_key(second) != group_key(other)
    assert informative_part("short") == "short" and informative_part("  \n ^^^ \n") == ""


def test_adapter_errors_have_their_own_mark_count_and_list(ort_run):
    """A vendor adapter's bug (attributed_to "adapter", as the run records it) is neither a
    runtime finding nor an exporter finding: the grid, the counts and the findings say so."""
    from conformance.results.records import ADAPTER
    from conformance.summary import render_run_summary

    records = [
        replace(r, verdict="error", attributed_to=ADAPTER, problems=("adapter error: run: bad",))
        if r.target == "defect:noise" and r.model == "mlp"
        else r
        for r in ort_run.records
    ]
    text = render_run_summary(ort_run.document, records)
    grid = text[text.index("interop ") :].splitlines()
    mlp = next(line for line in grid if line.startswith("mlp "))
    assert mlp[grid[0].index("defect:noise") :].strip() == "a tf2onnx,torch-dynamo,torch-script"
    assert "a EXPORTERS: adapter error" in text
    broken = sum(r.attributed_to == ADAPTER for r in records)
    assert (
        f"{broken} adapter errors (the adapter broke the target contract; fix the adapter)" in text
    )
    verdicts = text[text.index("verdict per target") :].splitlines()
    noise = next(line for line in verdicts if line.lstrip().startswith("defect:noise"))
    assert f"{broken} adapter errors" in noise and f"{broken} error" not in noise


def test_names_from_a_results_file_are_escaped_and_an_unknown_verdict_is_shown(ort_run):
    """`certify` and `run --resume` print records read back from a file: a forged name must not
    reach the terminal as an escape sequence, an unknown verdict must not be a KeyError."""
    from conformance.summary import render_run_summary

    forged = "ort:cpu\x1b[2K\rVERIFIED"
    records = [
        replace(r, target=forged, verdict="weird") if r.target == "ort:cpu" else r
        for r in ort_run.records
    ]
    text = render_run_summary(ort_run.document, records)
    assert "\x1b" not in text and "\r" not in text
    assert "ort:cpu\\x1b[2K\\rVERIFIED" in text and "weird" in text


def test_the_verdict_header_names_the_profile_the_checks_were_judged_under(ort_run):
    """A bf16 run read "profile core" (the report's rule names the precision profile)."""
    from conformance.summary import render_verdicts

    assert "(profile core, " in render_verdicts(ort_run.document, ort_run.records)
    as_bf16 = [replace(r, precision="bf16") for r in ort_run.records]
    assert "(profile bf16, " in render_verdicts(ort_run.document, as_bf16)
