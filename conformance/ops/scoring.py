"""Scoring per op type, and the terminal tables.

An op type scores ``all`` when every one of its cases passes on the target (not-testable cases
excluded, as long as one case was tested), ``some``, ``none``, ``not-testable`` (no case of it
could be handed to the target) or ``untested`` (an operator onnx defines with no node case).
The headline is the count of op types whose every case passes, never "any case passes".
On-disk model cases (simple, pytorch-*) test no single op: they are counted per set.

The table a results file records (``ops.scores``, ``ops.headline``, ``ops.categories``) is
``op_table(records, targets, untested)``; ``recompute(section)`` computes it again from the
section's own case records (``ops.cases``, ``ops.targets``, ``ops.untested``), so certify and
verify can check a recorded table against its records. Pure: no runtime, no onnx import.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from conformance.ops import judge
from conformance.ops.cases import NODE, SETS, op_key
from conformance.ops.records import OpRecord

ALL, SOME, NONE, NOT_TESTABLE, UNTESTED = "all", "some", "none", "not-testable", "untested"
SCORES = (ALL, SOME, NONE, NOT_TESTABLE, UNTESTED)
MARKS = {ALL: "+", SOME: "~", NONE: "x", NOT_TESTABLE: "n", UNTESTED: "."}


@dataclass(frozen=True)
class OpScore:
    op: str  # op key, e.g. "Softmax", "ai.onnx.ml:LabelEncoder"
    target: str
    score: str
    passed: int
    tested: int  # cases that ran (not not-testable)
    cases: int


def score_of(categories: Sequence[str]) -> str:
    tested = [c for c in categories if c != judge.NOT_TESTABLE]
    if not categories:
        return UNTESTED
    if not tested:
        return NOT_TESTABLE
    passed = sum(c == judge.PASSED for c in tested)
    return ALL if passed == len(tested) else NONE if passed == 0 else SOME


def op_scores(
    records: Iterable[OpRecord], targets: Sequence[str], defined: Iterable[tuple[str, str]] = ()
) -> dict[str, dict[str, OpScore]]:
    """op key -> target -> score, over node cases; ``defined`` ops with no case are untested."""
    by: dict[tuple[str, str], list[str]] = defaultdict(list)
    for record in records:
        if record.set == NODE:
            by[(record.op_key, record.target)].append(record.category)
    ops = {op for op, _ in by} | {op_key(d, o) for d, o in defined}
    table: dict[str, dict[str, OpScore]] = {}
    for op in sorted(ops, key=lambda k: (":" in k, k.lower())):
        row = {}
        for target in targets:
            categories = by.get((op, target), [])
            tested = [c for c in categories if c != judge.NOT_TESTABLE]
            row[target] = OpScore(
                op,
                target,
                score_of(categories),
                sum(c == judge.PASSED for c in tested),
                len(tested),
                len(categories),
            )
        table[op] = row
    return table


def headline(table: dict[str, dict[str, OpScore]], target: str) -> Counter[str]:
    return Counter(row[target].score for row in table.values() if target in row)


def category_counts(records: Iterable[OpRecord]) -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for record in records:
        counts[record.target][record.category] += 1
    return counts


def set_counts(records: Iterable[OpRecord]) -> dict[tuple[str, str], Counter[str]]:
    counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for record in records:
        counts[(record.target, record.set)][record.category] += 1
    return counts


def key_parts(key: str) -> tuple[str, str]:
    """(domain, op type) of an op key: "Softmax" -> ("", "Softmax")."""
    domain, _, op = key.rpartition(":")
    return domain, op


def op_table(
    records: Sequence[OpRecord], targets: Sequence[str], untested: Iterable[str] = ()
) -> dict[str, Any]:
    """The per-op-type table a results file records, from case records: ``targets``,
    ``untested`` (op keys onnx defines with no node case; whole-set runs only), ``scores``
    (target -> op key -> score, untested ops left out), ``headline`` (target -> score -> op
    types; the headline is ``all``), ``categories`` (target -> category -> cases, every set)."""
    untested = sorted(set(untested), key=lambda k: (":" in k, k.lower()))
    table = op_scores(records, targets, [key_parts(k) for k in untested])
    counts = category_counts(records)
    return {
        "targets": list(targets),
        "untested": untested,
        "scores": {
            t: {op: row[t].score for op, row in table.items() if row[t].score != UNTESTED}
            for t in targets
        },
        "headline": {t: dict(headline(table, t)) for t in targets},
        "categories": {t: dict(counts.get(t, Counter())) for t in targets},
    }


TABLE_KEYS = ("targets", "untested", "scores", "headline", "categories")


def recompute(section: Mapping[str, Any]) -> dict[str, Any]:
    """The table again from a results file's ``ops`` section (its ``cases``; ``targets`` and
    ``untested`` as recorded, ``targets`` defaulting to the records' own): equal to the
    section's ``TABLE_KEYS`` entries when they were computed from those records. ValueError
    for a section that is not one."""
    try:
        records = [OpRecord.from_dict(c) for c in section["cases"]]
        targets = section.get("targets")
        if targets is None:
            targets = list(dict.fromkeys(r.target for r in records))
        untested = section.get("untested", [])
        if not all(isinstance(t, str) for t in [*targets, *untested]):
            raise TypeError("targets and untested ops must be strings")
        return op_table(records, list(targets), list(untested))
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise ValueError(f"not an ops section of a results file: {error!r}") from error


def recorded_table(section: Mapping[str, Any]) -> dict[str, Any]:
    """The table as the section records it (the keys ``op_table`` writes)."""
    return {k: section.get(k) for k in TABLE_KEYS}


# ---- terminal tables ----------------------------------------------------------------------
def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for index, row in enumerate(cells):
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))
            )
        )
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def render_per_target(
    records: Sequence[OpRecord], table: dict[str, dict[str, OpScore]], targets: Sequence[str]
) -> str:
    """Per target: cases passed per set, and op types by score (the headline first)."""
    sets = set_counts(records)
    header = ["target", "ops all-pass", "some", "none", "not-testable", "untested"]
    header += [f"{s} passed" for s in SETS]
    rows = []
    for target in targets:
        scores = headline(table, target)
        row: list[object] = [target, *(scores.get(s, 0) for s in SCORES)]
        for name in SETS:
            counts = sets.get((target, name), Counter())
            row.append(f"{counts.get(judge.PASSED, 0)}/{sum(counts.values())}")
        rows.append(row)
    return "\n".join(
        ["op types per target (headline: op types whose every case passes)"] + _table(header, rows)
    )


def render_categories(records: Sequence[OpRecord], targets: Sequence[str]) -> str:
    counts = category_counts(records)
    used = [c for c in judge.CATEGORIES if any(counts[t].get(c) for t in targets)]
    rows = [[t, *(counts[t].get(c, 0) for c in used), sum(counts[t].values())] for t in targets]
    return "\n".join(["cases per category"] + _table(["target", *used, "total"], rows))


def render_matrix(
    table: dict[str, dict[str, OpScore]], targets: Sequence[str], width: int = 0
) -> str:
    """op x target: one mark per cell (+ all pass, ~ some, x none, n not testable, . untested)
    with passed/tested counts."""
    rows = []
    for op, row in table.items():
        cells = []
        for target in targets:
            score = row[target]
            text = MARKS[score.score]
            if score.tested:
                text += f" {score.passed}/{score.tested}"
            cells.append(text)
        rows.append([op, *cells])
    legend = "legend: + every case passes, ~ some, x none, n not testable here, . no node case"
    return "\n".join(
        ["op x target (passed/tested cases)"] + _table(["op", *targets], rows) + [legend]
    )
