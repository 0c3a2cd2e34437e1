"""Render the view data into one self-contained HTML file.

Autoescaping is on for every template: target, model and problem texts are untrusted. The page
forbids all network access itself (a Content-Security-Policy meta tag: no default source, images
only as data: URIs) and allows exactly one script, by its hash, so even an attribute slipped past
escaping could not run.
"""

from __future__ import annotations

import base64
import functools
import hashlib

import jinja2
from markupsafe import Markup

from conformance.report.model import COMPACT_ABOVE, DETAILED_CHECKS, FINDINGS_SHOWN, ReportView
from conformance.report.signs import LEGEND, number, short_margin

SCRIPT = "report.js"
STYLE = "report.css"


@functools.cache
def environment() -> jinja2.Environment:
    """One environment per process: it keeps its compiled templates (compiling the report's
    templates cost 0.15-0.4 s of every report, H7's profile of `conformance compare`)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("conformance.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = number
    env.filters["margin"] = short_margin
    return env


def raw_asset(env: jinja2.Environment, name: str) -> str:
    """A template file read verbatim (not rendered): the stylesheet and the script."""
    assert env.loader is not None
    source, _, _ = env.loader.get_source(env, name)
    return source.strip()


def content_security_policy(script: str) -> str:
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    )


def render_html(view: ReportView) -> str:
    env = environment()
    script = raw_asset(env, SCRIPT)
    return env.get_template("report.html.j2").render(
        view=view,
        legend=LEGEND,
        csp=content_security_policy(script),
        script=Markup(script),
        style=Markup(raw_asset(env, STYLE)),
        finding_rows=FINDINGS_SHOWN,
        detailed_checks=DETAILED_CHECKS,
        compact_above=COMPACT_ABOVE,
    )
