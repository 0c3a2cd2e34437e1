"""Known findings, moving forward only: spec/ops/known/<target>-<runtime version>.json.

A list names the cases that fail on one target at one runtime version, each with its category
and reason; it is data, reviewed like tolerances. Against a run: a listed case that now passes
is reported ``fixed`` (take it off the list), a failing case not on the list is a
``regression``, a listed case that still fails is ``known``. A case that is not testable here is
neither (it never ran).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.ops import judge
from conformance.ops.records import OpRecord
from conformance.spec import SPEC_DIR

KNOWN_DIR = SPEC_DIR / "ops" / "known"
KNOWN_VERSION = 1


class KnownListError(ValueError):
    """A known-findings file that is not one (bad input: exit 2)."""


def list_name(target: str, version: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{target}-{version}")
    return f"{safe}.json"


@dataclass(frozen=True)
class KnownList:
    target: str
    version: str
    case_set: str  # the case set's name it was produced on
    cases: dict[str, dict[str, str]]  # case -> {"category", "reason"}
    path: Path | None = None

    def as_dict(self, produced_by: str) -> dict[str, Any]:
        return {
            "known_version": KNOWN_VERSION,
            "target": self.target,
            "runtime_version": self.version,
            "case_set": self.case_set,
            "produced_by": produced_by,
            "cases": {name: self.cases[name] for name in sorted(self.cases)},
        }


def read_known(path: Path) -> KnownList:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise KnownListError(f"{path}: not a known-findings list ({error})") from error
    if not isinstance(data, dict) or data.get("known_version") != KNOWN_VERSION:
        raise KnownListError(f"{path}: not a known-findings list of version {KNOWN_VERSION}")
    cases = data.get("cases")
    if not isinstance(cases, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("category"), str) for v in cases.values()
    ):
        raise KnownListError(f"{path}: cases must map a case name to its category and reason")
    return KnownList(
        str(data["target"]), str(data["runtime_version"]), str(data["case_set"]), cases, path
    )


def find_known(target: str, version: str, folder: Path = KNOWN_DIR) -> KnownList | None:
    path = Path(folder) / list_name(target, version)
    return read_known(path) if path.is_file() else None


_PATH = re.compile(r"(?<![\w.~:/-])/(?:[\w.+@~-]+/)+(?=[\w.+@~-])")


def scrub_paths(text: str) -> str:
    """A reason without the machine's folders: every absolute path keeps only its last part
    (".../model.onnx"), so a list written on another machine or run folder reads the same."""
    return _PATH.sub(".../", text)


def known_from(records: Iterable[OpRecord], target: str, version: str, case_set: str) -> KnownList:
    """The list a run gives: every case of the target that did not pass (not-testable aside);
    reasons without the run's folders (``scrub_paths``)."""
    cases = {
        r.case: {
            "category": r.category,
            "reason": judge.shorten(scrub_paths(r.problems[0]), 300) if r.problems else "",
        }
        for r in records
        if r.target == target and r.category in judge.FAILURES
    }
    return KnownList(target, version, case_set, cases)


def write_known(known: KnownList, folder: Path, produced_by: str) -> Path:
    path = Path(folder) / list_name(known.target, known.version)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(known.as_dict(produced_by), indent=1) + "\n", encoding="utf-8")
    return path


@dataclass(frozen=True)
class Movement:
    """A run against a known list: what got fixed, what regressed, what is still known."""

    target: str
    list_path: str | None
    fixed: tuple[str, ...] = ()
    regressions: tuple[str, ...] = ()
    known: tuple[str, ...] = ()
    changed: tuple[str, ...] = field(default=())  # still failing, in another category

    def as_dict(self) -> dict[str, Any]:
        return {
            "list": self.list_path,
            "fixed": list(self.fixed),
            "regressions": list(self.regressions),
            "known": len(self.known),
            "changed_category": list(self.changed),
        }

    def lines(self) -> list[str]:
        where = self.list_path or "no known-findings list (every failure counts as new)"
        out = [
            f"{self.target}: {len(self.known)} known, {len(self.fixed)} fixed, "
            f"{len(self.regressions)} regression(s) against {where}"
        ]
        out += [f"  fixed (take it off the list): {name}" for name in self.fixed[:20]]
        out += [f"  regression: {name}" for name in self.regressions[:20]]
        if len(self.regressions) > 20:
            out.append(f"  ... and {len(self.regressions) - 20} more regression(s)")
        return out


def movement(records: Sequence[OpRecord], target: str, known: KnownList | None) -> Movement:
    mine = [r for r in records if r.target == target]
    listed = known.cases if known is not None else {}
    fixed, regressions, still, changed = [], [], [], []
    for record in mine:
        entry = listed.get(record.case)
        if record.category == judge.PASSED:
            if entry is not None:
                fixed.append(record.case)
        elif record.category in judge.FAILURES:
            if entry is None:
                regressions.append(record.case)
            else:
                still.append(record.case)
                if entry.get("category") != record.category:
                    changed.append(record.case)
    path = None if known is None or known.path is None else str(known.path)
    return Movement(target, path, tuple(fixed), tuple(regressions), tuple(still), tuple(changed))
