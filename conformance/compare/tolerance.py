"""Tolerances from spec/tolerances.json, keyed by precision and tolerance class."""

from __future__ import annotations

from dataclasses import dataclass

from conformance.spec import load_json


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float


class UnknownToleranceError(KeyError):
    pass


def tolerance_for(precision: str, model: str, tolerance_class: str = "default") -> Tolerance:
    """A model's own entry wins over its tolerance class, which wins over the default."""
    table = load_json("tolerances.json")
    if precision not in table:
        raise UnknownToleranceError(f"no tolerances for precision {precision!r}")
    entries = table[precision]
    entry = (
        entries.get("models", {}).get(model) or entries.get(tolerance_class) or entries["default"]
    )
    return Tolerance(atol=float(entry["atol"]), rtol=float(entry["rtol"]))
