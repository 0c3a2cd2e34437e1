"""One check's record: what ran, the verdict, and the error figures behind it."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

from conformance.results.accuracy import ACCURACY, FIELDS, AccuracyFigures

PASSED, FAILED, ERROR, CRASHED, TIMED_OUT, SKIPPED = (
    "passed",
    "failed",
    "error",
    "crashed",
    "timed-out",
    "skipped",
)
VERDICTS = (PASSED, FAILED, ERROR, CRASHED, TIMED_OUT, SKIPPED)
NOT_PASSED = (FAILED, ERROR, CRASHED, TIMED_OUT)
# A benchmark that measured: its JSON word since results schema 1.0, kept so files stay the same.
MEASURED = "ok"
BENCH_STATUSES = (MEASURED, ERROR, CRASHED, TIMED_OUT, SKIPPED)
PERCENTILES = ("p50", "p90", "p95", "p99", "p99.9")  # a benchmark record's latency_ms / valid keys
# Whose account a check that did not pass is on: the exporter's (the pack records the artifact as
# wrong), the target's (a runtime finding), or the adapter's (the vendor's adapter broke the target
# contract: an error of the harness around the runtime, never the runtime's numbers).
EXPORTER, TARGET, ADAPTER = "exporter", "target", "adapter"
# What a check judges: the values of one test data set against the golden, or the task accuracy
# of an artifact over the held-out split (results/accuracy.py).
VALUES = "values"
KINDS = (VALUES, ACCURACY)
FP32 = "fp32"  # a record without "precision" was judged at fp32


class SkipKind(enum.StrEnum):
    """Why a check was skipped, as data: the report and the profile rule read this, never the
    problem text (which stays for people)."""

    NO_RUNNABLE_ARTIFACT = "no-runnable-artifact"  # the exporter produced nothing runnable
    TARGET_UNAVAILABLE = "target-unavailable"  # the runtime or device is not present here

    @property
    def assessed(self) -> bool:
        """Whether the check counts as assessed for a profile: a missing artifact is the
        exporter's, never a gap in the runtime's assessment."""
        return self is SkipKind.NO_RUNNABLE_ARTIFACT

    @classmethod
    def of_legacy_reason(cls, reason: str) -> SkipKind | None:
        """Results files written before the kind was recorded carry it only as the problem's
        prefix; this is the one place that still reads it (schema 1.0 files)."""
        prefixes = {"no runnable artifact": cls.NO_RUNNABLE_ARTIFACT}
        prefixes["target unavailable"] = cls.TARGET_UNAVAILABLE
        return next((kind for p, kind in prefixes.items() if reason.startswith(p)), None)


def check_id(model: str, exporter: str, data_set_label: str, target: str) -> str:
    return f"{model}-{exporter}-{data_set_label}-{target}"


@dataclass(frozen=True)
class CheckRecord:
    model: str
    exporter: str
    data_set: int
    data_set_label: str  # "batch4-seq20"
    target: str
    verdict: str  # one of VERDICTS
    problems: tuple[str, ...] = ()
    margin: float | None = None  # worst error / tolerance over outputs
    outputs: dict[str, Any] = field(default_factory=dict)  # output name -> ErrorStats dict
    tolerance: dict[str, float] = field(default_factory=dict)
    determinism: dict[str, Any] = field(default_factory=dict)
    batch_invariance: dict[str, Any] = field(default_factory=dict)
    attributed_to: str | None = None  # EXPORTER, TARGET or ADAPTER for anything not passed
    duration_s: float = 0.0
    skip: SkipKind | None = None  # set when verdict is SKIPPED; omitted from JSON otherwise
    stderr: str = ""  # what the target wrote on stderr during the check; omitted when empty
    kind: str = VALUES  # VALUES or ACCURACY; omitted for VALUES (records before kinds existed)
    precision: str = FP32  # the precision the check was judged at; omitted for a fp32 values check
    accuracy: AccuracyFigures | None = None  # ACCURACY records: flat in JSON (FIELDS)
    predictions: tuple[int, ...] = ()  # ACCURACY records: the per-sample argmax, for recompute
    compile_cache: str | None = (
        None  # "hit" | "miss" | "off" where the target compiles; else omitted
    )

    @property
    def check_id(self) -> str:
        return check_id(self.model, self.exporter, self.data_set_label, self.target)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["problems"] = list(self.problems)
        if data["margin"] == float("inf"):
            data["margin"] = (
                None  # JSON has no infinity; problems say why values were not comparable
            )
        if self.skip is None:
            del data["skip"]
        else:
            data["skip"] = str(self.skip)
        if not self.stderr:
            del data["stderr"]
        del data["accuracy"]
        if self.compile_cache is None:
            del data["compile_cache"]
        if self.kind == VALUES:
            del data["kind"], data["predictions"]
            if self.precision == FP32:
                del data["precision"]
        else:
            data.update(self.accuracy.as_dict() if self.accuracy else {})
            data["predictions"] = list(self.predictions)
        return {"id": self.check_id, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckRecord:
        fields = {k: v for k, v in data.items() if k != "id"}
        fields["problems"] = tuple(fields.get("problems", ()))
        figures = AccuracyFigures.from_dict(fields) if all(k in fields for k in FIELDS) else None
        for key in FIELDS:
            fields.pop(key, None)
        fields["accuracy"] = figures
        fields["predictions"] = tuple(fields.get("predictions", ()))
        if fields.get("skip") is not None:
            fields["skip"] = SkipKind(fields["skip"])
        elif fields.get("verdict") == SKIPPED and fields["problems"]:
            fields["skip"] = SkipKind.of_legacy_reason(fields["problems"][0])
        return cls(**fields)
