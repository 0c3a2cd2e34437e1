"""Certification: profiles, bundles, the offline verifier against tampered and hostile bundles,
the scoreboard.

Two real bundles are made once per module (ort:cpu signed, the defect:noise negative control through
the CLI) and every tamper case rewrites a copy of one the way an attacker would, re-hashing the
manifest so that the deeper rules must catch it. Each case must be rejected with its own reason
code, and the CLI's exit code must agree with its summary line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from certify_fixtures import (
    HOSTILE,
    MANIFEST,
    PERF_DEV_PROFILES,
    RESULTS,
    duplicate_name,
    edit_json,
    first_check,
    lying_size,
    members,
    overlapping,
    retarget,
    rewrite,
    unix_member,
    with_member,
)
from click.testing import CliRunner
from test_report import CHROMIUM, OpenedReport, browser  # noqa: F401 - the browser fixture

from conformance.certify import keys
from conformance.certify.certify import certify
from conformance.certify.command import (
    certify_command,
    keygen_command,
    scoreboard_command,
    verify_command,
)
from conformance.certify.context import load_context
from conformance.certify.interface import CertifyRequest, Reason
from conformance.certify.profiles import load_profiles, required_checks
from conformance.certify.safe_zip import Limits
from conformance.certify.scoreboard import build_scoreboard, entry_of
from conformance.certify.verify import VerifyOptions, verify_bundle
from conformance.pack.hashing import verify_pack
from conformance.spec import PACK_DIR, load_json

SYSTEM = {"submitter": "test vendor", "system_name": "CI box", "status": "available"}
CLI = "from conformance.certify.command import verify_command; verify_command()"


@dataclass(frozen=True)
class Bundles:
    honest: Path  # ort:cpu, core, signed
    noise: Path  # defect:noise, core, unsigned, made through the CLI
    public_key: Path
    other_key: Path
    noise_cli: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def context():
    return load_context()


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, context) -> Bundles:
    folder = tmp_path_factory.mktemp("certify")
    system = folder / "system.json"
    system.write_text(json.dumps(SYSTEM))
    pair = keys.generate(folder / "vendor.pem")
    other = keys.generate(folder / "other.pem")
    honest = certify(
        CertifyRequest("ort:cpu", ("core",), system, folder / "ort.zip", pair.private_path), context
    ).bundle
    noise_cli = subprocess.run(
        [
            sys.executable,
            "-c",
            "from conformance.certify.command import certify_command; certify_command()",
            "--target",
            "defect:noise",
            "--profile",
            "core",
            "--system",
            str(system),
            "--out",
            str(folder / "noise.zip"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return Bundles(honest, folder / "noise.zip", pair.public_path, other.public_path, noise_cli)


def verify(path: Path, context, **options):
    return verify_bundle(path, context, VerifyOptions(**options))


def cli_verify(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(verify_command, [str(a) for a in args])
    return result.exit_code, result.output


# ---- the spec data ----


def test_shipped_pack_matches_its_pin():
    spec = load_json("spec.json")
    verification = verify_pack(PACK_DIR)
    assert verification.ok
    assert spec["pinned_packs"][spec["spec_version"]] == verification.digest


def test_core_profile_requires_every_model_artifact_and_data_set(context):
    core = load_profiles()["core"]
    required = required_checks(context.pack, core, "ort:cpu")
    # core is fp32: the fp32 artifacts (not the reduced-precision ones derived from them), each
    # data set, and one accuracy check per artifact of a model with a task (digits)
    expected = sum(
        (len(m.data_sets) + (1 if m.task else 0))
        * len([a for a in m.artifacts if a.precision == "fp32"])
        for m in context.pack.models
    )
    assert len(required) == expected
    assert {r.model.name for r in required} == {m.name for m in context.pack.models}
    exporter_findings = {r.check_id for r in required if not r.normative}
    # the exporter findings recorded in pack 3858e13d (SPEC §5): tf2onnx's invalid ArgMax graph,
    # tf2onnx's GRU Loop, TorchScript's baked transformer sequence length
    assert exporter_findings == {
        *(f"detection_head-tf2onnx-{s}-ort:cpu" for s in ("batch1", "batch4")),
        "detection_head-tf2onnx-batch2-large_exp_and_logits-ort:cpu",
        *(f"gru-tf2onnx-{s}-ort:cpu" for s in ("batch1-seq12", "batch4-seq12", "batch4-seq20")),
        "gru-tf2onnx-batch1-seq200-long_sequence-ort:cpu",
        "gru-tf2onnx-batch2-seq12-saturated_gates-ort:cpu",
        "transformer_encoder-torch-script-batch4-seq20-ort:cpu",
        "transformer_encoder-torch-script-batch1-seq128-long_sequence-ort:cpu",
    }
    assert load_profiles()["perf"].benchmarks.mode == "cert"


# ---- honest bundles ----


def test_honest_signed_bundle_verifies_and_is_certified(bundles, context):
    verification = verify(bundles.honest, context, public_key=bundles.public_key)
    assert verification.verified, [f.describe() for f in verification.findings]
    normative = len(
        [
            r
            for r in required_checks(context.pack, load_profiles()["core"], "ort:cpu")
            if r.normative
        ]
    )
    assert (
        verification.outcome("core").certified
        and verification.outcome("core").required == normative
    )
    assert verification.signature.valid and verification.signature.trusted
    assert set(members(bundles.honest)) == {
        MANIFEST,
        "signature.json",
        RESULTS,
        "report.html",
        "environment.json",
        "system.json",
        "logs/certify.log",
    }
    code, output = cli_verify(bundles.honest, "--public-key", bundles.public_key)
    assert code == 0 and output.strip().splitlines()[-1].startswith("VERIFIED")


def test_negative_control_fails_certification_but_its_bundle_verifies(bundles, context):
    assert bundles.noise_cli.returncode == 1, bundles.noise_cli.stderr[-2000:]
    assert "NOT CERTIFIED: defect:noise" in bundles.noise_cli.stdout
    verification = verify(bundles.noise, context)
    assert verification.verified  # an honest record of a failure
    core = verification.outcome("core")
    assert not core.certified and "runtime's account" in core.reasons[0]
    # relative noise of 1e-3 moves no class of digits: only its accuracy checks pass (the
    # element-wise criterion is the one meant to catch it, and every values check fails)
    passing = [c for c in verification.checks if c.passed]
    assert core.passed == len(passing) and all(c.data_set_label == "accuracy" for c in passing)


def test_rerun_agrees_with_an_honest_bundle_and_catches_a_fabricated_one(
    bundles, context, tmp_path
):
    verification = verify(bundles.honest, context, rerun=3, seed=7)
    assert verification.verified and any("3 agree" in n for n in verification.notes)
    # defect:noise's failures claimed as ort:cpu's, consistently everywhere: offline rules all hold
    fabricated = retarget(bundles.noise, tmp_path / "fabricated.zip", "defect:noise", "ort:cpu")
    assert verify(fabricated, context).verified
    rerun = verify(fabricated, context, rerun=3, seed=7)
    assert rerun.reasons == (Reason.RERUN_MISMATCH,)


def test_verify_rerun_on_the_cli(bundles):
    """`verify --rerun` as documented: re-executes a seeded sample of a built-in target here."""
    key = ("--public-key", bundles.public_key)
    code, output = cli_verify(bundles.honest, *key, "--rerun", "--sample", "2", "--seed", "5")
    assert code == 0 and "2 checks re-executed on ort:cpu here (seed 5)" in output, output
    assert output.strip().splitlines()[-1].startswith("VERIFIED")


def test_perf_profile_runs_benchmarks_and_is_judged_on_the_rules(tmp_path):
    context = load_context(profiles=PERF_DEV_PROFILES)
    system = tmp_path / "system.json"
    system.write_text(json.dumps(SYSTEM))
    request = CertifyRequest("ort:cpu", ("core", "perf-dev"), system, tmp_path / "perf.zip")
    outcome = certify(request, context)
    assert [o.profile for o in outcome.outcomes] == ["core", "perf-dev"] and outcome.certified, (
        outcome.outcomes
    )
    assert verify(outcome.bundle, context).verified

    def first_single_stream(edit):
        def change(document):
            edit(next(b for b in document["benchmarks"] if b["scenario"] == "SingleStream"))

        return {RESULTS: edit_json(outcome.bundle, RESULTS, change)}

    cases = {
        Reason.BENCHMARK_INCONSISTENT: first_single_stream(
            lambda b: b["valid"].update({"p99.9": not b["valid"]["p99.9"]})
        ),
        Reason.BENCHMARK_RULES_NOT_MET: first_single_stream(
            lambda b: b["rules"].update({"threads": 64})
        ),
        Reason.MISSING_BENCHMARK: {
            RESULTS: edit_json(
                outcome.bundle,
                RESULTS,
                lambda d: d.update(
                    benchmarks=[b for b in d["benchmarks"] if b["scenario"] != "Offline"]
                ),
            )
        },
    }
    for reason, changes in cases.items():
        verification = verify(rewrite(outcome.bundle, tmp_path / f"{reason}.zip", changes), context)
        assert reason in verification.reasons, (
            reason,
            [f.describe() for f in verification.findings],
        )


# ---- tampered and hostile bundles: each rejected with its own reason ----


def _passed_output(document):
    check = first_check(document, "passed")
    output = next(iter(check["outputs"].values()))
    output["max_abs"] *= 100


def _swap_model(document):
    """mlp's figures replaced by cnn's (same output names, same exporter and data set)."""
    by_id = {c["id"]: c for c in document["checks"]}
    mlp, cnn = by_id["mlp-torch-dynamo-batch1-ort:cpu"], by_id["cnn-torch-dynamo-batch1-ort:cpu"]
    mlp.update({k: cnn[k] for k in ("outputs", "margin")})


def _flip(document):
    check = first_check(document, "failed")
    check.update(verdict="passed", problems=[], attributed_to=None)


def _respec(version):
    def edit(document):
        document.get("run", document)["spec_version"] = version

    return edit


def _repack(document):
    document.get("run", document)["pack_digest"] = "0" * 64


# name -> (which bundle, which member, how it is edited); the manifest is re-hashed after
JSON_EDITS = {
    "edit-figure": ("honest", RESULTS, _passed_output),
    "flip-verdict": ("noise", RESULTS, _flip),
    "drop-check": ("honest", RESULTS, lambda d: d["checks"].pop(5) and None),
    "swap-model": ("honest", RESULTS, _swap_model),
    "loosen-tolerance": (
        "noise",
        RESULTS,
        lambda d: first_check(d, "failed")["tolerance"].update(atol=1.0),
    ),
    "blame-exporter": (
        "noise",
        RESULTS,
        lambda d: first_check(d, "failed").update(attributed_to="exporter"),
    ),
    "claim-certified": (
        "noise",
        MANIFEST,
        lambda d: d["profiles"]["core"].update(status="certified", reasons=[]),
    ),
    "schema-invalid": ("honest", RESULTS, lambda d: d["checks"][0].pop("verdict") and None),
    "incomplete-run": ("honest", RESULTS, lambda d: d["run"].update(status="interrupted")),
    "replay-spec-version": ("honest", (MANIFEST, RESULTS), _respec("0.2.0")),
    "change-pack-digest": ("honest", (MANIFEST, RESULTS), _repack),
}


def archive_builders(b: Bundles, out: Path) -> dict:
    honest, noise = b.honest, b.noise
    return {
        "swap-results-file": lambda: rewrite(honest, out, {RESULTS: members(noise)[RESULTS]}),
        "edit-without-rehash": lambda: rewrite(
            honest, out, {"report.html": b"<p>all good</p>"}, rehashed=False
        ),
        "bad-signature": lambda: rewrite(
            honest, out, {RESULTS: edit_json(honest, RESULTS, _passed_output)}
        ),
        "unexpected-member": lambda: with_member(honest, out, "run_me.py", b"import os"),
        "missing-member": lambda: rewrite(honest, out, {"report.html": None}, rehashed=False),
        "malformed-json": lambda: rewrite(honest, out, {RESULTS: b'{"checks": ['}),
        "duplicate-json-key": lambda: rewrite(
            honest, out, {"system.json": b'{"attested": {}, "attested": {}}'}
        ),
        "path-traversal": lambda: with_member(honest, out, "../../evil.txt", b"x"),
        "absolute-path": lambda: with_member(honest, out, "/tmp/evil.txt", b"x"),
        "symlink": lambda: with_member(
            honest, out, unix_member("logs/link", 0o120777), b"/etc/passwd"
        ),
        "special-file": lambda: with_member(honest, out, unix_member("logs/fifo", 0o010644), b""),
        "zip-bomb": lambda: with_member(honest, out, "logs/bomb.log", bytes(24 << 20)),
        "duplicate-name": lambda: duplicate_name(honest, out),
        "truncated": lambda: (
            out.write_bytes(honest.read_bytes()[: honest.stat().st_size // 2]) and out
        ),
        "not-a-zip": lambda: out.write_bytes(b"#!/bin/sh\nrm -rf /\n") and out,
        "overlapping-members": lambda: overlapping(out),
        "lying-size-header": lambda: lying_size(honest, out),
    }


def tamper(name: str, b: Bundles, tmp: Path) -> tuple[Path, dict]:
    """The tampered bundle of one case, and the verifier options it is checked with."""
    out = tmp / f"{name}.zip"
    if name in JSON_EDITS:
        which, member_names, edit = JSON_EDITS[name]
        source = getattr(b, which)
        names = member_names if isinstance(member_names, tuple) else (member_names,)
        return rewrite(source, out, {m: edit_json(source, m, edit) for m in names}), {}
    builders = archive_builders(b, out)
    if name in builders:
        return builders[name](), {"public_key": b.public_key} if name == "bad-signature" else {}
    options = {
        "wrong-key": (b.honest, {"public_key": b.other_key}),
        "unsigned-with-key": (b.noise, {"public_key": b.public_key}),
        "oversized-member": (b.honest, {"limits": Limits(max_member_bytes=64 * 1024)}),
    }
    return options[name]


CASES = {
    "edit-figure": Reason.FIGURES_INCONSISTENT,
    "flip-verdict": Reason.VERDICT_MISMATCH,
    "drop-check": Reason.MISSING_CHECK,
    "swap-model": Reason.GOLDEN_MISMATCH,
    "swap-results-file": Reason.TARGET_MISMATCH,
    "edit-without-rehash": Reason.HASH_MISMATCH,
    "change-pack-digest": Reason.PACK_DIGEST_NOT_PINNED,
    "replay-spec-version": Reason.SPEC_VERSION_MISMATCH,
    "bad-signature": Reason.BAD_SIGNATURE,
    "wrong-key": Reason.BAD_SIGNATURE,
    "unsigned-with-key": Reason.UNSIGNED,
    "loosen-tolerance": Reason.TOLERANCE_MISMATCH,
    "blame-exporter": Reason.ATTRIBUTION_MISMATCH,
    "claim-certified": Reason.CLAIM_MISMATCH,
    "schema-invalid": Reason.SCHEMA_INVALID,
    "incomplete-run": Reason.RUN_INCOMPLETE,
    "unexpected-member": Reason.UNEXPECTED_MEMBER,
    "missing-member": Reason.MISSING_MEMBER,
    "malformed-json": Reason.MALFORMED_JSON,
    "duplicate-json-key": Reason.MALFORMED_JSON,
    "path-traversal": Reason.PATH_TRAVERSAL,
    "absolute-path": Reason.ABSOLUTE_PATH,
    "symlink": Reason.SYMLINK,
    "special-file": Reason.SPECIAL_FILE,
    "zip-bomb": Reason.ZIP_BOMB,
    "oversized-member": Reason.ZIP_BOMB,
    "duplicate-name": Reason.DUPLICATE_NAME,
    "truncated": Reason.TRUNCATED,
    "not-a-zip": Reason.NOT_A_ZIP,
    "overlapping-members": Reason.OVERLAPPING_MEMBERS,
    "lying-size-header": Reason.CORRUPT_MEMBER,
}


@pytest.mark.parametrize("case", list(CASES))
def test_tampered_bundle_is_rejected_with_its_reason(case, bundles, context, tmp_path):
    path, options = tamper(case, bundles, tmp_path)
    verification = verify(path, context, **options)
    assert not verification.verified and verification.exit_code == 1
    assert CASES[case] in verification.reasons, [f.describe() for f in verification.findings]
    args = [path] + [
        x for k, v in options.items() if k == "public_key" for x in ("--public-key", v)
    ]
    if "limits" not in options:  # the CLI uses the default limits
        code, output = cli_verify(*args)
        summary = output.strip().splitlines()[-1]
        assert code == 1 and summary.startswith("REJECTED") and str(CASES[case]) in summary, output[
            -3000:
        ]


def test_nothing_is_written_outside_and_nothing_runs(bundles, context, tmp_path):
    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    path, _ = tamper("path-traversal", bundles, inner)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    verify(path, context)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize(
    "case", ["edit-without-rehash", "zip-bomb", "truncated", "replay-spec-version"]
)
def test_cli_exit_code_agrees_with_its_summary_in_a_subprocess(case, bundles, tmp_path):
    path, _ = tamper(case, bundles, tmp_path)
    key = ["--public-key", str(bundles.public_key)]
    # issue 9: without a trusted key an intact bundle is UNVERIFIED-SIGNER (exit 3), not VERIFIED
    for bundle, code, word, extra in (
        (bundles.honest, 0, "VERIFIED", key),
        (bundles.honest, 3, "UNVERIFIED-SIGNER", []),
        (path, 1, "REJECTED", []),
    ):
        result = subprocess.run(
            [sys.executable, "-c", CLI, str(bundle), "--json", *extra],
            capture_output=True,
            text=True,
            check=False,
        )
        summary = json.loads(result.stdout)
        assert result.returncode == code == summary["exit_code"] and summary["verified"] == (
            word == "VERIFIED"
        )
        assert summary["verdict"] == word
        text = subprocess.run(
            [sys.executable, "-c", CLI, str(bundle), *extra],
            capture_output=True,
            text=True,
            check=False,
        )
        assert text.returncode == code and text.stdout.strip().splitlines()[-1].startswith(word)


def test_usage_errors_exit_2(bundles, tmp_path):
    system = tmp_path / "system.json"
    system.write_text(json.dumps(SYSTEM))
    bad_system = tmp_path / "bad.json"
    bad_system.write_text(json.dumps({"system_name": "no submitter"}))
    out = str(tmp_path / "b.zip")
    runs = [
        (
            certify_command,
            ["--target", "ort:cpu", "--profile", "gold", "--system", system, "--out", out],
        ),
        (certify_command, ["--target", "ort:cuda", "--system", system, "--out", out]),
        (certify_command, ["--target", "ort:cpu", "--system", bad_system, "--out", out]),
        (
            certify_command,
            ["--target", "ort:cpu", "--system", system, "--key", system, "--out", out],
        ),
        (verify_command, [tmp_path / "missing.zip"]),
        (verify_command, [bundles.honest, "--public-key", system]),
        (keygen_command, ["--out", bundles.public_key.with_suffix(".pem")]),
    ]
    for command, args in runs:
        result = CliRunner().invoke(command, [str(a) for a in args])
        assert result.exit_code == 2 and result.output.startswith("error:"), (args, result.output)
        assert not Path(out).exists()


def test_cli_registers_the_certification_commands():
    from conformance.cli import main

    assert {"certify", "verify", "scoreboard", "keygen"} <= set(main.commands)


# ---- the scoreboard ----


@pytest.fixture(scope="module")
def scoreboard(bundles, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scoreboard")
    hostile = rewrite(
        bundles.honest,
        folder / "hostile.zip",
        {
            "signature.json": None,
            "system.json": edit_json(
                bundles.honest,
                "system.json",
                lambda d: d["attested"].update(system_name=HOSTILE, submitter=HOSTILE),
            ),
            # another run (the same results twice would be one bundle counted twice)
            RESULTS: edit_json(
                bundles.honest,
                RESULTS,
                lambda d: d["run"].update(started_at="2020-01-01T00:00:00+00:00"),
            ),
        },
    )
    replayed, _ = tamper("replay-spec-version", bundles, folder)
    out = folder / "scoreboard.html"
    result = CliRunner().invoke(
        scoreboard_command,
        [str(p) for p in (bundles.honest, bundles.noise, hostile, replayed)] + ["-o", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "3 compared, 1 not compared" in result.output
    return out


def test_scoreboard_compares_verified_bundles_only(bundles, context):
    entries = [entry_of(p, verify(p, context)) for p in (bundles.honest, bundles.noise)]
    board = build_scoreboard(entries, context)
    assert [e.target for e in board.compared] == ["ort:cpu", "defect:noise"] and board.profiles == (
        "core",
    )
    normative = [
        r for r in required_checks(context.pack, load_profiles()["core"], "ort:cpu") if r.normative
    ]
    noise_passing = [c for c in entries[1].verification.checks if c.passed and c.normative]
    assert all(c.data_set_label == "accuracy" for c in noise_passing)
    assert board.interop_total.passed == len(noise_passing) and board.interop_total.total == len(
        normative
    )  # defect:noise passes no values check (only accuracy checks, which noise does not move)
    mlp = next(r for r in board.families if r.model == "mlp")
    mlp_checks = sum(1 for r in normative if r.model.name == "mlp")  # 3 exporters x 3 data sets
    assert (mlp.cells[0].passed, mlp.cells[0].total, mlp.cells[1].passed) == (mlp_checks,) * 2 + (
        0,
    )


def test_scoreboard_opens_offline_in_chromium(browser, scoreboard, bundles):  # noqa: F811
    page_view = OpenedReport(browser, scoreboard)
    page = page_view.page
    targets = page.inner_text("#targets")
    assert "ort:cpu" in targets and "defect:noise" in targets and "not certified" in targets
    assert (
        HOSTILE in targets
        and page.locator("img").count() == 0
        and page.locator("script").count() == 0
    )
    assert "SPEC_VERSION_MISMATCH" in page.inner_text("#excluded")
    pack = load_context().pack
    normative = [
        r for r in required_checks(pack, load_profiles()["core"], "ort:cpu") if r.normative
    ]
    # defect:noise passes only accuracy checks, which ort:cpu passes too: those pass everywhere
    noise = verify(bundles.noise, load_context())
    everywhere = sum(1 for c in noise.checks if c.passed and c.normative)
    assert f"{everywhere} of {len(normative)}" in page.inner_text("#interop-headline")
    assert page.locator("table.rates tbody tr").count() == len(pack.models)
    page_view.assert_quiet()
