"""Every branch of a check is shown to fail, with the reason it records, through `conformance run`.

The negative controls defect:repeat-ulp and defect:batch-variant are right on values and wrong
only on determinism or only on batch invariance; two entry-point targets declared
nondeterministic take the within-tolerance determinism path (one passes it, one fails it); the
ERROR and SKIPPED verdicts come from real runtimes and a real missing module. Everything is read
back from the results file a real `conformance run` subprocess writes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conformance.pack.load import Pack
from conformance.spec import PACK_DIR
from conformance.targets.defects import BATCH_VARIANT_SHIFT, KINDS, DefectTarget
from conformance.targets.ort import OrtCpuTarget

REPO = Path(__file__).resolve().parents[1]
MLP = REPO / "spec" / "pack" / "mlp" / "torch-script"
NONDETERMINISTIC = "nondeterministic: a second run of the same input gave different outputs"
BATCH_VARIANCE = "batch invariance: sample 1 differs from its batch-1 result (margin "
MISSING_MODULE = "conformance_h7_no_such_module"
# Checks per target in the controls' run: mlp and transformer_encoder, one artifact each.
PER_TARGET = sum(len(Pack(PACK_DIR).model(m).data_sets) for m in ("mlp", "transformer_encoder"))

# Two third-party targets that declare themselves nondeterministic (TargetInfo.deterministic
# False), so the engine holds their repeated runs to the tolerance instead of to identity.
PLUGIN = textwrap.dedent('''
    """Test plug-ins: targets declared nondeterministic (tests/test_controls.py)."""
    import hashlib

    import numpy as np

    from conformance.targets import get_target
    from conformance.targets.defects import DefectTarget
    from conformance.targets.interface import Session, Target, TargetInfo


    class Declared(Target):
        def __init__(self, name, options=None):
            super().__init__(name, {} if options is None else options)

        def unavailable_reason(self):
            return get_target("ort:cpu").unavailable_reason()

        def describe(self):
            return TargetInfo(self.name, "test-plugin", "1", "cpu", {}, deterministic=False)


    class JitteryTarget(Declared):
        """defect:repeat-ulp (a repeat differs by one ulp), declared nondeterministic."""

        def _load(self, model_path):
            return DefectTarget("defect:repeat-ulp", {}).load(model_path)


    class DriftingSession(Session):
        """A run of the same input as the run before drifts by 1e-3 (1 + |x|)."""

        def __init__(self, inner):
            super().__init__(list(inner.input_names))
            self.inner = inner
            self.previous = None

        def _run(self, inputs):
            key = hashlib.sha256(
                b"".join(np.ascontiguousarray(inputs[k]).tobytes() for k in sorted(inputs))
            ).hexdigest()
            outputs = self.inner.run(inputs)
            repeated, self.previous = key == self.previous, key
            if not repeated:
                return outputs
            return [
                (n, (a + 1e-3 * (1 + np.abs(a))).astype(a.dtype) if a.dtype.kind == "f" else a)
                for n, a in outputs
            ]

        def close(self):
            self.inner.close()


    class DriftingTarget(Declared):
        """An immediate repeat drifts by 1e-3 (1 + |x|): beyond the tolerance, declared or not."""

        def _load(self, model_path):
            return DriftingSession(get_target("ort:cpu").load(model_path))
''')


def install_plugin(root: Path) -> Path:
    """The plug-in module and an installed distribution's metadata declaring its entry points."""
    root.mkdir()
    (root / "h7_declared_targets.py").write_text(PLUGIN)
    info = root / "h7_declared_targets-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: h7-declared-targets\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(
        "[conformance.targets]\n"
        "jittery = h7_declared_targets:JitteryTarget\n"
        "drifting = h7_declared_targets:DriftingTarget\n"
    )
    return root


def conformance(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "conformance", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=900,
    )


def by_id(results: Path) -> dict[str, dict]:
    return {c["id"]: c for c in json.loads(results.read_text())["checks"]}


@pytest.fixture(scope="module")
def controls_run(tmp_path_factory):
    """One real run: the two controls, the two declared-nondeterministic plug-ins, and a backend
    whose module is missing, on mlp (two outputs, batch 1 and 4) and transformer_encoder
    (batch 4 at two sequence lengths; its torch-script artifact fails seq 20 on every ORT)."""
    tmp = tmp_path_factory.mktemp("controls")
    site = install_plugin(tmp / "site")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    targets = [
        "defect:repeat-ulp",
        "defect:batch-variant",
        "jittery",
        "drifting",
        f"backend:{MISSING_MODULE}:Backend",
    ]
    args = ["run", "--model", "mlp", "--model", "transformer_encoder"]
    args += ["--exporter", "torch-script", "--out", str(tmp / "run")]
    for target in targets:
        args += ["--target", target]
    result = conformance(*args, env=env)
    document = json.loads((tmp / "run" / "results.json").read_text())
    return result, document, {c["id"]: c for c in document["checks"]}


def test_the_run_completes_and_exits_one_on_the_findings(controls_run):
    result, document, checks = controls_run
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert document["run"]["status"] == "complete"
    assert len(checks) == 5 * PER_TARGET


def test_repeat_ulp_passes_values_and_fails_only_determinism(controls_run):
    _, _, checks = controls_run
    for data_set in ("batch1", "batch4"):
        record = checks[f"mlp-torch-script-{data_set}-defect:repeat-ulp"]
        assert record["verdict"] == "failed" and record["attributed_to"] == "target"
        assert record["problems"] == [NONDETERMINISTIC]
        assert record["determinism"] == {"checked": True, "mode": "identical", "passed": False}
        assert record["margin"] < 1.0  # the values pass: an ulp is far inside the tolerance
    assert checks["mlp-torch-script-batch4-defect:repeat-ulp"]["batch_invariance"]["passed"]
    assert checks["mlp-torch-script-batch1-defect:repeat-ulp"]["batch_invariance"] == {
        "checked": False
    }
    encoder = checks["transformer_encoder-torch-script-batch1-seq12-defect:repeat-ulp"]
    assert encoder["problems"] == [NONDETERMINISTIC] and encoder["margin"] < 1.0


def test_batch_variant_passes_values_and_fails_only_batch_invariance(controls_run):
    _, _, checks = controls_run
    alone = checks["mlp-torch-script-batch1-defect:batch-variant"]
    assert alone["verdict"] == "passed" and alone["problems"] == []
    for check_id in (
        "mlp-torch-script-batch4-defect:batch-variant",
        "transformer_encoder-torch-script-batch4-seq12-defect:batch-variant",
    ):
        record = checks[check_id]
        assert record["verdict"] == "failed" and record["attributed_to"] == "target", check_id
        assert len(record["problems"]) == 1 and record["problems"][0].startswith(BATCH_VARIANCE)
        assert record["margin"] < 1.0  # values: the batched call is honest
        assert record["determinism"] == {"checked": True, "mode": "identical", "passed": True}
        invariance = record["batch_invariance"]
        assert invariance["checked"] and not invariance["passed"]
        assert invariance["sample"] == 1  # sample 0 is honest alone too
        # The shift is 1e-3 (1 + |x|), >= 10x atol 1e-5 + rtol 1e-4 |x| at every element.
        assert invariance["margin"] >= 9.0
        assert f"(margin {invariance['margin']:.3g})" in record["problems"][0]
        assert all("values out of tolerance" in p for p in invariance["problems"])


def test_declared_nondeterminism_holds_repeats_to_the_tolerance(controls_run):
    _, document, checks = controls_run
    assert document["targets"]["jittery"]["deterministic"] is False
    assert document["targets"]["drifting"]["deterministic"] is False
    for data_set in ("batch1", "batch4"):
        jittery = checks[f"mlp-torch-script-{data_set}-jittery"]
        assert jittery["verdict"] == "passed" and jittery["problems"] == []
        repeat = jittery["determinism"]
        assert repeat["mode"] == "within-tolerance" and repeat["passed"] and repeat["checked"]
        assert 0.0 <= repeat["margin"] < 1.0

        drifting = checks[f"mlp-torch-script-{data_set}-drifting"]
        assert drifting["verdict"] == "failed" and drifting["problems"] == [NONDETERMINISTIC]
        repeat = drifting["determinism"]
        assert repeat["mode"] == "within-tolerance" and not repeat["passed"]
        assert repeat["margin"] > 1.0 and drifting["margin"] < 1.0  # the first run was right


def test_error_verdicts_carry_the_stage_and_the_runtime_message(controls_run):
    """The torch-script export of transformer_encoder traced seq 12 into a Reshape: ORT (under
    every control) refuses seq 20 at run time. The pack records that artifact as failing that
    data set on the reference evaluator, so the error is the exporter's."""
    _, _, checks = controls_run
    for target in ("defect:repeat-ulp", "defect:batch-variant", "jittery", "drifting"):
        record = checks[f"transformer_encoder-torch-script-batch4-seq20-{target}"]
        assert record["verdict"] == "error", (target, record["problems"])
        assert record["attributed_to"] == "exporter"
        assert record["problems"][0].startswith("run failed: ")
        assert "Reshape" in record["problems"][0]


def test_an_unavailable_target_skips_every_check_with_its_reason(controls_run):
    _, document, checks = controls_run
    name = f"backend:{MISSING_MODULE}:Backend"
    assert document["targets"][name]["available"] is False
    records = [c for c in checks.values() if c["target"] == name]
    assert len(records) == PER_TARGET
    for record in records:
        assert record["verdict"] == "skipped" and record["attributed_to"] is None
        assert record["problems"][0].startswith("target unavailable: ")
        assert MISSING_MODULE in record["problems"][0]
        assert record["skip"] == "target-unavailable"  # the kind, as data


def test_a_runtime_that_refuses_a_valid_model_is_a_target_error(tmp_path):
    """tract cannot analyse the LSTM of the torch-dynamo export, which is valid and matches the
    reference evaluator: an ERROR on the target's account, with the load stage named."""
    result = conformance(
        "run",
        "--target",
        "tract",
        "--model",
        "lstm",
        "--exporter",
        "torch-dynamo",
        "--out",
        str(tmp_path / "run"),
    )
    document = json.loads((tmp_path / "run" / "results.json").read_text())
    if not document["targets"]["tract"]["available"]:
        pytest.skip(f"tract unavailable: {document['targets']['tract']['reason']}")
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    records = list(by_id(tmp_path / "run" / "results.json").values())
    assert len(records) == len(Pack(PACK_DIR).model("lstm").data_sets)
    for record in records:
        assert record["verdict"] == "error" and record["attributed_to"] == "target"
        assert record["problems"][0].startswith("load failed: ")
        assert "TractError" in record["problems"][0]


@pytest.mark.parametrize("control", ["repeat-ulp", "batch-variant"])
def test_certify_refuses_each_control_and_values_pass_on_every_model(tmp_path, control):
    """Over the whole pack (69 checks, ~5 s here): the control is right on values for every
    model, exporter and data set, fails only its one check, and the core profile refuses it."""
    (tmp_path / "system.json").write_text('{"submitter": "t", "system_name": "CI box"}')
    work = tmp_path / "work"
    result = conformance(
        "certify",
        "--target",
        f"defect:{control}",
        "--system",
        str(tmp_path / "system.json"),
        "--out",
        str(tmp_path / "bundle.zip"),
        "--work-dir",
        str(work),
    )
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"NOT CERTIFIED: defect:{control} for core" in result.stdout
    checks = list(by_id(work / "results.json").values())
    models = Pack(PACK_DIR).models
    fp32 = [(m, a) for m in models for a in m.artifacts if a.precision == "fp32"]
    accuracy = [c for c in checks if c.get("kind") == "accuracy"]  # the model with a task's
    assert len(accuracy) == sum(1 for m, _ in fp32 if m.task is not None)
    assert all(c["verdict"] == "passed" for c in accuracy)  # right on values: right classes too
    checks = [c for c in checks if c.get("kind") != "accuracy"]
    assert len(checks) == sum(len(m.data_sets) for m, _ in fp32)
    errors = [c for c in checks if c["verdict"] == "error"]
    assert all(c["attributed_to"] == "exporter" for c in errors), errors  # bad exports only
    judged = [c for c in checks if c["verdict"] != "error"]
    assert len(judged) >= 0.9 * len(checks)
    assert {c["model"] for c in judged} == {m.name for m in models}
    for check in judged:
        assert check["margin"] < 1.0, check["id"]  # values pass everywhere
        alone = check["data_set_label"].startswith("batch1")
        if control == "repeat-ulp":
            assert check["problems"] == [NONDETERMINISTIC], check["id"]
        elif alone:
            assert check["verdict"] == "passed", check["id"]
        else:
            assert len(check["problems"]) == 1, check["id"]
            assert check["problems"][0].startswith(BATCH_VARIANCE), check["id"]
            assert check["determinism"]["passed"], check["id"]


def test_a_declared_nondeterministic_target_certifies_and_verifies(tmp_path):
    """deterministic=False through certify and verify (~10 s): the bundle records the
    declaration, the verifier's recomputation accepts repeats held to the tolerance, and a
    --rerun of the plug-in (allowed by name) agrees. The drifting one is refused."""
    site = install_plugin(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    (tmp_path / "system.json").write_text('{"submitter": "t", "system_name": "CI box"}')
    key = tmp_path / "vendor.pem"
    assert conformance("keygen", "--out", str(key), env=env).returncode == 0

    def certify(target: str) -> tuple[subprocess.CompletedProcess, Path]:
        bundle = tmp_path / f"{target}.zip"
        args = ["certify", "--target", target, "--system", str(tmp_path / "system.json")]
        args += ["--key", str(key), "--out", str(bundle), "--work-dir", str(tmp_path / target)]
        return conformance(*args, env=env), bundle

    result, bundle = certify("jittery")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "CERTIFIED: jittery for core" in result.stdout
    kept = json.loads((tmp_path / "jittery" / "results.json").read_text())
    assert kept["targets"]["jittery"]["deterministic"] is False
    values = [c for c in kept["checks"] if c.get("kind") != "accuracy"]  # accuracy: one run
    modes = {c["determinism"].get("mode") for c in values if c["verdict"] == "passed"}
    assert modes == {"within-tolerance"}
    verify = ["verify", str(bundle), "--public-key", str(key.with_suffix(".pub")), "--json"]
    result = conformance(*verify, "--rerun", "--allow-plugin", "jittery", "--sample", "4", env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    verdict = json.loads(result.stdout.strip().splitlines()[-1])
    assert verdict["verdict"] == "VERIFIED", verdict
    assert verdict["profiles"]["core"]["status"] == "certified"
    assert any("4 checks re-executed" in note and "4 agree" in note for note in verdict["notes"])

    result, _ = certify("drifting")
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "NOT CERTIFIED: drifting for core" in result.stdout


# What each older control records, per data set of mlp/torch-script (batch 1, batch 4): the
# verdict and the start of every problem, in order (numbers after these prefixes vary).
OLDER_CONTROLS = {
    "noise": [
        ("failed", ["logits: values out of tolerance: ", "probs: values out of tolerance: "]),
    ]
    * 2,
    "fp16": [
        ("failed", ["logits: values out of tolerance: ", "probs: values out of tolerance: "]),
    ]
    * 2,
    "first-sample": [
        ("passed", []),  # a batch of one is its own first sample
        ("failed", ["logits: values out of tolerance: ", "probs: values out of tolerance: "]),
    ],
    "swap-outputs": [
        ("failed", ["logits: values out of tolerance: ", "probs: values out of tolerance: "]),
    ]
    * 2,
    "nan": [
        ("failed", ["logits: 1 NaN/Inf values where the golden is finite", "logits: values out"]),
    ]
    * 2,
    "stale": [
        ("passed", []),  # the first call is honest, and its repeat returns that same result
        ("failed", ["logits: shape [1, 10] != expected [4, 10]", "probs: shape [1, 10] !="]),
    ],
    "dtype": [
        ("failed", ["logits: dtype float64 != expected float32", "probs: dtype float64 !="]),
    ]
    * 2,
    "crash": [("crashed", ["run: the process died (exit code -6)"])] * 2,
    "hang": [("timed-out", ["run: no answer to run within 5 s; the process was killed"])] * 2,
}


def test_every_older_control_records_the_reason_of_the_check_that_caught_it(tmp_path):
    """All nine older controls in one `conformance run` on mlp/torch-script (~25 s here: the
    hang costs one 5 s request timeout per data set; 5 s, not less, so that a slow model load
    on a busy machine is not taken for the hang)."""
    args = ["run", "--model", "mlp", "--exporter", "torch-script", "--timeout", "5"]
    for kind in OLDER_CONTROLS:
        args += ["--target", f"defect:{kind}"]
    result = conformance(*args, "--out", str(tmp_path / "run"))
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    checks = by_id(tmp_path / "run" / "results.json")
    for kind, expected in OLDER_CONTROLS.items():
        for data_set, (verdict, prefixes) in zip(("batch1", "batch4"), expected):
            record = checks[f"mlp-torch-script-{data_set}-defect:{kind}"]
            assert record["verdict"] == verdict, (kind, data_set, record["problems"])
            assert len(record["problems"]) == len(prefixes), (kind, data_set, record["problems"])
            for problem, prefix in zip(record["problems"], prefixes):
                assert problem.startswith(prefix), (kind, data_set, problem)
            if verdict != "passed":
                assert record["attributed_to"] == "target"


# -- the controls themselves, in process (fast) -----------------------------------------------


def data(index: int, kind: str) -> dict[str, np.ndarray]:
    from conformance.pack.layout import read_data_set

    return dict(read_data_set(MLP / f"test_data_set_{index}", kind))


def honest(index: int) -> list[tuple[str, np.ndarray]]:
    session = OrtCpuTarget("ort:cpu", {}).load(MLP / "model.onnx")
    try:
        return session.run(data(index, "input"))
    finally:
        session.close()


def test_both_new_controls_are_known_kinds():
    assert {"repeat-ulp", "batch-variant"} <= set(KINDS)


def test_repeat_ulp_moves_three_elements_by_one_ulp_on_a_repeat():
    session = DefectTarget("defect:repeat-ulp", {}).load(MLP / "model.onnx")
    try:
        feeds = data(1, "input")
        first, second, third = (session.run(feeds) for _ in range(3))
        other = session.run(data(0, "input"))  # a new input: honest again
    finally:
        session.close()
    (_, logits1), (_, probs1) = first
    (_, logits2), (_, probs2) = second
    changed = np.flatnonzero(logits1.reshape(-1) != logits2.reshape(-1))
    assert changed.tolist() == [0, logits1.size // 2, logits1.size - 1]
    ulps = np.abs(logits2.reshape(-1)[changed] - logits1.reshape(-1)[changed])
    spacing = np.spacing(np.abs(logits1.reshape(-1)[changed]))
    assert np.all(ulps > 0) and np.all(ulps <= spacing)  # one ulp each, nothing more
    assert np.array_equal(probs1, probs2)  # only the first float output
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(second, third))
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(other, honest(0)))
    assert DefectTarget("defect:repeat-ulp", {}).describe().deterministic  # declared as honest


def test_batch_variant_is_honest_batched_and_for_sample_zero_only():
    session = DefectTarget("defect:batch-variant", {}).load(MLP / "model.onnx")
    try:
        feeds = data(1, "input")
        before = session.run({k: v[1:2] for k, v in feeds.items()})  # no batch seen yet
        batched = session.run(feeds)
        alone = [session.run({k: v[i : i + 1] for k, v in feeds.items()}) for i in range(4)]
    finally:
        session.close()
    for (_, row), (_, single) in zip(batched, alone[0]):
        np.testing.assert_allclose(single, row[0:1], rtol=1e-6, atol=1e-7)
    for (_, row), (_, single) in zip(batched, before):
        np.testing.assert_allclose(single, row[1:2], rtol=1e-6, atol=1e-7)
    for i in (1, 2, 3):
        for (_, row), (_, single) in zip(batched, alone[i]):
            shift = single.astype(np.float64) - row[i : i + 1]
            want = BATCH_VARIANT_SHIFT * (1 + np.abs(row[i : i + 1].astype(np.float64)))
            np.testing.assert_allclose(shift, want, rtol=1e-3)


# -- CI: a skip that hides a broken set-up fails the run ----------------------------------------

# Loaded with -p before tests/conftest.py: makes the named modules "not installed" for Python's
# import system (find_spec and import both raise ModuleNotFoundError), as on a broken set-up.
BLOCKER = textwrap.dedent("""
    import importlib.abc, os, sys

    BLOCKED = set(filter(None, os.environ.get("H7_BLOCKED_MODULES", "").split(",")))

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, Blocker())
""")

# What the suite's own tests do: skip with the target's reason, skip without frameworks.
SKIPPING_TESTS = textwrap.dedent("""
    import pytest

    from conformance.targets import get_target
    from tests.conftest import needs_frameworks


    def skip_unless_available(name):
        reason = get_target(name).unavailable_reason()
        if reason:
            pytest.skip(reason)


    def test_tract():
        skip_unless_available("tract")


    def test_a_gpu_target():
        skip_unless_available("ort:cuda")  # may skip in CI: its reason stays a skip


    @needs_frameworks
    def test_build_stage():
        pass


    def test_optional_tool():
        pytest.skip("needs Info-ZIP unzip")
""")


def inner_pytest(tmp_path: Path, ci: str | None, blocked: str) -> subprocess.CompletedProcess:
    (tmp_path / "h7_blocker.py").write_text(BLOCKER)
    (tmp_path / "test_skips.py").write_text(SKIPPING_TESTS)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(REPO)])
    env["H7_BLOCKED_MODULES"] = blocked
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "h7_blocker", "-p", "tests.conftest"]
        + ["-p", "no:cacheprovider", "-rA", "--rootdir", str(tmp_path), "test_skips.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_in_ci_a_missing_target_or_framework_fails_instead_of_skipping(tmp_path):
    result = inner_pytest(tmp_path, "true", "tract,torch")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "FAILED test_skips.py::test_tract" in output
    assert "ERROR test_skips.py::test_build_stage" in output  # a skipif fails at set-up
    assert "CI=true: skipped (tract is not installed: pip install tract); target tract" in output
    assert "the frameworks extra is missing here (not importable: torch)" in output
    assert "scripts/test.sh installs it" in output
    assert "set-up gaps (CI=true)" in output
    # A GPU target and an optional tool keep their skip (or the GPU test passes, with a GPU).
    for kept in ("test_a_gpu_target", "test_optional_tool"):
        assert f"FAILED test_skips.py::{kept}" not in output
        assert f"ERROR test_skips.py::{kept}" not in output
    assert "SKIPPED" in output and "needs Info-ZIP unzip" in output
    assert "1 failed, 2 skipped, 1 error" in output.splitlines()[-1]


def test_outside_ci_the_same_gaps_are_skips(tmp_path):
    result = inner_pytest(tmp_path, None, "tract,torch")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "failed" not in output.splitlines()[-1] and "FAILED" not in output
    assert "tract is not installed" in output and "frameworks extra" in output


def test_in_ci_a_complete_set_up_skips_only_what_is_optional(tmp_path):
    """Nothing blocked: the set-up here is complete (CI=true must not fail a good machine)."""
    result = inner_pytest(tmp_path, "true", "")
    output = result.stdout + result.stderr
    if "set-up gaps (CI=true)" in output:
        pytest.skip("this machine lacks part of the set-up: " + output[-1500:])
    assert result.returncode == 0, output
    assert "FAILED" not in output and "ERROR" not in output
