"""`conformance compare`'s start and end: its targets' fork server starts as the CLI's first
act, and it leaves at once when it is done (``exit_now``, from conformance.cli.console).

Imported by conformance.cli before anything else: when the process is `conformance compare`
(the console script, or ``python -m conformance compare``), the fork server that makes the
targets' children (conformance.isolation) starts now, in the background, so its own start-up
(a fresh interpreter, numpy, the suite) overlaps the CLI's imports instead of following them
(~0.2-0.3 s of a small model's wall); numpy's BLAS is given one thread first. Any other
command, and any other program that imports the CLI, starts and sets nothing here.

The fork server is started from here with the standard library only (its preload list lives
here, conformance.isolation uses the same): importing conformance.isolation first would import
the suite's targets (onnx among them) in this process before the server could start.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

COMMAND_FILES = ("conformance", "__main__.py")  # the console script, python -m conformance
# What the fork server imports before it forks any child: numpy and the suite's targets.
FORK_SERVER_PRELOAD = ("numpy", "conformance.isolation", "conformance.targets")


def fork_server_preload() -> list[str]:
    """The fork server's preload. A child runs the parent's main module again
    (multiprocessing's main fix-up): under the `conformance` command that imports the CLI, so
    the fork server has it imported already."""
    cli = ["conformance.cli"] if "conformance.cli" in sys.modules else []
    return [*FORK_SERVER_PRELOAD, *cli]


def start_fork_server() -> None:
    """Start the children's fork server now, in the background (it returns at once);
    idempotent. Standard library only: nothing of the suite is imported here."""
    import multiprocessing
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(fork_server_preload())
    forkserver.ensure_running()


def compare_is_starting(argv: Sequence[str]) -> bool:
    """The command line is `conformance compare ...`."""
    return len(argv) > 1 and argv[1] == "compare" and Path(argv[0]).name in COMMAND_FILES


# numpy's OpenBLAS starts a thread per core as numpy is imported, each spinning a while: ~50 ms
# of CPU in every process that imports it (here: this one and the fork server, whose children
# inherit it). Under compare the cores belong to the targets' children, so BLAS gets one
# thread unless the user says otherwise (measured on 2 cores, the 100-node model on 4 targets:
# 0.61 s -> 0.56 s wall).
BLAS_THREADS = {"OPENBLAS_NUM_THREADS": "1"}


def start_if_compare(argv: Sequence[str] | None = None) -> bool:
    """Under compare's command line: one BLAS thread (unless set), then the children's fork
    server; True if so. Before numpy is imported anywhere."""
    if not compare_is_starting(sys.argv if argv is None else argv):
        return False
    for name, value in BLAS_THREADS.items():
        os.environ.setdefault(name, value)
    start_fork_server()
    return True


def exit_now(code: object) -> NoReturn:
    """Leave with a SystemExit's ``code`` without the interpreter's teardown. Once compare has
    written its results and report and ended its children, the teardown only frees memory:
    69 ms of a 100-node model's 0.7 s wall, measured (strace: last write to exit_group)."""
    if isinstance(code, str):  # what SystemExit does with a message: print it, exit 1
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can reach it
            pass
    stop_fork_server()
    os._exit(code if isinstance(code, int) else 0)


def stop_fork_server() -> None:
    """End the children's fork server now, without its teardown (it would end on its own once
    we are gone, ~25 ms later, holding our stdout and stderr open until then: a caller that
    reads them waits for it). Its children, if any were left, die with it (parent-death
    signal)."""
    from multiprocessing import forkserver

    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)  # noqa: SLF001 - stdlib's
    if isinstance(pid, int) and pid > 0:
        try:
            os.kill(pid, signal.SIGTERM)  # the server sets no handler: it ends at once
        except OSError:
            pass


start_if_compare()
