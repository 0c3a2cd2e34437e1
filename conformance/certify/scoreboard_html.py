"""Render the scoreboard as one self-contained HTML file, the report's way: Jinja2 with autoescaping
(target names, system descriptions and findings come from vendors and are untrusted), the report's
stylesheet inlined, and a Content-Security-Policy that allows no script and no network access."""

from __future__ import annotations

import jinja2
from markupsafe import Markup

from conformance.certify.scoreboard import Scoreboard
from conformance.report.html import STYLE, raw_asset
from conformance.report.html import environment as report_environment
from conformance.report.signs import number

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'"
)
FINDINGS_SHOWN = 8


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("conformance.certify", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = number
    return env


def render_scoreboard(board: Scoreboard) -> str:
    env = environment()
    style = raw_asset(report_environment(), STYLE) + "\n" + raw_asset(env, "scoreboard.css")
    return env.get_template("scoreboard.html.j2").render(
        board=board,
        csp=CSP,
        style=Markup(style),
        findings_shown=FINDINGS_SHOWN,
    )
