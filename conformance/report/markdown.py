"""A short Markdown summary of the same view, for a CI job summary (e.g. $GITHUB_STEP_SUMMARY)."""

from __future__ import annotations

import re

from conformance.report.model import ReportView
from conformance.report.signs import number

FINDINGS_LISTED = 30
CHANGES_LISTED = 30


def md(value: object) -> str:
    """Untrusted text made inert in Markdown: no HTML, no table breaks, no links or emphasis."""
    text = str(value).replace("\n", " ")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_\[\]|#!~])", r"\\\1", text)


def verdict_table(view: ReportView) -> list[str]:
    verdicts = list(view.totals)
    lines = [
        f"| target | {view.profile} | " + " | ".join(verdicts) + " | exporter findings |",
        "|---|---|" + "---:|" * (len(verdicts) + 1),
    ]
    for tv in view.verdicts:
        status = tv.profiles[0].status
        icon = (
            "\u2714"
            if tv.profiles[0].conformant
            else "\u25cc"
            if status in ("not run", "incomplete")
            else "\u2718"
        )
        note = " (negative control)" if tv.negative_control else ""
        lines.append(
            f"| {md(tv.target)}{note} | {icon} {status} | "
            + " | ".join(str(tv.counts[v]) for v in verdicts)
            + f" | {tv.exporter_findings} |"
        )
    return lines


def findings_lines(view: ReportView) -> list[str]:
    controls = {tv.target for tv in view.verdicts if tv.negative_control}
    runtime = sorted(
        (f for f in view.findings if f.check.record.attributed_to != "exporter"),
        key=lambda f: f.check.record.target in controls,
    )  # honest targets first
    if not runtime:
        return ["No findings on a runtime's account."]
    checks = sum(len(f.data_sets) for f in runtime)
    shown = f" (first {FINDINGS_LISTED})" if len(runtime) > FINDINGS_LISTED else ""
    lines = [f"**{len(runtime)} findings on a runtime's account** ({checks} checks){shown}:", ""]
    for finding in runtime[:FINDINGS_LISTED]:
        record = finding.check.record
        data_sets = ", ".join(c.record.data_set_label for c in finding.data_sets)
        lines.append(
            f"- {md(record.model)} / {md(record.exporter)} on {md(record.target)} "
            f"({md(data_sets)}): {record.verdict}, margin {number(finding.margin)}: "
            f"{md(finding.check.summary)}"
        )
    return lines


def comparison_lines(view: ReportView) -> list[str]:
    c = view.comparison
    if c is None:
        return []
    counts = (
        f"{c.count('regressed')} regressed, {c.count('recovered')} recovered, "
        f"{c.count('changed')} changed, "
        f"{c.count('moved')} margins moved, {c.count('new')} new, {c.count('gone')} gone; "
        f"{len(c.figures)} benchmark figures moved beyond noise."
    )
    lines = ["", "### Against the baseline", ""]
    lines += [f"> **Warning: not like with like:** {md(w)}." for w in c.warnings]
    lines += [""] if c.warnings else []
    lines += [counts, ""]
    for change in [ch for ch in c.checks if ch.kind in ("regressed", "recovered")][:CHANGES_LISTED]:
        assert change.before is not None and change.after is not None
        lines.append(
            f"- {change.kind}: {md(change.check_id)} "
            f"({change.before.verdict} \u2192 {change.after.verdict})"
        )
    for figure in c.figures[:CHANGES_LISTED]:
        lines.append(
            f"- {md(figure.benchmark)} {figure.figure}: "
            f"{number(figure.before)} \u2192 {number(figure.after)} "
            f"({figure.change_pct:+.1f}%, {'worse' if figure.worse else 'better'})"
        )
    return lines


def headline(view: ReportView) -> list[str]:
    honest = [tv for tv in view.verdicts if not tv.negative_control]
    conformant = [tv for tv in honest if tv.profiles[0].conformant]
    totals = ", ".join(f"{n} {v}" for v, n in view.totals.items() if n)
    run = {k: md(v) for k, v in view.run.items() if isinstance(v, str)}
    verdict = (
        f"**{len(conformant)} of {len(honest)}** targets conformant for the "
        f"**{view.profile}** profile; "
        f"{sum(view.totals.values())} checks" + (f": {totals}." if totals else ".")
    )
    provenance = (
        f"Run {run.get('status', '?')} {run.get('started_at', '?')}; "
        f"suite {run.get('suite_version', '?')}, "
        f"spec {run.get('spec_version', '?')}, pack digest {run.get('pack_digest', '?')[:16]}."
    )
    return [verdict, "", provenance, ""]


def accuracy_lines(view: ReportView) -> list[str]:
    """Reduced-precision runs: each accuracy check's figures (the report's precision section)."""
    if view.precision is None or not view.precision.accuracy:
        return []
    lines = [
        "",
        "### Accuracy (held-out split, against the fp32 golden's)",
        "",
        "| target | model / artifact | precision | verdict | accuracy | relative | tier | top-1 |",
        "|---|---|---|---|---:|---:|---|---:|",
    ]
    for a in view.precision.accuracy:
        r = a.record
        lines.append(
            f"| {md(r.target)} | {md(r.model)} / {md(r.exporter)} | {md(r.precision)} | "
            f"{md(r.verdict)} | {number(a.accuracy)} | {number(a.relative)} | "
            f"{md(a.tier or '-')} | {number(a.top1_agreement)} |"
        )
    return lines


def render_markdown(view: ReportView, report_name: str | None = None) -> str:
    lines = ["## Conformance report", "", *headline(view)]
    lines += verdict_table(view) + [""] + findings_lines(view) + accuracy_lines(view)
    lines += comparison_lines(view)
    if report_name:
        lines += ["", f"Full report: {md(report_name)}"]
    return "\n".join(lines) + "\n"
