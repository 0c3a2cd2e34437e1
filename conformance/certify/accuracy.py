"""Recompute an accuracy record (a reduced-precision profile's task criterion) from the bundle and
the pack: the recorded per-sample predictions against the pack's held-out labels and the float64
golden's own classes give the accuracy, the relative accuracy, the MLPerf tier, the top-1
agreement and the verdict (conformance.results.accuracy, the run's own pure function). No stored
figure is trusted; what offline recomputation cannot prove is that the runtime produced those
predictions (the signature and ``verify --rerun`` are for that).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from conformance.certify.interface import AccuracyOutcome, CheckOutcome, Finding, Reason
from conformance.certify.profiles import RequiredCheck
from conformance.results.accuracy import ACCURACY, FIELDS, AccuracyFigures, accuracy_figures
from conformance.results.records import PASSED

ANSWERED = ("passed", "failed")
MAX_PREDICTIONS = 100_000


def _predictions(record: Mapping[str, Any]) -> list[int] | None:
    value = record.get("predictions")
    if not isinstance(value, list) or len(value) > MAX_PREDICTIONS:
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        return None
    return value


def _same(recorded: Any, recomputed: float | int | str) -> bool:
    if isinstance(recomputed, str):
        return recorded == recomputed
    if not isinstance(recorded, (int, float)) or isinstance(recorded, bool):
        return False
    return math.isclose(float(recorded), float(recomputed), rel_tol=1e-9, abs_tol=1e-12)


def figures_of(record: Mapping[str, Any], where: RequiredCheck) -> AccuracyFigures | None:
    """The figures the recorded predictions give against the pack (None: no usable
    predictions: not one class per held-out sample)."""
    predictions = _predictions(record)
    if predictions is None:
        return None
    try:
        return accuracy_figures(
            predictions, where.labels(), where.golden_predictions(), where.fp32_accuracy
        )
    except ValueError:
        return None


def recompute_accuracy(
    record: dict[str, Any], where: RequiredCheck, precision: str
) -> tuple[list[Finding], CheckOutcome, AccuracyOutcome]:
    cid = record["id"]
    verdict = record["verdict"]
    found: list[Finding] = []
    if record.get("kind") != ACCURACY:
        found.append(
            Finding(Reason.STRUCTURE_MISMATCH, f"kind {record.get('kind')!r}, not accuracy", cid)
        )
    if record.get("precision", "fp32") != precision:
        found.append(
            Finding(
                Reason.ACCURACY_MISMATCH,
                f"judged at precision {record.get('precision')!r}, the profile's is {precision}",
                cid,
            )
        )
    figures = figures_of(record, where) if verdict in ANSWERED else None
    if verdict in ANSWERED and figures is None and record.get("predictions") is not None:
        found.append(
            Finding(
                Reason.ACCURACY_MISMATCH,
                f"the predictions are not one class per held-out sample ({where.labels().size})",
                cid,
            )
        )
    if figures is not None:
        recomputed = {**figures.as_dict(), "margin": figures.margin}
        wrong = [k for k in (*FIELDS, "margin") if not _same(record.get(k), recomputed[k])]
        if wrong:
            found.append(
                Finding(
                    Reason.ACCURACY_MISMATCH,
                    "; ".join(
                        f"{k} recorded {str(record.get(k))[:40]}, the predictions give "
                        f"{recomputed[k]:.6g}"
                        if not isinstance(recomputed[k], str)
                        else f"{k} recorded {str(record.get(k))[:40]!r}, the predictions give "
                        f"{recomputed[k]!r}"
                        for k in wrong[:4]
                    ),
                    cid,
                )
            )
    passed = figures is not None and figures.passed
    if verdict == PASSED and not passed:
        why = "the recomputed relative accuracy is below 0.99" if figures else "no predictions"
        found.append(Finding(Reason.VERDICT_MISMATCH, f"recorded passed, but {why}", cid))
    if verdict == "failed" and passed:
        found.append(
            Finding(
                Reason.VERDICT_MISMATCH, "recorded failed, but the predictions pass accuracy", cid
            )
        )
    outcome = CheckOutcome(
        cid,
        where.model.name,
        where.artifact.exporter,
        ACCURACY,
        passed,
        where.normative,
        figures.margin if figures is not None else None,
        verdict,
    )
    accuracy = AccuracyOutcome(
        cid,
        where.model.name,
        where.artifact.exporter,
        precision,
        figures.accuracy if figures else None,
        figures.relative if figures else None,
        figures.tier if figures else "",
        figures.top1_agreement if figures else None,
        passed,
        verdict,
    )
    return found, outcome, accuracy
