"""Results file -> one self-contained HTML report (and a Markdown summary).

Everything here reads the results document only: view data (``model``) is built from it,
then rendered by Jinja2 templates with autoescaping on, since target, model and problem
texts come from vendors and are untrusted.
"""

from conformance.report.command import ReportError, report_command, write_markdown, write_report

__all__ = ["ReportError", "report_command", "write_markdown", "write_report"]
