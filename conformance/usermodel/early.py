"""`conformance compare` starts its targets' fork server as the CLI's first act.

Imported by conformance.cli before anything else: when the process is `conformance compare`
(the console script, or ``python -m conformance compare``), the fork server that makes the
targets' children (conformance.isolation) starts now, in the background, so its own start-up
(a fresh interpreter, numpy, the suite) overlaps the CLI's imports instead of following them
(~0.2-0.3 s of a small model's wall). Any other command, and any other program that imports
the CLI, starts nothing here.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

COMMAND_FILES = ("conformance", "__main__.py")  # the console script, python -m conformance


def compare_is_starting(argv: Sequence[str]) -> bool:
    """The command line is `conformance compare ...`."""
    return len(argv) > 1 and argv[1] == "compare" and Path(argv[0]).name in COMMAND_FILES


def start_if_compare(argv: Sequence[str] | None = None) -> bool:
    """Start the children's fork server when the command line is compare's; True if so."""
    if not compare_is_starting(sys.argv if argv is None else argv):
        return False
    from conformance.isolation import start_children_early

    start_children_early()
    return True


start_if_compare()
