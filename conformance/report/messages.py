"""The informative part of a runtime's message, and the cause that identical findings share.

A runtime's error can run to thousands of characters (a compiler's command line, MLIR types,
temp paths); cutting it at a fixed length kept the noise and lost the point (IREE's
``failed to legalize operation 'torch.operator' that was explicitly marked ille…`` lost the
operator's name). The rules live in ``conformance.findings`` so that the terminal summary, the
HTML report and the Markdown summary show the same part and group the same findings; the
drill-down keeps the whole message.
"""

from __future__ import annotations

from conformance.findings import group_key, informative_part

SUMMARY_CHARS = 320  # what a table cell shows
FULL_CHARS = 20_000  # what the drill-down shows of one message (the results file keeps it all)


def informative(message: str, limit: int = SUMMARY_CHARS) -> str:
    """A one-line summary of ``message`` of at most ``limit`` characters that keeps what
    identifies the problem (for a compiler diagnostic: the error line and the operator)."""
    return informative_part(message, limit)


def cause(message: str) -> str:
    """What identical findings share: the summary with numbers and temp paths blanked, so the
    same failure on another data set (another margin, another batch size) groups with it."""
    return group_key(message)
