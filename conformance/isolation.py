"""Run a target in a child process, so a crash or a hang costs one check, never the run.

The parent sends requests over a pipe and waits a bounded time for each answer.
A child that dies (abort, segfault) or does not answer in time is killed and replaced on
the next request. The benchmarks use the same ChildProcess (conformance.bench.worker).
Children are forks of a fork server (started once per parent, before any runtime is imported
anywhere near it, with numpy and the suite imported): milliseconds each instead of a fresh
interpreter; each child takes the parent's environment as it is when the child starts.

The terminal belongs to the suite: a child's stdout and stderr (a runtime's log lines, an
abort message) go to a capture file that the parent reads with ``take_stderr()``, so a check
record can carry what the runtime said. A child never outlives its parent and leaves quietly
when the parent is gone (SIGTERM, SIGKILL): no traceback, no orphan. Ctrl-C is the parent's to
handle (it records the run as interrupted and closes its children), so the child ignores SIGINT.
"""

from __future__ import annotations

import contextlib
import faulthandler
import multiprocessing
import os
import re
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from conformance.targets.interface import AdapterError, Outputs, TargetError, TargetInfo
from conformance.usermodel.early import start_fork_server

# No fork of the parent: runtimes hold threads. A fork server, started once per parent
# process before any runtime is imported there, has numpy and the suite imported: each child
# is a fork of it (milliseconds) instead of a fresh interpreter (~0.2 s each).
_CONTEXT = multiprocessing.get_context("forkserver")
# Starting the child (Python, numpy, the runtime's import) is not the target's work: it gets
# its own, generous bound, so a busy machine cannot turn start-up into a timed-out check.
STARTUP_TIMEOUT_S = 120.0
# What a check record keeps of a child's output: the last part, where the failure is.
STDERR_LIMIT_CHARS = 20_000
# How often a child looks whether its parent is still there.
ORPHAN_POLL_S = 0.5
# The signal that asks a child for its stacks before it is killed for a timeout (POSIX only).
STACK_SIGNAL: signal.Signals | None = getattr(signal, "SIGUSR1", None)
STACK_DUMP_WAIT_S = 2.0
ADAPTER_ERROR = "adapter-error"  # the answer's status when the adapter, not the runtime, failed
_SGR = re.compile(r"\x1b\[[0-9;]*m")  # colour codes (ORT's red [E:onnxruntime:...] lines)


def start_children_early() -> None:
    """Start the fork server now, in the background (it returns at once), so its start-up
    overlaps with the caller's own work; the first child then forks at once. Idempotent.
    (conformance.usermodel.early holds the server's preload list: `conformance compare`
    starts it from there before this module is imported.)"""
    start_fork_server()


@contextlib.contextmanager
def native_stderr_captured() -> Iterator[list[str]]:
    """For the block, file descriptor 2 goes to a temporary file: what native code in this
    process writes on stderr (TensorFlow's absl start-up lines, which ignore
    TF_CPP_MIN_LOG_LEVEL) stays off the terminal. The list yielded holds the captured text
    once the block is left (also when it raised), for the caller to keep in a log file.

    For code that must run in the CLI's own process (importing TensorFlow to list its GPUs,
    a live re-export); a target's checks run in a child whose output is captured anyway.
    """
    captured: list[str] = []
    _flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield captured
        finally:
            _flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            captured.append(_SGR.sub("", capture.read().decode("utf-8", errors="replace")))


class ChildCrashed(TargetError):
    """The child process died while serving the request."""


class ChildTimedOut(TargetError):
    """The child process did not answer in time; it was killed."""


def serve_requests(conn: Connection, handle: Callable[[str, Any], Any]) -> None:
    """Child side of ChildProcess: say ready, then answer each (request, payload) until the
    pipe closes."""
    conn.send(("ready", None))
    while True:
        try:
            request, payload = conn.recv()
        except EOFError:
            return
        try:
            answer = ("ok", handle(request, payload))
        except Exception as error:  # noqa: BLE001 - every failure goes back to the parent as text
            message = (
                str(error) if isinstance(error, TargetError) else f"{type(error).__name__}: {error}"
            )
            # An adapter's bug stays one across the pipe: it is never the runtime's finding.
            answer = (ADAPTER_ERROR if isinstance(error, AdapterError) else "error", message)
        _flush()  # what the runtime printed for this request is captured before the answer
        conn.send(answer)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # closed, or None without a console
            pass


def _leave_quietly() -> None:
    """The parent is gone: exit now, without a traceback and without running anything else."""
    _flush()
    os._exit(0)


def _parent_alive(parent_pid: int) -> bool:
    try:
        os.kill(parent_pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch_parent(parent_pid: int, server_pid: int) -> None:
    # The child's OS parent is the fork server; the suite's process is the one that reads the
    # answers: when either is gone, nobody does.
    while os.getppid() == server_pid and _parent_alive(parent_pid):
        time.sleep(ORPHAN_POLL_S)
    _leave_quietly()


def _die_with_parent() -> None:
    """Linux: the kernel kills the child when the parent dies, even if the child is stuck in C."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # the watcher thread still ends an orphan


def _child_main(
    serve: Callable[..., None],
    capture_path: str,
    parent_pid: int,
    pdeathsig: bool,
    environment: dict[str, str],
    conn: Connection,
    *args: Any,
) -> None:
    """Every child starts here: output into the capture file, tied to its parent, then ``serve``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    capture = os.open(capture_path, os.O_WRONLY | os.O_APPEND)
    _flush()
    os.dup2(capture, 1)
    os.dup2(capture, 2)
    os.close(capture)
    # A runtime that crashes the process (segfault, abort) leaves the Python stack of the
    # request in the capture, so the crashed check's record says where.
    faulthandler.enable(file=2)
    if STACK_SIGNAL is not None:
        faulthandler.register(STACK_SIGNAL, file=2, all_threads=True)
    if pdeathsig:
        _die_with_parent()
    os.environ.clear()
    os.environ.update(environment)  # the parent's, now (the fork server's is older)
    if not _parent_alive(parent_pid):
        _leave_quietly()
    threading.Thread(target=_watch_parent, args=(parent_pid, os.getppid()), daemon=True).start()
    try:
        serve(conn, *args)
    except (BrokenPipeError, ConnectionResetError, EOFError):
        _leave_quietly()  # the parent closed the pipe (or died) while we were answering
    _flush()


def _serve(conn: Connection, target_name: str) -> None:
    """Child main for a target: ("load", path) loads an artifact, ("run", feeds) runs it,
    ("describe", None) answers (unavailable reason, None) or (None, the checked TargetInfo)."""
    from conformance.targets import get_target

    try:
        target = get_target(target_name)
    except TargetError as error:
        conn.send((ADAPTER_ERROR if isinstance(error, AdapterError) else "error", str(error)))
        return
    sessions: list = []  # the loaded session, if any

    def handle(request: str, payload: Any) -> Any:
        if request == "load":
            while sessions:
                sessions.pop().close()
            sessions.append(target.load(Path(payload)))
            facts = sessions[0].load_facts()
            return dict(facts) if isinstance(facts, dict) else {}
        if request == "run" and sessions:
            return sessions[0].run(payload)
        if request == "describe":
            reason = target.availability()
            return (reason, None) if reason else (None, target.info())
        raise TargetError(
            f"unexpected request {request!r}" if request != "run" else "no model loaded"
        )

    serve_requests(conn, handle)


class ChildProcess:
    """One spawned child that serves requests over a pipe, every wait bounded.

    ``serve(conn, *args)`` runs in the child: it sends ("ready", None) once it can serve (or
    ("error", message) and returns), then answers each (request, payload) with ("ok", value),
    ("error", message) or (ADAPTER_ERROR, message). A child that dies is reported as
    ChildCrashed, one that does not answer in time is asked for its stacks, killed and
    reported as ChildTimedOut. Its output is captured: ``take_stderr()``.
    """

    def __init__(self, serve: Callable[..., None], args: tuple) -> None:
        parent, child = _CONTEXT.Pipe()
        handle, capture_path = tempfile.mkstemp(prefix="conformance-child-", suffix=".log")
        self._capture = os.fdopen(handle, "r+b")
        self._taken = ""  # read from the capture file, not yet taken
        # The kernel's parent-death signal follows the thread that forked the child: the fork
        # server's only thread, which lives as long as the server (it leaves when we are gone),
        # whichever of our threads asked for the child.
        pdeathsig = True
        start_children_early()
        self._process = _CONTEXT.Process(
            target=_child_main,
            args=(serve, capture_path, os.getpid(), pdeathsig, dict(os.environ), child, *args),
            daemon=True,
        )
        # The pipe and the capture file are shared by the thread that asks and any thread that
        # closes (Ctrl-C closes every child while workers wait on theirs): the lock orders them.
        # A pipe in use is closed by its asker when it wakes (the child's death wakes it), never
        # under it: a descriptor closed under a waiting thread may be reused by another pipe.
        self._lock = threading.Lock()
        self._conn: Connection | None = parent
        self._asking = False
        self._closed = False
        try:
            self._process.start()
            child.close()
            self._answer(parent, STARTUP_TIMEOUT_S, "start-up")
        except BaseException:  # a failed start-up, or Ctrl-C during it: no child left behind
            self.close()
            raise
        finally:
            os.unlink(capture_path)  # the child holds it open; nothing is left behind on a kill

    @property
    def alive(self) -> bool:
        return not self._closed and self._process.is_alive()

    def ask(self, request: str, payload: Any, timeout_s: float) -> Any:
        with self._lock:
            conn = self._conn
            if self._closed or conn is None:
                raise ChildCrashed("the process was closed")
            self._asking = True
        try:
            try:
                conn.send((request, payload))
            except (BrokenPipeError, ConnectionResetError) as error:
                raise self._crashed() from error
            return self._answer(conn, timeout_s, request)
        finally:
            with self._lock:
                self._asking = False
                if self._closed:
                    self._close_pipe()

    def _answer(self, conn: Connection, timeout_s: float, what: str) -> Any:
        try:
            if not conn.poll(timeout_s):
                self._dump_stacks()
                self.close()
                raise ChildTimedOut(
                    f"no answer to {what} within {timeout_s:g} s; the process was killed"
                )
            status, value = conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError) as error:
            raise self._crashed() from error
        with self._lock:
            self._drain()  # keeps the capture file small when nobody takes it (benchmarks)
        if status == ADAPTER_ERROR:
            raise AdapterError(value)
        if status == "error":
            raise TargetError(value)
        return value

    def _dump_stacks(self) -> None:
        """Before a child that does not answer is killed: ask it for its threads' stacks (the
        fault handler answers even when the runtime holds the GIL in C), so the timed-out
        check's record says where it hung. Best effort, a bounded wait."""
        if STACK_SIGNAL is None or not self._process.is_alive() or self._process.pid is None:
            return
        before = self._capture_size()
        try:
            os.kill(self._process.pid, STACK_SIGNAL)
        except OSError:
            return
        deadline, size = time.monotonic() + STACK_DUMP_WAIT_S, before
        while time.monotonic() < deadline:
            time.sleep(0.05)
            grown = self._capture_size()
            if grown < 0 or (grown > before and grown == size):  # closed; or written, not growing
                return
            size = grown

    def _capture_size(self) -> int:
        with self._lock:
            return -1 if self._capture.closed else os.fstat(self._capture.fileno()).st_size

    def _crashed(self) -> ChildCrashed:
        self._process.join(timeout=5)
        code = self._process.exitcode
        self.close()
        return ChildCrashed(f"the process died (exit code {code})")

    def take_stderr(self) -> str:
        """What the child wrote (stderr and stdout) since the last call, colour codes removed;
        at most the last STDERR_LIMIT_CHARS characters."""
        with self._lock:
            self._drain()
            text, self._taken = self._taken, ""
        return text

    def _drain(self) -> None:
        if self._capture.closed:
            return
        # The child appends (O_APPEND): emptying the file after reading keeps it small and
        # loses nothing written later.
        size = os.fstat(self._capture.fileno()).st_size
        if not size:
            return
        # Only the end is kept: a chatty runtime cannot fill the parent's memory.
        self._capture.seek(max(0, size - 4 * STDERR_LIMIT_CHARS))
        data = self._capture.read()
        self._capture.truncate(0)
        text = _SGR.sub("", data.decode("utf-8", errors="replace"))
        self._taken = (self._taken + text)[-STDERR_LIMIT_CHARS:]

    def kill(self) -> None:
        """Signal the child to die, without waiting: closing many children, signal them all
        first, then close each (its wait then overlaps the others')."""
        if self._process.is_alive():
            self._process.kill()

    def close(self) -> None:
        """Kill the child and close what it used; safe from any thread, any number of times."""
        self.kill()
        if self._process.pid is not None:  # started
            self._process.join(timeout=5)
        with self._lock:
            self._closed = True
            if not self._asking:  # else the asker closes the pipe as it wakes
                self._close_pipe()
            self._drain()  # what a crashed or killed child said stays available to take_stderr
            self._capture.close()

    def _close_pipe(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None


class IsolatedTarget:
    """A target served by a child process; ``load`` and ``run`` mirror Target/Session."""

    def __init__(self, target_name: str, timeout_s: float) -> None:
        self.target_name = target_name
        self.timeout_s = timeout_s
        self._child: ChildProcess | None = None
        self._loaded: Path | None = None
        self._stderr = ""  # what children replaced since the last take_stderr() said
        # What the latest load said (Session.load_facts: {"compile_cache": "hit"}, ...), and
        # how many loads said each compile_cache outcome.
        self.load_facts: dict[str, Any] = {}
        self.compile_cache_counts: dict[str, int] = {}

    def _ask(self, request: str, payload: Any, timeout_s: float | None = None) -> Any:
        if self._child is None or not self._child.alive:
            self._loaded = None
            self._replace_child()
        assert self._child is not None
        return self._child.ask(request, payload, self.timeout_s if timeout_s is None else timeout_s)

    def describe(self) -> tuple[str | None, TargetInfo | None]:
        """Asked in the target's child (starting it): why the target is unavailable here, or
        its checked ``info()``. The runtime is imported there, in the process that runs the
        checks, not in the parent; the import is start-up, bounded like it (TargetError, or
        AdapterError for an adapter's broken describe(), as in the parent)."""
        reason, info = self._ask("describe", None, max(self.timeout_s, STARTUP_TIMEOUT_S))
        return reason, info

    def _replace_child(self) -> None:
        if self._child is not None:
            self._child.close()
            self._stderr += self._child.take_stderr()
        self._child = None
        self._child = ChildProcess(_serve, (self.target_name,))

    def take_stderr(self) -> str:
        """What the target's child processes wrote on stderr (and stdout) since the last call:
        the part of a runtime's log that belongs to the check just run. Bounded to the last
        STDERR_LIMIT_CHARS characters; colour codes removed."""
        text = self._stderr + (self._child.take_stderr() if self._child is not None else "")
        self._stderr = ""
        return text[-STDERR_LIMIT_CHARS:]

    def load(self, artifact_path: Path) -> None:
        if self._loaded != artifact_path or self._child is None or not self._child.alive:
            self._loaded, self.load_facts = None, {}
            facts = self._ask("load", str(artifact_path))
            self.load_facts = dict(facts) if isinstance(facts, dict) else {}
            cache = self.load_facts.get("compile_cache")
            if isinstance(cache, str):
                self.compile_cache_counts[cache] = self.compile_cache_counts.get(cache, 0) + 1
            self._loaded = artifact_path

    def run(self, feeds: dict) -> Outputs:
        assert self._loaded is not None, "load() first"
        return self._ask("run", feeds)

    def kill(self) -> None:
        """Signal the child to die, without waiting (close() waits)."""
        child = self._child
        if child is not None:
            child.kill()

    def close(self) -> None:
        child, self._child, self._loaded = self._child, None, None  # a worker may close it too
        if child is not None:
            child.close()
            self._stderr = (self._stderr + child.take_stderr())[-STDERR_LIMIT_CHARS:]
