"""Certifying reduced precision (issue 13 item 5): `certify` at int8 and bf16, the accuracy
checks in the bundle, `verify` recomputing their figures and tier from the recorded predictions
and the pack, tampered accuracy records refused, and the scoreboard's precision columns.

Two real bundles per module, restricted to the pack's model with a task (digits) so they stay
small: ort:cpu at int8 (the pack's QDQ artifacts) and OpenVINO in its bf16 mode at bf16.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from certify_fixtures import RESULTS, edit_json, members, rewrite

from conformance.certify.certify import certify
from conformance.certify.context import load_context
from conformance.certify.interface import CertifyRequest, Reason
from conformance.certify.profiles import load_profiles
from conformance.certify.scoreboard import build_scoreboard, entry_of
from conformance.certify.scoreboard_html import render_scoreboard
from conformance.certify.verify import VerifyOptions, verify_bundle
from conformance.pack import layout

MODEL = "digits"
PROFILES = {
    "profiles": {
        name: {
            "title": f"{name} ({MODEL} only)",
            "summary": "test profile",
            "checks": {
                "models": [MODEL],
                "exporters": "*",
                "precision": name,
                "accuracy_tier": "99",
            },
        }
        for name in ("int8", "bf16")
    }
}
TARGETS = {"int8": "ort:cpu", "bf16": "openvino:cpu:precision=bf16"}
CONTROL = "defect:int8-zero-point"  # a negative control that must not be certified at int8


@pytest.fixture(scope="module")
def context():
    return load_context(profiles=PROFILES)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, context) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("precision")
    system = folder / "system.json"
    system.write_text(
        json.dumps({"submitter": "acme", "system_name": "box", "status": "available"})
    )
    out = {}
    for profile, target in TARGETS.items():
        request = CertifyRequest(target, (profile,), system, folder / f"{profile}.zip")
        out[profile] = certify(request, context).bundle
    control = CertifyRequest(CONTROL, ("int8",), system, folder / "control.zip")
    out[CONTROL] = certify(control, context).bundle
    return out


def accuracy_records(bundle: Path) -> list[dict]:
    results = json.loads(members(bundle)[RESULTS])
    return [c for c in results["checks"] if c.get("kind") == "accuracy"]


def expected_figures(context, record: dict) -> tuple[float, float, float]:
    """Accuracy, relative accuracy and top-1 agreement, straight from the pack's files."""
    model = next(m for m in context.pack.models if m.name == MODEL)
    labels = model.labels(record["data_set"])
    task_output = model.task["output"]
    golden = np.asarray(model.golden[layout.golden_key(record["data_set"], "output", task_output)])
    golden_classes = golden.reshape(golden.shape[0], -1).argmax(axis=-1)
    predictions = np.asarray(record["predictions"])
    accuracy = float((predictions == labels).mean())
    return (
        accuracy,
        accuracy / float(model.task["fp32_accuracy"]),
        float((predictions == golden_classes).mean()),
    )


def test_the_precision_profiles_are_in_the_spec():
    profiles = load_profiles()
    for name in ("fp16", "bf16", "int8"):
        assert profiles[name].checks is not None and profiles[name].checks.precision == name
        assert profiles[name].checks.accuracy_tier == "99"


@pytest.mark.parametrize("profile", list(TARGETS))
def test_accuracy_is_certified_and_recomputed_from_the_pack(profile, bundles, context):
    bundle = bundles[profile]
    records = accuracy_records(bundle)
    model = next(m for m in context.pack.models if m.name == MODEL)
    artifacts = [
        a
        for a in model.artifacts
        if a.runnable and a.precision == ("fp32" if profile == "bf16" else profile)
    ]
    assert len(records) == len(artifacts) > 0 and all(r["precision"] == profile for r in records)
    verification = verify_bundle(bundle, context)
    assert verification.verified, [f.describe() for f in verification.findings]
    by_id = {a.record_id: a for a in verification.accuracy}
    assert set(by_id) == {r["id"] for r in records}
    for record in records:
        accuracy, relative, top1 = expected_figures(context, record)
        got = by_id[record["id"]]
        assert got.accuracy == pytest.approx(accuracy, abs=1e-12)
        assert got.relative == pytest.approx(relative, abs=1e-12)
        assert got.top1_agreement == pytest.approx(top1, abs=1e-12)
        tier = "99.9" if relative >= 0.999 else "99" if relative >= 0.99 else "below 99"
        assert got.tier == tier == record["tier"] and got.passed == (relative >= 0.99)
    outcome = verification.outcome(profile)
    assert outcome is not None and outcome.required == len(
        [c for c in verification.checks if c.normative]
    )
    assert not outcome.certified or all(a.passed for a in verification.accuracy)


def test_an_int8_negative_control_is_not_certified_but_its_bundle_verifies(bundles, context):
    verification = verify_bundle(bundles[CONTROL], context)
    assert verification.verified, [f.describe() for f in verification.findings]
    outcome = verification.outcome("int8")
    assert outcome is not None and not outcome.certified and outcome.passed < outcome.required


def inflate_accuracy(document: dict) -> None:
    record = next(c for c in document["checks"] if c.get("kind") == "accuracy")
    record["accuracy"] = min(1.0, record["accuracy"] + 0.01)


def predictions_changed(document: dict) -> None:
    record = next(c for c in document["checks"] if c.get("kind") == "accuracy")
    record["predictions"] = [(p + 1) % 10 for p in record["predictions"]]  # figures kept


def predictions_cut(document: dict) -> None:
    record = next(c for c in document["checks"] if c.get("kind") == "accuracy")
    record["predictions"] = record["predictions"][:-5]


def relabel_precision(document: dict) -> None:
    record = next(c for c in document["checks"] if c.get("kind") == "accuracy")
    record["precision"] = "fp32"


def claim_passed_on_failing_predictions(document: dict) -> None:
    """Consistent figures of predictions that fail accuracy, with the verdict kept passed."""
    from conformance.results.accuracy import accuracy_figures

    context = load_context(profiles=PROFILES)
    record = next(
        c for c in document["checks"] if c.get("kind") == "accuracy" and c["verdict"] == "passed"
    )
    model = next(m for m in context.pack.models if m.name == MODEL)
    labels = model.labels(record["data_set"])
    wrong = [(int(label) + 1) % 10 for label in labels]
    golden = np.asarray(model.golden[layout.golden_key(record["data_set"], "output", "logits")])
    figures = accuracy_figures(
        wrong, labels, golden.argmax(axis=-1), float(model.task["fp32_accuracy"])
    )
    record.update(figures.as_dict(), predictions=wrong, margin=figures.margin)


TAMPERS = {
    "accuracy inflated": (inflate_accuracy, Reason.ACCURACY_MISMATCH),
    "predictions changed, figures kept": (predictions_changed, Reason.ACCURACY_MISMATCH),
    "predictions cut short": (predictions_cut, Reason.ACCURACY_MISMATCH),
    "precision relabelled": (relabel_precision, Reason.ACCURACY_MISMATCH),
    "passed on failing predictions": (claim_passed_on_failing_predictions, Reason.VERDICT_MISMATCH),
}


@pytest.mark.parametrize("case", list(TAMPERS))
def test_a_tampered_accuracy_record_is_refused(case, bundles, context, tmp_path):
    edit, reason = TAMPERS[case]
    path = rewrite(
        bundles["int8"],
        tmp_path / "tampered.zip",
        {RESULTS: edit_json(bundles["int8"], RESULTS, edit)},
    )
    verification = verify_bundle(path, context)
    assert not verification.verified and verification.exit_code == 1
    assert reason in verification.reasons, [f.describe() for f in verification.findings]


def test_rerun_re_executes_int8_and_accuracy_checks_at_their_precision(bundles, context):
    verification = verify_bundle(bundles["int8"], context, VerifyOptions(rerun=8, seed=3))
    assert verification.verified, [f.describe() for f in verification.findings]
    assert any("checks re-executed on ort:cpu" in n for n in verification.notes), verification.notes


def test_a_target_that_says_it_computes_narrower_cannot_pass(bundles, context, tmp_path):
    """The bf16 bundle's target description edited to say it computes in fp16: its passed
    bf16 checks cannot stand (no silent widening, as the run itself rules)."""
    target = TARGETS["bf16"]

    def narrower(document: dict) -> None:
        document["targets"][target]["options"]["inference_precision"] = "f16"

    changes = {RESULTS: edit_json(bundles["bf16"], RESULTS, narrower)}
    path = rewrite(bundles["bf16"], tmp_path / "narrower.zip", changes)
    verification = verify_bundle(path, context)
    mismatches = [f for f in verification.findings if f.reason == Reason.VERDICT_MISMATCH]
    assert mismatches and all("computes in fp16" in f.message for f in mismatches)


def test_scoreboard_has_a_column_per_precision(bundles, context):
    entries = [entry_of(bundles[p], verify_bundle(bundles[p], context)) for p in TARGETS]
    board = build_scoreboard(entries, context)
    assert board.precisions == ("int8", "bf16")
    int8, bf16 = board.precision_cells
    assert int8[1] is None and bf16[0] is None  # each bundle certifies one precision
    for cell, entry in ((int8[0], entries[0]), (bf16[1], entries[1])):
        assert cell is not None
        tiers = [a.tier for a in entry.verification.accuracy]
        worst = next(t for t in ("below 99", "99", "99.9") if t in tiers)
        assert cell.tier == worst and cell.records == len(tiers)
        assert cell.status == entry.verification.outcomes[0].status
    page = render_scoreboard(board)
    assert "int8: verdict, accuracy tier" in page and "bf16: verdict, accuracy tier" in page
    assert f"tier {int8[0].tier} ({int8[0].records} accuracy records" in page
