"""The report's section for a user's model (`conformance compare`): what the reference was, and
for every failing (target, sample) the first diverging node, the per-node table (inherited +
introduced error) and the reproducer; and a pack run's localised numeric findings. Rendered from
the results document alone; every string from the model (node names, attributes) is escaped."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from conformance.untrusted import printable

SECTION_ID = "usermodel"
MAX_ROWS = 400  # per-node rows shown per failure (the JSON has them all)


def _text(value: object, limit: int = 300) -> str:
    return html.escape(printable(value, limit))


def _figure(value: Any) -> str:
    if value is None:
        return "inf"
    return f"{value:.3g}" if isinstance(value, (int, float)) else _text(value, 40)


def _row(row: Mapping[str, Any], first: int | None) -> str:
    total, introduced = row.get("total", {}), row.get("introduced", {})
    marks = []
    if (introduced.get("margin") or 0) > 1:
        marks.append("introduces")
    elif (total.get("margin") or 0) > 1:
        marks.append("inherits")
    cls = ' class="first"' if row.get("index") == first else ""
    return (
        f"<tr{cls}><td>{int(row.get('index', -1))}</td><td>{_text(row.get('node'), 120)}</td>"
        f"<td>{_text(row.get('op_type'), 40)}</td><td>{_figure(total.get('max_abs'))}</td>"
        f"<td>{_figure(total.get('margin'))}</td><td>{_figure(introduced.get('max_abs'))}</td>"
        f"<td>{_figure(introduced.get('margin'))}</td><td>{' '.join(marks)}"
        f"{_text(row.get('note', ''), 80)}</td></tr>"
    )


def _failure(entry: Mapping[str, Any]) -> str:
    parts = [f"<h3>{_text(entry.get('check'), 200)}</h3>"]
    if "error" in entry:
        return parts[0] + f"<p>{_text(entry['error'], 2000)}</p>"
    parts.append(f"<p><b>{_text(entry.get('summary'), 600)}</b></p>")
    found = entry.get("first_diverging") or {}
    if found:
        attributes = ", ".join(
            f"{_text(k, 60)}={_text(v, 120)}" for k, v in (found.get("attributes") or {}).items()
        )
        shapes = ", ".join(
            f"{_text(i.get('name'), 80)} {_text(i.get('shape'), 60)}"
            for i in found.get("inputs") or []
        )
        parts.append(
            f"<p>op {_text(found.get('op_type'), 60)}; attributes: {attributes or 'none'}; "
            f"inputs: {shapes or 'none'}</p>"
        )
    if entry.get("cached"):
        parts.append("<p>localised by an earlier run of the same failure (localisation cache)</p>")
    same = entry.get("same_artifact") or []
    if same:
        shown = ", ".join(_text(c, 200) for c in same[:20])
        parts.append(f"<p>stands for the artifact's other failing checks: {shown}</p>")
    marking = entry.get("marking") or {}
    if marking:
        parts.append(f"<p>marking: {_text(marking.get('note'), 300)}</p>")
    repro = entry.get("reproducer") or {}
    if repro:
        parts.append(
            f"<p>reproducer ({_text(repro.get('kind'), 40)}, {int(repro.get('nodes', 0))} "
            f"node(s), {'fails alone' if repro.get('fails_alone') else 'does NOT fail alone'}):"
            f' <a href="{_text(repro.get("folder"), 500)}">{_text(repro.get("folder"), 500)}'
            f"</a><br><code>{_text(repro.get('command'), 800)}</code></p>"
        )
    rows = entry.get("nodes") or []
    first = found.get("index") if found else None
    body = "".join(_row(r, first) for r in rows[:MAX_ROWS])
    more = (
        f"<p>{len(rows) - MAX_ROWS} more rows in the results file</p>"
        if len(rows) > MAX_ROWS
        else ""
    )
    parts.append(
        "<details><summary>per-node error (total = inherited + introduced; introduced = the "
        "node alone in float64 on the target's own inputs)</summary>"
        '<div class="table-wrap"><table><tr><th>#</th>'
        "<th>node</th><th>op</th><th>total max abs</th><th>total margin</th>"
        "<th>introduced max abs</th><th>introduced margin</th><th></th></tr>"
        f"{body}</table></div>{more}</details>"
    )
    return "".join(parts)


def _reference(reference: Mapping[str, Any]) -> str:
    """What the outputs were judged against: the framework's own float64 model where the
    Python API had one (the goldens), the float64 rewrite otherwise (always the per-node
    figures of the localisation)."""
    rewrite = _text(reference.get("description"), 1200)
    if not reference.get("golden"):
        return f"<p>reference: {rewrite}</p>"
    return (
        f"<p>reference: {_text(reference['golden'], 1200)}</p>"
        f"<p>per-node reference of the localisation: {rewrite}</p>"
    )


def render_usermodel_section(document: Mapping[str, Any]) -> str:
    """The HTML section (a fragment) for the results' "usermodel" section."""
    model = document.get("model") or {}
    reference = document.get("reference") or {}
    tolerance = document.get("tolerance") or {}
    samples = document.get("samples") or []
    failures = document.get("localizations") or []
    head = (
        f'<section id="{SECTION_ID}"><h2>Your model: {_text(model.get("name"), 100)}</h2>'
        f"<p>{_text(model.get('path') or 'given in memory', 400)}; "
        f"{int(model.get('nodes', 0))} nodes; {len(samples)} sample(s); tolerance atol "
        f"{_figure(tolerance.get('atol'))}, rtol {_figure(tolerance.get('rtol'))}</p>"
        + _reference(reference)
    )
    if not failures:
        return head + "<p>no failure on values to localise</p></section>"
    return head + "".join(_failure(e) for e in failures) + "</section>"


def render_findings_section(document: Mapping[str, Any]) -> str:
    """The section for a pack run's "localization": each numeric runtime finding's first
    diverging node and reproducer."""
    failures = document.get("localizations") or []
    left = int(document.get("left_out") or 0)
    more = f"<p>{left} more findings not localised</p>" if left else ""
    return (
        f'<section id="{SECTION_ID}"><h2>Where the numeric runtime findings start</h2>'
        + "".join(_failure(e) for e in failures)
        + more
        + "</section>"
    )


def usermodel_sections(document: Mapping[str, Any]) -> str:
    """The report's sections from a results document: "usermodel" (conformance compare) and
    "localization" (a pack run's localised findings); "" when it has neither."""
    parts = []
    usermodel = document.get("usermodel")
    if isinstance(usermodel, Mapping):
        parts.append(render_usermodel_section(usermodel))
    localization = document.get("localization")
    if isinstance(localization, Mapping):
        parts.append(render_findings_section(localization))
    return "".join(parts)


__all__ = ["render_findings_section", "render_usermodel_section", "usermodel_sections"]
