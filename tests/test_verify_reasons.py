"""Every reason code the verifier (and the scoreboard) can give is triggered by a test (issue 9 §7).

The cases here are the codes no other test triggered; the last test gathers every case of every
certification test module and fails when a reason code has none, so a new code without a test
fails the suite.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import test_certify
import test_verify_archive
import test_verify_ops
import test_verify_precision
import test_verify_scoreboard
import test_verify_trust
from certify_fixtures import (
    MANIFEST,
    MLP_CORE,
    RESULTS,
    Raw,
    assemble,
    edit_json,
    raw_members,
    rewrite,
    with_member,
)

from conformance.certify import keys
from conformance.certify.certify import certify
from conformance.certify.context import load_context
from conformance.certify.interface import CertifyRequest, Reason
from conformance.certify.safe_zip import Limits
from conformance.certify.verify import VerifyOptions, verify_bundle

SYSTEM = {"submitter": "test vendor", "system_name": "CI box", "status": "available"}


@pytest.fixture(scope="module")
def context():
    return load_context(profiles=MLP_CORE)


@pytest.fixture(scope="module")
def source(tmp_path_factory, context) -> Path:
    folder = tmp_path_factory.mktemp("reasons")
    system = folder / "system.json"
    system.write_text(json.dumps(SYSTEM))
    pair = keys.generate(folder / "vendor.pem")
    request = CertifyRequest("ort:cpu", ("core",), system, folder / "b.zip", pair.private_path)
    return certify(request, context).bundle


def results_edit(edit):
    return lambda s, out: rewrite(s, out, {RESULTS: edit_json(s, RESULTS, edit)})


def member_edit(name, edit):
    return lambda s, out: rewrite(s, out, {name: edit_json(s, name, edit)})


def raw_extra(**fields):
    """The genuine members plus one hand-written member (flags, method as given)."""

    def build(s: Path, out: Path) -> Path:
        raws = raw_members(s)
        member = {"name": b"logs/extra.log", "payload": b"x", "method": 0, "crc": 0x8CDC1683}
        raws.append(Raw(**{**member, "size": 1, **fields}))
        out.write_bytes(assemble(raws))
        return out

    return build


def _duplicate_check(d):
    d["checks"].append(dict(d["checks"][0]))


def _unknown_check(d):
    d["checks"][0]["id"] = "no-such-model-torch-dynamo-batch1-ort:cpu"


def _structure(d):
    check = d["checks"][0]
    check["outputs"] = {f"{name}_renamed": v for name, v in check["outputs"].items()}


def _live(d):
    d["run"]["live"] = {
        "pack_dir": "/tmp/live",
        "live_pack_digest": "0" * 64,
        "goldens_from_digest": d["run"]["pack_digest"],
        "toolchain": {},
        "golden_drift": {},
    }


def _claim_gold(d):
    d["profiles"]["gold"] = dict(d["profiles"]["core"])


# reason -> (how the bundle is built, the verifier's limits)
CASES = {
    Reason.ARCHIVE_TOO_LARGE: (lambda s, out: s, Limits(max_archive_bytes=4096)),
    Reason.TOO_MANY_MEMBERS: (lambda s, out: s, Limits(max_members=3)),
    Reason.BAD_NAME: (lambda s, out: with_member(s, out, "logs/a\x1bb.log", b"x"), None),
    Reason.ENCRYPTED_MEMBER: (raw_extra(flags=0x1), None),
    Reason.UNSUPPORTED_COMPRESSION: (raw_extra(method=zipfile.ZIP_BZIP2), None),
    Reason.MANIFEST_MISMATCH: (
        member_edit("system.json", lambda d: d["captured"]["target"].update(version="0.0")),
        None,
    ),
    Reason.LIVE_RUN: (results_edit(_live), None),
    Reason.UNKNOWN_PROFILE: (member_edit(MANIFEST, _claim_gold), None),
    Reason.DUPLICATE_CHECK: (results_edit(_duplicate_check), None),
    Reason.UNKNOWN_CHECK: (results_edit(_unknown_check), None),
    Reason.STRUCTURE_MISMATCH: (results_edit(_structure), None),
    Reason.TOO_LARGE: (lambda s, out: s, Limits(max_checks=2)),
}


@pytest.mark.parametrize("reason", list(CASES), ids=str)
def test_each_reason_is_triggered(reason, source, context, tmp_path):
    build, limits = CASES[reason]
    path = build(source, tmp_path / "case.zip")
    options = VerifyOptions(limits=limits) if limits else VerifyOptions()
    verification = verify_bundle(path, context, options)
    assert not verification.verified and verification.exit_code == 1
    assert reason in verification.reasons, [f.describe() for f in verification.findings]


# Reasons asserted by a named test elsewhere (a dict of cases could not hold them).
ELSEWHERE = {
    Reason.BENCHMARK_INCONSISTENT: (
        test_certify,
        "test_perf_profile_runs_benchmarks_and_is_judged_on_the_rules",
    ),
    Reason.BENCHMARK_RULES_NOT_MET: (
        test_certify,
        "test_perf_profile_runs_benchmarks_and_is_judged_on_the_rules",
    ),
    Reason.MISSING_BENCHMARK: (
        test_certify,
        "test_perf_profile_runs_benchmarks_and_is_judged_on_the_rules",
    ),
    Reason.RERUN_MISMATCH: (
        test_certify,
        "test_rerun_agrees_with_an_honest_bundle_and_catches_a_fabricated_one",
    ),
    Reason.RERUN_REFUSED: (
        test_verify_trust,
        "test_rerun_never_imports_a_plugin_named_by_a_badly_signed_bundle",
    ),
    Reason.BAD_TARGET: (
        test_verify_trust,
        "test_a_bad_target_in_a_bundle_is_a_verdict_not_a_traceback",
    ),
    Reason.REPORT_MISMATCH: (
        test_verify_trust,
        "test_a_report_that_is_not_the_report_of_the_results_is_rejected",
    ),
    Reason.UNTRUSTED_SIGNER: (
        test_verify_scoreboard,
        "test_trusted_keys_compare_only_bundles_signed_by_their_submitters_key",
    ),
    Reason.DUPLICATE_BUNDLE: (test_verify_scoreboard, "test_a_bundle_counted_twice_is_refused"),
}


def test_every_reason_code_is_triggered_by_a_test():
    covered = {
        *CASES,
        *test_certify.CASES.values(),
        *(reason for _, reason in test_verify_archive.SHAPES.values()),
        *(reason for _, reason in test_verify_ops.TAMPERS.values()),
        *(reason for _, reason in test_verify_precision.TAMPERS.values()),
    }
    for reason, (module, name) in ELSEWHERE.items():
        assert callable(getattr(module, name, None)), (reason, module.__name__, name)
        covered.add(reason)
    untested = sorted(set(Reason) - covered)
    assert untested == [], f"reason codes no test triggers: {untested}"
