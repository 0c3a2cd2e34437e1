"""Run a target in a child process, so a crash or a hang costs one check, never the run.

The parent sends requests over a pipe and waits at most the check timeout for the answer.
A child that dies (abort, segfault) or does not answer in time is killed and replaced on
the next request.
"""
from __future__ import annotations

import multiprocessing
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from conformance.targets.interface import Outputs, TargetError

_CONTEXT = multiprocessing.get_context("spawn")  # no fork: runtimes hold threads
# Starting the child (Python, numpy, the runtime's import) is not the target's work: it gets
# its own, generous bound, so a busy machine cannot turn start-up into a timed-out check.
STARTUP_TIMEOUT_S = 120.0


class CheckCrashed(TargetError):
    """The target's process died while serving the request."""


class CheckTimedOut(TargetError):
    """The target did not answer within the check timeout."""


def _serve(conn: Connection, target_name: str) -> None:
    """Child main loop: ("load", path) and ("run", feeds) -> ("ok", value) | ("error", message)."""
    from conformance.targets import get_target

    session = None
    try:
        target = get_target(target_name)
    except TargetError as error:
        conn.send(("error", str(error)))
        return
    conn.send(("ready", None))
    while True:
        try:
            request, payload = conn.recv()
        except EOFError:
            return
        try:
            if request == "load":
                if session is not None:
                    session.close()
                session = target.load(Path(payload))
                conn.send(("ok", None))
            elif request == "run":
                if session is None:
                    raise TargetError("no model loaded")
                conn.send(("ok", session.run(payload)))
        except TargetError as error:
            conn.send(("error", str(error)))


class IsolatedTarget:
    """A target served by a child process; ``load`` and ``run`` mirror Target/Session."""

    def __init__(self, target_name: str, timeout_s: float) -> None:
        self.target_name = target_name
        self.timeout_s = timeout_s
        self._process: Any = None
        self._conn: Connection | None = None
        self._loaded: Path | None = None

    def _start(self) -> None:
        parent, child = _CONTEXT.Pipe()
        self._process = _CONTEXT.Process(target=_serve, args=(child, self.target_name), daemon=True)
        self._process.start()
        child.close()
        self._conn = parent
        self._loaded = None
        try:
            self._answer(STARTUP_TIMEOUT_S, "start-up")
        except TargetError:
            self.close()
            raise

    def _answer(self, timeout_s: float, what: str) -> Any:
        assert self._conn is not None
        try:
            if not self._conn.poll(timeout_s):
                self.close()
                raise CheckTimedOut(f"no answer to {what} within {timeout_s:g} s; the target process was killed")
            status, value = self._conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError) as error:
            code = self._exit_code()
            self.close()
            raise CheckCrashed(f"the target process died (exit code {code})") from error
        if status == "error":
            raise TargetError(value)
        return value

    def _request(self, request: str, payload: Any) -> Any:
        if self._process is None or not self._process.is_alive():
            self._start()
        assert self._conn is not None
        try:
            self._conn.send((request, payload))
        except (BrokenPipeError, ConnectionResetError) as error:
            code = self._exit_code()
            self.close()
            raise CheckCrashed(f"the target process died (exit code {code})") from error
        return self._answer(self.timeout_s, request)

    def _exit_code(self) -> int | None:
        self._process.join(timeout=5)
        return self._process.exitcode

    def load(self, artifact_path: Path) -> None:
        if self._loaded != artifact_path or self._process is None or not self._process.is_alive():
            self._loaded = None
            self._request("load", str(artifact_path))
            self._loaded = artifact_path

    def run(self, feeds: dict) -> Outputs:
        assert self._loaded is not None, "load() first"
        return self._request("run", feeds)

    def close(self) -> None:
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join(timeout=5)
        if self._conn is not None:
            self._conn.close()
        self._process, self._conn, self._loaded = None, None, None
