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


def tolerance_for(precision: str, tolerance_class: str) -> Tolerance:
    table = load_json("tolerances.json")
    if precision not in table:
        raise UnknownToleranceError(f"no tolerances for precision {precision!r}")
    classes = table[precision]
    entry = classes.get(tolerance_class, classes["default"])
    return Tolerance(atol=float(entry["atol"]), rtol=float(entry["rtol"]))
