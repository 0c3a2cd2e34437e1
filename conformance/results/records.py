"""One check's record: what ran, the verdict, and the error figures behind it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PASSED, FAILED, ERROR, SKIPPED = "passed", "failed", "error", "skipped"


@dataclass(frozen=True)
class CheckRecord:
    model: str
    exporter: str
    data_set: int
    data_set_label: str  # "batch4-seq20"
    target: str
    verdict: str  # passed | failed | error | skipped
    problems: tuple[str, ...] = ()
    margin: float | None = None  # worst error / tolerance over outputs
    outputs: dict[str, Any] = field(default_factory=dict)  # output name -> ErrorStats dict
    tolerance: dict[str, float] = field(default_factory=dict)
    attributed_to: str | None = None  # "exporter" or "target" for failures
    duration_s: float = 0.0

    @property
    def check_id(self) -> str:
        return f"{self.model}-{self.exporter}-{self.data_set_label}-{self.target}"

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.check_id, **asdict(self), "problems": list(self.problems)}
