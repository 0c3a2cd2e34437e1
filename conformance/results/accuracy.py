"""Task accuracy of a reduced-precision run: MLPerf's tiers, from per-sample predictions.

A model with a task (the pack's ``task`` record: a classifier with a held-out split and its
labels) is judged twice: element-wise against the golden (compare/), and here by what it is for:
the share of held-out samples it classifies correctly, relative to the float64 golden's own
accuracy (MLPerf Inference: >= 99% and >= 99.9% of the fp32 reference). The figures are a pure
function of the target's per-sample predictions (recorded), the labels and the golden (in the
pack), so a verifier recomputes them from the results file and the pack alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

ACCURACY = "accuracy"  # a record's kind, and the data set label of its check id
PASS_RELATIVE = 0.99  # the verdict: relative accuracy at least this
TIERS = (("99.9", 0.999), ("99", 0.99))  # MLPerf's names, best first
BELOW = "below 99"


def tier_of(relative: float) -> str:
    return next((name for name, bound in TIERS if relative >= bound), BELOW)


@dataclass(frozen=True)
class AccuracyFigures:
    accuracy: float  # correct / samples, against the labels
    fp32_accuracy: float  # the float64 golden's accuracy on the same samples (the pack's)
    relative: float  # accuracy / fp32_accuracy
    tier: str  # "99.9", "99" or "below 99"
    top1_agreement: float  # share of samples whose prediction is the golden's
    samples: int

    @property
    def passed(self) -> bool:
        return self.relative >= PASS_RELATIVE

    @property
    def margin(self) -> float:
        """Lost accuracy over what the verdict allows: passed iff margin <= 1."""
        return max(0.0, (1.0 - self.relative) / (1.0 - PASS_RELATIVE))

    def as_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "fp32_accuracy": self.fp32_accuracy,
            "relative": self.relative,
            "tier": self.tier,
            "top1_agreement": self.top1_agreement,
            "samples": self.samples,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AccuracyFigures:
        return cls(
            float(data["accuracy"]),
            float(data["fp32_accuracy"]),
            float(data["relative"]),
            str(data["tier"]),
            float(data["top1_agreement"]),
            int(data["samples"]),
        )


FIELDS = tuple(AccuracyFigures.__dataclass_fields__)


def predictions_of(logits: np.ndarray) -> np.ndarray:
    """Per-sample class: the argmax over the last axis (ties: the first), as int64."""
    values = np.asarray(logits, dtype=np.float64)
    return np.argmax(values.reshape(values.shape[0], -1), axis=-1).astype(np.int64)


def accuracy_figures(
    predictions: np.ndarray | list[int],
    labels: np.ndarray,
    golden_predictions: np.ndarray,
    fp32_accuracy: float,
) -> AccuracyFigures:
    """The figures of one (artifact, target) on the held-out split. Raises ValueError when the
    three per-sample arrays do not have one entry per sample each."""
    predicted = np.asarray(predictions, dtype=np.int64).reshape(-1)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    golden = np.asarray(golden_predictions, dtype=np.int64).reshape(-1)
    if not predicted.size or predicted.shape != labels.shape or golden.shape != labels.shape:
        raise ValueError(
            f"{predicted.size} predictions, {labels.size} labels and {golden.size} golden "
            "predictions: one of each per held-out sample is needed"
        )
    if not fp32_accuracy > 0:
        raise ValueError(f"fp32 accuracy {fp32_accuracy!r}: a relative accuracy needs it > 0")
    samples = int(labels.size)
    accuracy = int((predicted == labels).sum()) / samples
    relative = accuracy / float(fp32_accuracy)
    return AccuracyFigures(
        accuracy=accuracy,
        fp32_accuracy=float(fp32_accuracy),
        relative=relative,
        tier=tier_of(relative),
        top1_agreement=int((predicted == golden).sum()) / samples,
        samples=samples,
    )
