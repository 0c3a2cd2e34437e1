"""One check's record: what ran, the verdict, and the error figures behind it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

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
    attributed_to: str | None = None  # "exporter" or "target" for anything not passed
    duration_s: float = 0.0

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
        return {"id": self.check_id, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckRecord:
        fields = {k: v for k, v in data.items() if k != "id"}
        fields["problems"] = tuple(fields.get("problems", ()))
        return cls(**fields)
