"""The record of one operator case on one target, as the results file holds it.

Pure data (no runtime, no onnx import): the scoring (``conformance.ops.scoring``), the report
and certify/verify read these records back from a results file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RECORD_KIND = "op-case"


def case_id(case: str, target: str) -> str:
    return f"ops-{case}-{target}"


@dataclass(frozen=True)
class OpRecord:
    """One case on one target: its category, the rule, the figures, the runtime's words."""

    case: str
    set: str
    op: str
    domain: str
    target: str
    category: str
    rule: dict[str, Any]
    problems: tuple[str, ...] = ()
    message: str = ""  # the runtime's own message (errors), kept
    stage: str = ""  # where it stopped: "load", "run" (errors), "" otherwise
    figures: dict[str, float | None] | None = None
    judged_by: str = "values"
    case_digest: str = ""
    duration_s: float = 0.0
    stderr: str = ""
    # "float64": the case's expected outputs were computed in float64 and rounded to the
    # output dtype by onnx's generator (an exact runtime may differ by half an ulp)
    expected_rounded_from: str = ""
    compile_cache: str = ""  # "hit" | "miss" | "off" where the target compiles (IREE, OpenVINO)

    @property
    def id(self) -> str:
        return case_id(self.case, self.target)

    @property
    def op_key(self) -> str:
        return f"{self.domain}:{self.op}" if self.domain not in ("", "ai.onnx") else self.op

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "kind": RECORD_KIND,
            "case": self.case,
            "set": self.set,
            "op": self.op,
            "domain": self.domain,
            "target": self.target,
            "category": self.category,
            "rule": dict(self.rule),
            "problems": list(self.problems),
            "judged_by": self.judged_by,
            "case_digest": self.case_digest,
            "duration_s": self.duration_s,
        }
        if self.figures is not None:
            data["figures"] = dict(self.figures)
        if self.message:
            data["message"] = self.message
        if self.stage:
            data["stage"] = self.stage
        if self.stderr:
            data["stderr"] = self.stderr
        if self.expected_rounded_from:
            data["expected_rounded_from"] = self.expected_rounded_from
        if self.compile_cache:
            data["compile_cache"] = self.compile_cache
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OpRecord:
        return cls(
            case=data["case"],
            set=data["set"],
            op=data["op"],
            domain=data["domain"],
            target=data["target"],
            category=data["category"],
            rule=dict(data["rule"]),
            problems=tuple(data.get("problems", ())),
            message=data.get("message", ""),
            stage=data.get("stage", ""),
            figures=data.get("figures"),
            judged_by=data.get("judged_by", "values"),
            case_digest=data.get("case_digest", ""),
            duration_s=float(data.get("duration_s", 0.0)),
            stderr=data.get("stderr", ""),
            expected_rounded_from=data.get("expected_rounded_from", ""),
            compile_cache=data.get("compile_cache", ""),
        )


def records_of(document: dict[str, Any]) -> list[OpRecord]:
    """The op-case records of a results document (its ``ops.cases``)."""
    return [OpRecord.from_dict(r) for r in document.get("ops", {}).get("cases", [])]
