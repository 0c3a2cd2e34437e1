"""Plain-text summary of a run's check records (for the terminal and CI logs).

Three parts, in the order a user reads them at the end of `conformance run`: the table of
checks with the findings grouped by cause, the interop grid (runtime findings and exporter
findings told apart, with a legend), and one verdict line per target under the same profile
rule as the HTML report.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from conformance.findings import group_key, informative_part, one_line
from conformance.results.records import (
    ADAPTER,
    EXPORTER,
    NOT_PASSED,
    PASSED,
    SKIPPED,
    TARGET,
    CheckRecord,
    SkipKind,
)
from conformance.untrusted import printable

__all__ = [
    "SYMBOL",
    "cell",
    "informative_part",
    "interop_view",
    "one_line",
    "render_interop",
    "render_run_summary",
    "render_table",
    "render_verdicts",
]

SYMBOL = {
    "passed": "ok",
    "failed": "FAIL",
    "error": "ERR",
    "crashed": "CRASH",
    "timed-out": "TIMEOUT",
    "skipped": "skip",
}
RUNTIME_MARK, EXPORTER_MARK, ADAPTER_MARK, NOT_RUN_MARK = "x", "e", "a", "-"
LEGEND = {
    "ok": "ok: every exporter's artifact passes every data set",
    RUNTIME_MARK: f"{RUNTIME_MARK} EXPORTERS: runtime finding, the artifact is good and the target "
    "diverges",
    EXPORTER_MARK: f"{EXPORTER_MARK} EXPORTERS: exporter finding, the artifact is bad (fails on "
    "the reference evaluator too) or missing, as the pack records: not the target's fault",
    ADAPTER_MARK: f"{ADAPTER_MARK} EXPORTERS: adapter error, the target's adapter broke the "
    "target contract (fix the adapter; not a runtime finding)",
    NOT_RUN_MARK: f"{NOT_RUN_MARK} EXPORTERS: not run (target unavailable)",
}


def cell(record: CheckRecord) -> str:
    margin = (
        f" {record.margin:.2g}"
        if record.margin is not None and record.margin != float("inf")
        else ""
    )
    return f"{SYMBOL.get(record.verdict, record.verdict)}{margin}"


def _grid(header: list[str], body: list[list[str]]) -> list[str]:
    """Aligned columns; every value escaped (names can come from a results file)."""
    header = [printable(v, 120) for v in header]
    body = [[printable(v, 400) for v in row] for row in body]
    widths = [max(len(str(row[i])) for row in [header, *body]) for i in range(len(header))]
    return [
        "  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip() for row in [header, *body]
    ]


def exporter_finding(record: CheckRecord) -> bool:
    """Did not pass on the exporter's account: a bad artifact, or none that can run."""
    if record.verdict == SKIPPED:
        return record.skip is SkipKind.NO_RUNNABLE_ARTIFACT
    return record.verdict in NOT_PASSED and record.attributed_to == EXPORTER


def adapter_error(record: CheckRecord) -> bool:
    return record.verdict in NOT_PASSED and record.attributed_to == ADAPTER


def runtime_finding(record: CheckRecord) -> bool:
    return record.verdict in NOT_PASSED and record.attributed_to not in (EXPORTER, ADAPTER)


@dataclass(frozen=True)
class FindingGroup:
    """Identical findings (same target, verdict, account, artifact and cause) on several data
    sets: one line with the data sets named."""

    records: tuple[CheckRecord, ...]

    @property
    def first(self) -> CheckRecord:
        return self.records[0]

    def line(self, width: int = 240) -> str:
        """ "<check id> <verdict>: <message>", the check id of the first data set; a group
        says on how many data sets (and which) the same finding was seen."""
        first = self.first
        seen = ""
        if len(self.records) > 1:
            sets = ", ".join(r.data_set_label for r in self.records)
            seen = f" on {len(self.records)} data sets ({sets})"
        message = first.problems[0] if first.problems else "no problem recorded"
        return printable(
            f"{first.check_id} {first.verdict}{seen}: {informative_part(message, width)}",
            width + 200,
        )


def group_findings(records: Iterable[CheckRecord]) -> list[FindingGroup]:
    groups: dict[tuple[Any, ...], list[CheckRecord]] = defaultdict(list)
    for record in records:
        message = record.problems[0] if record.problems else ""
        key = (
            record.target,
            record.attributed_to,
            record.verdict,
            record.model,
            record.exporter,
            group_key(message),
        )
        groups[key].append(record)
    return [FindingGroup(tuple(found)) for found in groups.values()]


def render_findings(records: Sequence[CheckRecord]) -> list[str]:
    lines = []
    for blame, title in (
        (
            EXPORTER,
            "exporter findings (the artifact fails on the reference evaluator too; "
            "recorded in the pack)",
        ),
        (TARGET, "runtime findings (the artifact is good; the target diverges)"),
        (ADAPTER, "adapter errors (the adapter broke the target contract; fix the adapter)"),
    ):
        found = [r for r in records if r.verdict != PASSED and r.attributed_to == blame]
        if found:
            groups = group_findings(found)
            causes = f", {len(groups)} distinct" if len(groups) < len(found) else ""
            lines.append(f"{len(found)} {title}{causes}:")
            lines += [f"  {group.line()}" for group in groups]
    return lines


def render_table(records: list[CheckRecord]) -> str:
    """Rows: model/exporter/target; columns: test data sets; cells: verdict and margin."""
    rows: dict[tuple[str, str, str], dict[int, str]] = defaultdict(dict)
    for record in records:
        rows[(record.model, record.exporter, record.target)][record.data_set] = cell(record)
    sets = sorted({r.data_set for r in records})
    header = ["model", "exporter", "target", *(f"set{i}" for i in sets)]
    body = [[*key, *(cells.get(i, "") for i in sets)] for key, cells in rows.items()]
    lines = _grid(header, body)
    counts = Counter(r.verdict for r in records)
    lines.append(
        f"{len(records)} checks: "
        + ", ".join(f"{counts[v]} {v}" for v in SYMBOL if counts[v])
        + "  (cells: verdict and margin = worst error / tolerance; set0 batch 1, set1 batch 4, "
        "set2 batch 4 at the second sequence length)"
    )
    lines += render_findings(records)
    return "\n".join(lines)


def interop_view(records: list[CheckRecord]) -> dict[tuple[str, str], list[str]]:
    """(model, target) -> exporters whose artifact did not pass every data set (empty:
    interoperable)."""
    view: dict[tuple[str, str], set[str]] = defaultdict(set)
    for record in records:
        failing = view[(record.model, record.target)]
        if record.verdict != PASSED:
            failing.add(record.exporter)
    return {key: sorted(value) for key, value in view.items()}


def interop_cell(records: Iterable[CheckRecord]) -> str:
    """One (model, target) cell: ok, or which exporters' artifacts failed, on whose account."""
    marks: dict[str, set[str]] = defaultdict(set)
    for record in records:
        if record.verdict == PASSED:
            continue
        if exporter_finding(record):
            marks[EXPORTER_MARK].add(record.exporter)
        elif adapter_error(record):
            marks[ADAPTER_MARK].add(record.exporter)
        elif runtime_finding(record):
            marks[RUNTIME_MARK].add(record.exporter)
        else:
            marks[NOT_RUN_MARK].add(record.exporter)
    parts = [
        f"{mark} {','.join(sorted(marks[mark]))}"
        for mark in (RUNTIME_MARK, ADAPTER_MARK, EXPORTER_MARK, NOT_RUN_MARK)
        if marks[mark]
    ]
    return " ".join(parts) or "ok"


def render_interop(records: list[CheckRecord]) -> str:
    """Rows: models; columns: targets; "ok" when the torch- and TF-exported artifacts all pass.
    A legend line follows for each mark the grid uses."""
    cells: dict[tuple[str, str], list[CheckRecord]] = defaultdict(list)
    for record in records:
        cells[(record.model, record.target)].append(record)
    targets = list(dict.fromkeys(r.target for r in records))
    models = list(dict.fromkeys(r.model for r in records))
    body = [[m, *(interop_cell(cells.get((m, t), [])) for t in targets)] for m in models]
    used = {part for row in body for text in row[1:] for part in text.split() if part in LEGEND}
    legend = [f"  {line}" for mark, line in LEGEND.items() if mark in used]
    return "\n".join([*_grid(["interop", *targets], body), *legend])


def _target_verdicts(document: dict[str, Any], records: list[CheckRecord]) -> list[Any]:
    """The report's profile rule, called, never copied (report/verdicts.py)."""
    from conformance.report.verdicts import target_verdicts

    return list(target_verdicts(document, records))


def _counts(verdict: Any, records: list[CheckRecord]) -> str:
    """The report's counts for the target (exporter findings in their own column, never among
    its failures), with the adapter's contract errors also apart from the runtime's."""
    adapter = Counter(r.verdict for r in records if adapter_error(r))
    own = {v: verdict.counts.get(v, 0) - adapter.get(v, 0) for v in SYMBOL}
    parts = [f"{own[v]} {v}" for v in SYMBOL if own[v] > 0]
    for count, word in (
        (sum(adapter.values()), "adapter error"),
        (verdict.exporter_findings, "exporter finding"),
    ):
        if count:
            parts.append(f"{count} {word}{'s' if count != 1 else ''}")
    return ", ".join(parts) or "no checks"


def render_verdicts(document: dict[str, Any], records: list[CheckRecord]) -> str:
    """One line per target: its verdict under the core profile (the report's rule) and counts."""
    verdicts = _target_verdicts(document, records)
    if not verdicts:
        return ""
    by_target: dict[str, list[CheckRecord]] = defaultdict(list)
    for record in records:
        by_target[record.target].append(record)
    body = []
    for verdict in verdicts:
        profile = verdict.profiles[0]
        status = profile.status.upper() if profile.status == "not conformant" else profile.status
        if verdict.negative_control and profile.status == "not conformant":
            status += " (negative control: expected)"
        body.append(
            [
                printable(verdict.target, 60),
                status,
                _counts(verdict, by_target.get(verdict.target, [])),
                printable(profile.why, 200),
            ]
        )
    profile_name = verdicts[0].profiles[0].profile
    title = f"verdict per target (profile {profile_name}, the rule of the HTML report):"
    return "\n".join(
        [title, *("  " + line for line in _grid(["target", "verdict", "checks", "why"], body))]
    )


def render_run_summary(document: dict[str, Any], records: Sequence[CheckRecord]) -> str:
    """What `conformance run` prints at the end: table and findings, interop grid, verdicts."""
    records = list(records)
    parts = [render_table(records), "", render_interop(records)]
    verdicts = render_verdicts(document, records)
    if verdicts:
        parts += ["", verdicts]
    return "\n".join(parts)
