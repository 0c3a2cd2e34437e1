"""Run a target in a child process, so a crash or a hang costs one check, never the run.

The parent sends requests over a pipe and waits a bounded time for each answer.
A child that dies (abort, segfault) or does not answer in time is killed and replaced on
the next request. The benchmarks use the same ChildProcess (conformance.bench.worker).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from conformance.targets.interface import Outputs, TargetError

_CONTEXT = multiprocessing.get_context("spawn")  # no fork: runtimes hold threads
# Starting the child (Python, numpy, the runtime's import) is not the target's work: it gets
# its own, generous bound, so a busy machine cannot turn start-up into a timed-out check.
STARTUP_TIMEOUT_S = 120.0


class ChildCrashed(TargetError):
    """The child process died while serving the request."""


class ChildTimedOut(TargetError):
    """The child process did not answer in time; it was killed."""


def serve_requests(conn: Connection, handle: Callable[[str, Any], Any]) -> None:
    """Child side of ChildProcess: say ready, then answer each (request, payload) until the pipe closes."""
    conn.send(("ready", None))
    while True:
        try:
            request, payload = conn.recv()
        except EOFError:
            return
        try:
            conn.send(("ok", handle(request, payload)))
        except Exception as error:  # noqa: BLE001 - every failure goes back to the parent as text
            message = (
                str(error) if isinstance(error, TargetError) else f"{type(error).__name__}: {error}"
            )
            conn.send(("error", message))


def _serve(conn: Connection, target_name: str) -> None:
    """Child main for a target: ("load", path) loads an artifact, ("run", feeds) runs it."""
    from conformance.targets import get_target

    try:
        target = get_target(target_name)
    except TargetError as error:
        conn.send(("error", str(error)))
        return
    sessions: list = []  # the loaded session, if any

    def handle(request: str, payload: Any) -> Any:
        if request == "load":
            while sessions:
                sessions.pop().close()
            sessions.append(target.load(Path(payload)))
            return None
        if request == "run" and sessions:
            return sessions[0].run(payload)
        raise TargetError(
            f"unexpected request {request!r}" if request != "run" else "no model loaded"
        )

    serve_requests(conn, handle)


class ChildProcess:
    """One spawned child that serves requests over a pipe, every wait bounded.

    ``serve(conn, *args)`` runs in the child: it sends ("ready", None) once it can serve (or
    ("error", message) and returns), then answers each (request, payload) with ("ok", value)
    or ("error", message). A child that dies is reported as ChildCrashed, one that does not
    answer in time is killed and reported as ChildTimedOut.
    """

    def __init__(self, serve: Callable[..., None], args: tuple) -> None:
        parent, child = _CONTEXT.Pipe()
        self._process = _CONTEXT.Process(target=serve, args=(child, *args), daemon=True)
        self._process.start()
        child.close()
        self._conn: Connection | None = parent
        try:
            self._answer(STARTUP_TIMEOUT_S, "start-up")
        except TargetError:
            self.close()
            raise

    @property
    def alive(self) -> bool:
        return self._conn is not None and self._process.is_alive()

    def ask(self, request: str, payload: Any, timeout_s: float) -> Any:
        assert self._conn is not None, "the child was closed"
        try:
            self._conn.send((request, payload))
        except (BrokenPipeError, ConnectionResetError) as error:
            raise self._crashed() from error
        return self._answer(timeout_s, request)

    def _answer(self, timeout_s: float, what: str) -> Any:
        assert self._conn is not None
        try:
            if not self._conn.poll(timeout_s):
                self.close()
                raise ChildTimedOut(
                    f"no answer to {what} within {timeout_s:g} s; the process was killed"
                )
            status, value = self._conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError) as error:
            raise self._crashed() from error
        if status == "error":
            raise TargetError(value)
        return value

    def _crashed(self) -> ChildCrashed:
        self._process.join(timeout=5)
        code = self._process.exitcode
        self.close()
        return ChildCrashed(f"the process died (exit code {code})")

    def close(self) -> None:
        if self._process.is_alive():
            self._process.kill()
        self._process.join(timeout=5)
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

    def _ask(self, request: str, payload: Any) -> Any:
        if self._child is None or not self._child.alive:
            self._loaded = None
            self._child = ChildProcess(_serve, (self.target_name,))
        return self._child.ask(request, payload, self.timeout_s)

    def load(self, artifact_path: Path) -> None:
        if self._loaded != artifact_path or self._child is None or not self._child.alive:
            self._loaded = None
            self._ask("load", str(artifact_path))
            self._loaded = artifact_path

    def run(self, feeds: dict) -> Outputs:
        assert self._loaded is not None, "load() first"
        return self._ask("run", feeds)

    def close(self) -> None:
        if self._child is not None:
            self._child.close()
        self._child, self._loaded = None, None
