"""Plain-text summary table of check records (for the terminal and CI logs)."""

from __future__ import annotations

from collections import Counter, defaultdict

from conformance.results.records import PASSED, CheckRecord

SYMBOL = {
    "passed": "ok",
    "failed": "FAIL",
    "error": "ERR",
    "crashed": "CRASH",
    "timed-out": "TIMEOUT",
    "skipped": "skip",
}


def cell(record: CheckRecord) -> str:
    margin = (
        f" {record.margin:.2g}"
        if record.margin is not None and record.margin != float("inf")
        else ""
    )
    return f"{SYMBOL[record.verdict]}{margin}"


def render_table(records: list[CheckRecord]) -> str:
    """Rows: model/exporter/target; columns: test data sets; cells: verdict and margin."""
    rows: dict[tuple[str, str, str], dict[int, str]] = defaultdict(dict)
    for record in records:
        rows[(record.model, record.exporter, record.target)][record.data_set] = cell(record)
    sets = sorted({r.data_set for r in records})
    header = ["model", "exporter", "target", *(f"set{i}" for i in sets)]
    body = [[*key, *(cells.get(i, "") for i in sets)] for key, cells in rows.items()]
    widths = [max(len(str(row[i])) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)) for row in [header, *body]]
    counts = Counter(r.verdict for r in records)
    lines.append(
        f"{len(records)} checks: "
        + ", ".join(f"{counts[v]} {v}" for v in SYMBOL if counts[v])
        + "  (cells: verdict and margin = worst error / tolerance; set0 batch 1, set1 batch 4, "
        "set2 batch 4 at the second sequence length)"
    )
    for blame, title in (
        (
            "exporter",
            "exporter findings (the artifact fails on the reference evaluator too; recorded in the pack)",
        ),
        ("target", "runtime findings (the artifact is good; the target diverges)"),
    ):
        found = [r for r in records if r.verdict != PASSED and r.attributed_to == blame]
        if found:
            lines.append(f"{len(found)} {title}:")
            lines += [f"  {r.check_id} {r.verdict}: {one_line(r.problems[0])}" for r in found]
    return "\n".join(lines)


def interop_view(records: list[CheckRecord]) -> dict[tuple[str, str], list[str]]:
    """(model, target) -> exporters whose artifact did not pass every data set (empty: interoperable)."""
    view: dict[tuple[str, str], set[str]] = defaultdict(set)
    for record in records:
        failing = view[(record.model, record.target)]
        if record.verdict != PASSED:
            failing.add(record.exporter)
    return {key: sorted(value) for key, value in view.items()}


def render_interop(records: list[CheckRecord]) -> str:
    """Rows: models; columns: targets; a cell is "ok" when the torch- and TF-exported artifacts all pass."""
    view = interop_view(records)
    targets = list(dict.fromkeys(r.target for r in records))
    models = list(dict.fromkeys(r.model for r in records))
    header = ["interop", *targets]
    body = [
        [m, *("ok" if not view[(m, t)] else "x " + ",".join(view[(m, t)]) for t in targets)]
        for m in models
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in [header, *body])


def one_line(problem: str, width: int = 240) -> str:
    """A runtime's message can span lines (tract's cause chains): one line of it for the table."""
    text = " ".join(problem.split())
    return text if len(text) <= width else text[: width - 1] + "…"
