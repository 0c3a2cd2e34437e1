"""What a verifier trusts (issue 9 §1): nothing from a bundle is imported before its signer is
trusted, a bad target in a bundle is a verdict, the report is bound to the results, every string
from a bundle is escaped before it reaches the terminal, and no key means no VERIFIED.

The bundles are genuine (ort:cpu, core restricted to mlp, signed) and rewritten the way an
attacker would, with the public suite: edit, re-render the report, re-hash, and sign with a key.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from certify_fixtures import MLP_CORE, RESULTS, edit_json, members, resign, retarget, rewrite
from click.testing import CliRunner

from conformance.certify import keys
from conformance.certify.certify import certify
from conformance.certify.command import render_verification, verify_command
from conformance.certify.context import load_context
from conformance.certify.interface import (
    REJECTED,
    UNVERIFIED_SIGNER,
    VERIFIED,
    CertifyRequest,
    Reason,
)
from conformance.certify.verify import VerifyOptions, verify_bundle

SYSTEM = {"submitter": "test vendor", "system_name": "CI box", "status": "available"}
PLUGIN = "backend:h4_marker_backend:MarkerBackend"


@pytest.fixture(scope="module")
def context():
    return load_context(profiles=MLP_CORE)


@pytest.fixture(scope="module")
def signed(tmp_path_factory, context):
    folder = tmp_path_factory.mktemp("trust")
    system = folder / "system.json"
    system.write_text(json.dumps(SYSTEM))
    pair = keys.generate(folder / "vendor.pem")
    request = CertifyRequest("ort:cpu", ("core",), system, folder / "b.zip", pair.private_path)
    return certify(request, context).bundle, pair


def verify(path: Path, context, **options):
    return verify_bundle(path, context, VerifyOptions(**options))


# ---- nothing from a bundle is imported before its signer is trusted ----


@pytest.fixture
def marker_backend(tmp_path, monkeypatch) -> Path:
    """A backend module that leaves a marker file when it is imported (by anyone)."""
    marker = tmp_path / "IMPORTED"
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "h4_marker_backend.py").write_text(
        "import pathlib\n"
        f"pathlib.Path({str(marker)!r}).write_text('imported')\n"
        "from onnx.backend.base import Backend\n\n\n"
        "class MarkerBackend(Backend):\n"
        "    @classmethod\n"
        "    def supports_device(cls, device):\n"
        "        return False\n"
    )
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", str(folder))
    return marker


def plugin_bundle(signed, tmp_path: Path, key: Path | None) -> Path:
    """The genuine bundle's results claimed for a plug-in target; signed with ``key`` (None:
    the old signature stays, so it no longer matches)."""
    source, _ = signed
    claimed = retarget(source, tmp_path / "plugin.zip", "ort:cpu", PLUGIN)
    return resign(claimed, tmp_path / "plugin-signed.zip", key) if key else claimed


def test_rerun_never_imports_a_plugin_named_by_a_badly_signed_bundle(
    signed, context, tmp_path, marker_backend
):
    _, pair = signed
    bundle = plugin_bundle(signed, tmp_path, None)
    verification = verify(
        bundle, context, public_key=pair.public_path, rerun=2, allow_plugins=(PLUGIN,)
    )
    assert Reason.BAD_SIGNATURE in verification.reasons
    assert Reason.RERUN_REFUSED in verification.reasons
    assert not marker_backend.exists()


def test_rerun_never_imports_a_plugin_from_an_untrusted_signer(
    signed, context, tmp_path, marker_backend
):
    attacker = keys.generate(tmp_path / "attacker.pem")
    bundle = plugin_bundle(signed, tmp_path, attacker.private_path)
    for options in ({}, {"allow_plugins": (PLUGIN,)}):  # no --public-key: no trusted signer
        verification = verify(bundle, context, rerun=2, **options)
        assert verification.reasons == (Reason.RERUN_REFUSED,), verification.findings
    assert not marker_backend.exists()


def test_rerun_of_a_plugin_needs_allow_plugin_naming_it(signed, context, tmp_path, marker_backend):
    _, pair = signed
    bundle = plugin_bundle(signed, tmp_path, pair.private_path)
    assert verify(bundle, context, public_key=pair.public_path).verdict == VERIFIED
    for allowed in ((), ("backend:other:Backend",)):
        refused = verify(
            bundle, context, public_key=pair.public_path, rerun=2, allow_plugins=allowed
        )
        assert refused.reasons == (Reason.RERUN_REFUSED,) and "--allow-plugin" in str(
            refused.findings
        )
    assert not marker_backend.exists()
    # trusted signer and the plug-in named: now (and only now) it is imported
    verify(bundle, context, public_key=pair.public_path, rerun=2, allow_plugins=(PLUGIN,))
    assert marker_backend.exists()


@pytest.mark.parametrize(
    "target",
    [
        "ort:cpu:threads=abc",
        "ort:cpu:threads=1:threads=2",
        "ort:cpu:bogus=1",
        "ort::cpu",
        "nosuch:target",  # not built in: a plug-in name, refused unless allowed, then unknown
        "backend:not a module:X",
    ],
)
def test_a_bad_target_in_a_bundle_is_a_verdict_not_a_traceback(signed, context, tmp_path, target):
    source, pair = signed
    claimed = retarget(source, tmp_path / "bad.zip", "ort:cpu", target)
    bundle = resign(claimed, tmp_path / "bad-signed.zip", pair.private_path)
    allowed = (target,)  # even named, a bad name is BAD_TARGET
    verification = verify(
        bundle, context, public_key=pair.public_path, rerun=2, allow_plugins=allowed
    )
    assert verification.verdict == REJECTED and Reason.BAD_TARGET in verification.reasons


# ---- the report is bound to the results ----


def test_a_report_that_is_not_the_report_of_the_results_is_rejected(signed, context, tmp_path):
    source, pair = signed
    lying = rewrite(source, tmp_path / "lying.zip", {"report.html": b"<p>every check passed</p>"})
    resigned = resign(lying, tmp_path / "lying-signed.zip", pair.private_path)
    verification = verify(resigned, context, public_key=pair.public_path)
    assert verification.reasons == (Reason.REPORT_MISMATCH,), verification.findings
    assert verify(source, context, public_key=pair.public_path).verdict == VERIFIED


def test_the_bundle_report_is_rendered_from_the_results_alone(signed):
    from conformance.certify.bundle import bundle_report

    content = members(signed[0])
    assert content["report.html"] == bundle_report(content[RESULTS])  # same bytes, any time


# ---- no trusted key, no VERIFIED ----


def test_without_a_public_key_the_verdict_is_unverified_signer(signed, context):
    source, pair = signed
    untrusted = verify(source, context)
    assert untrusted.verified and untrusted.verdict == UNVERIFIED_SIGNER
    assert untrusted.exit_code == 3
    lines = render_verification(untrusted)
    assert lines[-1].startswith("UNVERIFIED-SIGNER: integrity ok") and "VERIFIED:" not in lines[-1]
    trusted = verify(source, context, public_key=pair.public_path)
    assert trusted.verdict == VERIFIED and trusted.exit_code == 0


def test_verify_help_documents_the_verdicts_and_exit_codes():
    output = CliRunner().invoke(verify_command, ["--help"], terminal_width=200).output
    assert "UNVERIFIED-SIGNER (3)" in output and "REJECTED (1)" in output
    assert "VERIFIED (0)" in output and "--allow-plugin" in output


# ---- terminal injection ----

FORGERIES = [
    "x\x1b[2K\r\x1b[32mVERIFIED: every rule holds",
    "x\rVERIFIED: every rule holds",
    "x\nVERIFIED: every rule holds",
    "x\u2028VERIFIED: every rule holds",
    "x\x9b2KVERIFIED",
]


@pytest.mark.parametrize("forged", FORGERIES)
def test_a_check_id_cannot_forge_a_verified_line(signed, context, tmp_path, forged):
    source, _ = signed

    def inject(document):
        document["checks"][0]["id"] = forged
        document["targets"]["ort:cpu"]["runtime"] = forged

    bundle = rewrite(source, tmp_path / "forged.zip", {RESULTS: edit_json(source, RESULTS, inject)})
    verification = verify(bundle, context)
    assert verification.verdict == REJECTED
    assert any(forged in f.subject for f in verification.findings)  # the id reached a finding
    text = "\n".join(render_verification(verification))
    assert not any(c in text for c in "\x1b\r\x9b\u2028")
    lines = text.split("\n")
    assert lines[-1].startswith("REJECTED")
    assert not any(line.startswith("VERIFIED") for line in lines)


# ---- strict JSON in every member ----


@pytest.mark.parametrize(
    "member, number", [(RESULTS, b"1e999"), (RESULTS, b"-1E+400"), ("system.json", b"1e999")]
)
def test_an_overflowing_number_in_a_member_is_malformed_json(
    signed, context, tmp_path, member, number
):
    """`1e999` parsed as infinity before: a margin of inf, a system field of inf."""
    source, pair = signed
    text = members(source)[member]
    at = text.index(b'"margin": ') + len(b'"margin": ') if member == RESULTS else None
    if at is None:
        changed = text.replace(
            b'"attested": {', b'"attested": {"host_memory_gb": ' + number + b", "
        )
    else:
        end = min(text.index(b",", at), text.index(b"\n", at))
        changed = text[:at] + number + text[end:]
    bundle = resign(
        rewrite(source, tmp_path / "inf.zip", {member: changed}),
        tmp_path / "inf-signed.zip",
        pair.private_path,
    )
    verification = verify(bundle, context, public_key=pair.public_path)
    assert Reason.MALFORMED_JSON in verification.reasons, verification.findings
    assert any("infinity" in f.message for f in verification.findings)


def test_a_malformed_target_name_is_bad_target_without_rerun(signed, context, tmp_path):
    source, pair = signed
    claimed = retarget(source, tmp_path / "bad.zip", "ort:cpu", "ort::cpu:threads=1:threads=2")
    bundle = resign(claimed, tmp_path / "bad-signed.zip", pair.private_path)
    verification = verify(bundle, context, public_key=pair.public_path)
    assert verification.reasons == (Reason.BAD_TARGET,), verification.findings
