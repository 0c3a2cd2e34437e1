"""Precision profiles (issue 13): what each profile plans, how a reduced precision is judged
(element-wise at its tolerance and by task accuracy), and that each precision's negative
controls are caught by the criterion meant to catch them.

Real parts only: the shipped pack's digits classifier (load_digits, 539 held-out images) and its
derived artifacts, run on ORT CPU and OpenVINO in the isolated child processes of a run.
"""

from __future__ import annotations

import numpy as np
import pytest

from conformance.isolation import IsolatedTarget
from conformance.pack.load import Pack
from conformance.results.accuracy import ACCURACY, accuracy_figures, predictions_of, tier_of
from conformance.results.records import FAILED, PASSED, CheckRecord
from conformance.run.check import run_check
from conformance.run.plan import (
    ARTIFACT_PRECISION,
    CheckPlan,
    check_precision_error,
    check_profiles,
    plan_checks,
)
from conformance.spec import PACK_DIR
from conformance.targets import get_target

PACK = Pack(PACK_DIR)
TASK_MODEL = "digits"
BASE = "torch-script"  # the fp32 artifact digits' reduced-precision artifacts derive from
BF16 = "openvino:cpu:precision=bf16"


def digits() -> object:
    return PACK.model(TASK_MODEL)


def plans_of(precision: str, target: str, exporter: str, models: tuple[str, ...] = (TASK_MODEL,)):
    return [
        p
        for p in plan_checks(PACK, [target], models, (), precision)
        if p.artifact.exporter == exporter
    ]


def run_plans(plans: list[CheckPlan], options: dict | None = None) -> list[CheckRecord]:
    """Each plan's check in one isolated child of its target, as a run does it."""
    runners: dict[str, IsolatedTarget] = {}
    try:
        records = []
        for plan in plans:
            runner = runners.setdefault(plan.target, IsolatedTarget(plan.target, 120.0))
            records.append(run_check(runner, plan, True, options))
        return records
    finally:
        for runner in runners.values():
            runner.close()


def by_kind(records: list[CheckRecord]) -> tuple[list[CheckRecord], CheckRecord]:
    values = [r for r in records if r.kind != ACCURACY]
    (accuracy,) = [r for r in records if r.kind == ACCURACY]
    return values, accuracy


# ---- planning: which artifacts each precision holds -------------------------------------


def test_each_profile_plans_only_the_artifacts_of_its_precision():
    assert check_profiles() == {
        "core": "fp32",
        "fp16": "fp16",
        "bf16": "bf16",
        "tf32": "tf32",
        "int8": "int8",
    }
    for precision, wanted in ARTIFACT_PRECISION.items():
        plans = plan_checks(PACK, ["ort:cpu"], precision=precision)
        assert plans and {p.artifact.precision for p in plans} == {wanted}, precision
        assert {p.precision for p in plans} == {precision}
    derived = {a.precision for m in PACK.models for a in m.artifacts} - {"fp32"}
    assert derived == {"fp16", "int8"}  # the pack holds both, so the selection above is real


def test_the_default_fp32_plan_is_every_exported_artifact_and_data_set_as_before():
    """What the default run checks is unchanged by the derived artifacts: every fp32 (exported)
    artifact x data set x target, in pack order; a model with a task adds only its accuracy."""
    targets = ["ort:cpu", "reference"]
    plans = plan_checks(PACK, targets)
    values = [p.check_id for p in plans if p.kind != ACCURACY]
    before = [
        f"{m.name}-{a.exporter}-{d.label}-{t}"
        for t in targets
        for m in PACK.models
        for a in m.artifacts
        if "precision" not in a.record
        for d in m.data_sets
    ]
    assert values == before
    accuracy = [p.check_id for p in plans if p.kind == ACCURACY]
    assert accuracy == [
        f"{TASK_MODEL}-{a.exporter}-accuracy-{t}"
        for t in targets
        for a in digits().artifacts
        if a.precision == "fp32"
    ]


def test_an_exporter_name_selects_its_derived_artifacts_and_bad_precision_is_named():
    int8 = plan_checks(PACK, ["ort:cpu"], [TASK_MODEL], [BASE], "int8")
    assert {p.artifact.exporter for p in int8} == {f"{BASE}.int8-tensor", f"{BASE}.int8-channel"}
    assert {p.artifact.exporter for p in plan_checks(PACK, ["ort:cpu"], [TASK_MODEL], [BASE])} == {
        BASE
    }
    assert check_precision_error("fp32") is None
    assert check_precision_error("fp8") == (
        "precision 'fp8' is not one of fp32, bf16, tf32, fp16, int8"
    )


# ---- the accuracy record ------------------------------------------------------------------


def test_accuracy_figures_and_tiers_on_a_known_case():
    labels = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9] * 100)
    golden = labels.copy()
    golden[:20] = (golden[:20] + 1) % 10  # the golden misses 20 of 1000: fp32 accuracy 0.98
    predicted = golden.copy()
    predicted[20:25] = (predicted[20:25] + 1) % 10  # 5 more wrong, and 5 disagreements
    figures = accuracy_figures(predicted, labels, golden, 0.98)
    assert figures.accuracy == pytest.approx(0.975)
    assert figures.relative == pytest.approx(0.975 / 0.98)
    assert figures.tier == "99" and figures.passed  # 99.49% of fp32
    assert figures.top1_agreement == pytest.approx(0.995)
    assert tier_of(0.999) == "99.9" and tier_of(0.98999) == "below 99"
    with pytest.raises(ValueError, match="one of each per held-out sample"):
        accuracy_figures(predicted[:-1], labels, golden, 0.98)


@pytest.fixture(scope="module")
def swapped() -> CheckRecord:
    """defect:swap-outputs on digits' fp32 artifact: with one output, each row of the batch gets
    another request's result (reverse order), so its classes are the golden's reversed."""
    (plan,) = [p for p in plans_of("fp32", "defect:swap-outputs", BASE) if p.kind == ACCURACY]
    (record,) = run_plans([plan])
    return record


def test_a_target_with_known_wrong_labels_gets_the_exact_accuracy(swapped):
    (plan,) = [p for p in plans_of("fp32", "defect:swap-outputs", BASE) if p.kind == ACCURACY]
    labels, golden = plan.labels(), plan.golden_predictions()
    assert swapped.verdict == FAILED and swapped.attributed_to == "target"
    figures = swapped.accuracy
    assert figures is not None and figures.samples == len(labels) == 539
    assert figures.accuracy == float(np.mean(golden[::-1] == labels))
    assert figures.top1_agreement == float(np.mean(golden[::-1] == golden))
    assert figures.fp32_accuracy == digits().task["fp32_accuracy"]
    assert figures.tier == "below 99" and swapped.margin > 1
    assert "at least 99% is required" in swapped.problems[0]


def test_the_recorded_figures_are_recomputable_from_the_record_and_the_pack(swapped):
    """What verify does: the record's predictions, the pack's labels and golden give the same
    figures, and the record survives its own JSON."""
    again = CheckRecord.from_dict(swapped.as_dict())
    assert again == swapped
    data = swapped.as_dict()
    assert data["id"] == f"{TASK_MODEL}-{BASE}-accuracy-defect:swap-outputs"
    assert data["kind"] == ACCURACY and data["precision"] == "fp32"
    (plan,) = [p for p in plans_of("fp32", "defect:swap-outputs", BASE) if p.kind == ACCURACY]
    recomputed = accuracy_figures(
        data["predictions"], plan.labels(), plan.golden_predictions(), plan.fp32_accuracy
    )
    assert recomputed.as_dict() == {k: data[k] for k in recomputed.as_dict()}
    from conformance.results.document import new_document, validate_document

    document = new_document(PACK.manifest, {}, ["test"], precision="int8")
    validate_document({**document, "checks": [data]})  # the results schema knows the record
    assert predictions_of(np.eye(3)[[2, 0, 1]]).tolist() == [2, 0, 1]


# ---- bf16 as a target mode ----------------------------------------------------------------


@pytest.fixture(scope="module")
def bf16_options() -> dict:
    target = get_target(BF16)
    reason = target.unavailable_reason()
    if reason:
        pytest.skip(f"{BF16}: {reason}")
    options = dict(target.describe().options)
    if options.get("inference_precision") != "bf16":  # a CPU without AVX512_BF16 / AMX
        pytest.skip(f"{BF16} runs {options.get('inference_precision')} on this CPU")
    return options


def test_the_bf16_mode_runs_fp32_artifacts_and_is_judged_under_bf16(bf16_options):
    plans = plans_of("bf16", BF16, BASE)
    assert {p.artifact.precision for p in plans} == {"fp32"}
    values, accuracy = by_kind(run_plans(plans, bf16_options))
    assert [r.verdict for r in values] == [PASSED] * len(values), [r.problems for r in values]
    bf16 = {"atol": plans[0].tolerance.atol, "rtol": plans[0].tolerance.rtol}
    assert all(r.tolerance == bf16 and r.precision == "bf16" for r in values)
    assert accuracy.verdict == PASSED and accuracy.accuracy is not None
    assert accuracy.accuracy.tier in ("99.9", "99")
    # the same mode fails fp32's tolerance on its values alone: bf16 really is in force
    fp32 = run_plans([p for p in plans_of("fp32", BF16, BASE) if p.kind != ACCURACY])
    assert any("values out of tolerance" in " ".join(r.problems) for r in fp32)


def test_a_reduced_precision_target_in_an_fp32_run_fails_fp32(bf16_options):
    """No silent widening: the run's precision judges, and the target's own description of
    what it computes in makes every check fail, accuracy included."""
    records = run_plans(plans_of("fp32", BF16, BASE), bf16_options)
    assert [r.verdict for r in records] == [FAILED] * len(records)
    assert all(r.attributed_to == "target" for r in records)
    assert all(
        r.problems[0].startswith("the target computes in bf16") and "judges fp32" in r.problems[0]
        for r in records
    )


# ---- each precision's negative controls, and the criterion that catches them ------------

# (control, run precision, digits artifact, caught element-wise, caught by accuracy), measured:
# on digits every control is caught element-wise at its precision's calibrated tolerance while
# the task accuracy stays within 99% of fp32 (the defects move logits, rarely the argmax).
CONTROLS = [
    ("defect:int8-scale", "int8", f"{BASE}.int8-tensor", True, False),
    ("defect:int8-zero-point", "int8", f"{BASE}.int8-tensor", True, False),
    ("defect:fp16-accumulate", "fp16", f"{BASE}.fp16", True, False),
    ("defect:precision-lie", "fp16", f"{BASE}.fp16", True, False),
    ("defect:precision-lie", "bf16", BASE, True, False),
]


@pytest.fixture(scope="module")
def honest_digits() -> dict[tuple[str, str], list[CheckRecord]]:
    """ORT CPU on the artifacts the controls corrupt: the same criteria pass it."""
    artifacts = {(precision, artifact) for _, precision, artifact, _, _ in CONTROLS}
    return {
        (precision, artifact): run_plans(plans_of(precision, "ort:cpu", artifact))
        for precision, artifact in sorted(artifacts)
    }


@pytest.mark.parametrize(
    ("control", "precision", "artifact", "elementwise", "by_accuracy"),
    CONTROLS,
    ids=[f"{c[0]}-{c[1]}" for c in CONTROLS],
)
def test_each_control_is_caught_by_its_criterion(
    honest_digits, control, precision, artifact, elementwise, by_accuracy
):
    honest_values, honest_accuracy = by_kind(honest_digits[(precision, artifact)])
    assert all(r.verdict == PASSED for r in honest_values), [r.problems for r in honest_values]
    assert honest_accuracy.verdict == PASSED
    values, accuracy = by_kind(run_plans(plans_of(precision, control, artifact)))
    caught = [r for r in values if any("values out of tolerance" in p for p in r.problems)]
    assert bool(caught) is elementwise, [(r.data_set_label, r.margin) for r in values]
    assert all(r.attributed_to == "target" for r in caught)
    assert (accuracy.verdict == FAILED) is by_accuracy, accuracy.accuracy
    assert accuracy.accuracy is not None and accuracy.accuracy.samples == 539


def test_a_control_refuses_an_artifact_it_cannot_corrupt():
    """An int8 control on a float artifact is an error at load, never an honest pass."""
    plan = plans_of("fp32", "defect:int8-scale", BASE)[0]
    (record,) = run_plans([plan])
    assert record.verdict == "error" and "not int8 QDQ" in record.problems[0]


def test_a_resumed_reduced_precision_run_keeps_its_precision(tmp_path):
    """`--resume` finishes an interrupted int8 run with int8 checks (before the run recorded its
    precision, the resume ran the fp32 plan into it: the CLI's default profile is core)."""
    from conformance.results.document import load_document
    from conformance.run.session import RunRequest, RunSession

    run_dir = tmp_path / "run"
    first = RunRequest(PACK_DIR, run_dir, ["ort:cpu"], [TASK_MODEL], precision="int8")
    with RunSession.open(first) as session:
        session.run_checks(session.plans[:2])
        session.finish("interrupted")
    assert load_document(run_dir / "results.json")["run"]["selection"]["precision"] == "int8"
    with RunSession.open(RunRequest(PACK_DIR, run_dir, resume=True)) as session:
        assert {p.precision for p in session.plans} == {"int8"}
        session.run_checks()
        session.finish()
    checks = load_document(run_dir / "results.json")["checks"]
    int8 = [a.exporter for a in digits().artifacts if a.precision == "int8"]
    assert {c["exporter"] for c in checks} == set(int8)
    assert len(checks) == len(int8) * (len(digits().data_sets) + 1)
