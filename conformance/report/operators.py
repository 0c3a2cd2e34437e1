"""The operators section of the HTML report: op x target matrix, grouped by domain.

``operators_section(document)`` returns an HTML fragment (empty when the results have no
``ops`` section); each cell says passed/tested cases and lists the cases that did not pass with
their category and figures (a <details> per cell). Every string from the results is escaped.
Wiring the fragment into the report page is the report's (conformance/report/).
"""

from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path
from typing import Any

from conformance.ops import judge, scoring
from conformance.ops.records import OpRecord, records_of

CSS_CLASS = {
    scoring.ALL: "op-all",
    scoring.SOME: "op-some",
    scoring.NONE: "op-none",
    scoring.NOT_TESTABLE: "op-nt",
    scoring.UNTESTED: "op-untested",
}


STYLE = (
    "<style>#operators td.op-all{background:#dff0d8}#operators td.op-some{background:#fcf8e3}"
    "#operators td.op-none{background:#f2dede}#operators td.op-nt{background:#eee}"
    "#operators table{border-collapse:collapse}#operators td,#operators th"
    "{border:1px solid #ccc;padding:2px 6px}</style>"
)


ROUNDED_NOTE = "expected output computed in float64 and rounded to {dtype} by onnx's generator"


def _rounded_mark(rounded: list[OpRecord]) -> str:
    """A cell's note on its cases whose expected outputs onnx computed in float64 and rounded
    (an exact runtime may differ from them by half an ulp)."""
    if not rounded:
        return ""
    names = ", ".join(r.case for r in rounded)
    title = f"{len(rounded)} case(s) with {ROUNDED_NOTE.format(dtype='the output dtype')}: {names}"
    return f' <abbr class="op-rounded" title="{html.escape(title)}">f64&rarr;{len(rounded)}</abbr>'


def _cell(score: scoring.OpScore, failing: list[OpRecord], rounded: list[OpRecord]) -> str:
    text = f"{score.passed}/{score.tested}" if score.tested else scoring.MARKS[score.score]
    mark = _rounded_mark(rounded)
    if not failing:
        return f'<td class="{CSS_CLASS[score.score]}">{html.escape(text)}{mark}</td>'
    items = []
    for record in failing:
        figures = ""
        if record.figures and record.category == judge.FAILED_VALUES:
            f = record.figures
            figures = f" (max abs {f['max_abs']}, min rtol {f['min_rtol']})"
        if record.expected_rounded_from:
            figures += f"; {ROUNDED_NOTE.format(dtype='the output dtype')}"
        reason = record.problems[0] if record.problems else ""
        items.append(
            f"<li>{html.escape(record.case)}: {html.escape(record.category)}"
            f"{html.escape(figures)}<br><small>{html.escape(reason[:300])}</small></li>"
        )
    return (
        f'<td class="{CSS_CLASS[score.score]}"><details><summary>{html.escape(text)}{mark}'
        f"</summary><ul>{''.join(items)}</ul></details></td>"
    )


def operators_section(document: dict[str, Any]) -> str:
    ops = document.get("ops")
    if not isinstance(ops, dict):
        return ""
    records = records_of(document)
    targets = list(dict.fromkeys(r.target for r in records))
    table = scoring.op_scores(records, targets)
    failing: dict[tuple[str, str], list[OpRecord]] = defaultdict(list)
    rounded: dict[tuple[str, str], list[OpRecord]] = defaultdict(list)
    for record in records:
        if record.set == "node" and record.category != judge.PASSED:
            failing[(record.op_key, record.target)].append(record)
        if record.set == "node" and record.expected_rounded_from:
            rounded[(record.op_key, record.target)].append(record)
    by_domain: dict[str, list[str]] = defaultdict(list)
    for op in table:
        by_domain[op.split(":")[0] if ":" in op else "ai.onnx"].append(op)
    case_set = ops.get("case_set", {})
    parts = [
        '<section id="operators">' + STYLE + "<h2>Operators</h2>",
        f"<p>case set {html.escape(str(case_set.get('name', '?')))} "
        f"(onnx {html.escape(str(case_set.get('onnx_version', '?')))}); rule rtol "
        f"{html.escape(str(ops.get('rule', {}).get('rtol')))} atol "
        f"{html.escape(str(ops.get('rule', {}).get('atol')))}; headline: op types whose every "
        "case passes; <abbr>f64&rarr;n</abbr>: n of the cell's cases have an expected output "
        "that onnx's generator computed in float64 and rounded to the output dtype (an exact "
        "runtime may differ from it by half an ulp; nothing is widened for it)</p>"
        "<table><tr><th>target</th><th>op types all-pass</th></tr>",
    ]
    for target in targets:
        count = scoring.headline(table, target).get(scoring.ALL, 0)
        parts.append(f"<tr><td>{html.escape(target)}</td><td>{count}</td></tr>")
    parts.append("</table>")
    for domain in sorted(by_domain):
        parts.append(f"<h3>{html.escape(domain)}</h3><table><tr><th>op</th>")
        parts += [f"<th>{html.escape(t)}</th>" for t in targets]
        parts.append("</tr>")
        for op in by_domain[domain]:
            cells = "".join(
                _cell(table[op][t], failing.get((op, t), []), rounded.get((op, t), []))
                for t in targets
            )
            parts.append(f"<tr><td>{html.escape(op)}</td>{cells}</tr>")
        parts.append("</table>")
    parts.append("</section>")
    return "\n".join(parts)


def add_section(report_html: Path, document: dict[str, Any]) -> bool:
    """Until the report renders it itself: the operators section before </body> of a written
    report.html (once). True when it was added."""
    text = report_html.read_text(encoding="utf-8")
    section = operators_section(document)
    if not section or 'id="operators"' in text or "</body>" not in text:
        return False
    report_html.write_text(
        text.replace("</body>", STYLE + section + "</body>", 1), encoding="utf-8"
    )
    return True
