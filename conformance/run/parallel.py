"""A session's checks of different targets, side by side.

Each target has its own child process, so the checks of two targets are independent: a worker
thread takes one target's checks at a time (in plan order) and measures them
(``RunSession.measure``); the calling thread alone writes each record as it comes and reports
it. Two workers on a 2-core machine keep both cores busy while one target waits on its
child (the reference evaluator alone is a third of the default run's check time).

``CONFORMANCE_CHECK_WORKERS`` sets the number of workers (1: one target after the other);
default ``min(2, CPUs)``. The results file keeps the plan order at the end; while the run goes
it is in the order the records came. Stopping (Ctrl-C, SIGTERM) is the calling thread's: the
workers finish nothing more once it stops waiting, and the session's close kills the children
they wait on.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from conformance.results.records import CheckRecord

if TYPE_CHECKING:
    from conformance.run.plan import CheckPlan
    from conformance.run.session import RunSession

WORKERS_ENV = "CONFORMANCE_CHECK_WORKERS"
# Runtimes whose checks take longest go first, so the other worker fills in beside them
# (measured on the default run, 2 cores: IREE 120 s of check time with a cold compile cache,
# 4 s warm; the onnx reference evaluator 24-28 s; every other target 3-21 s). In plan order
# IREE came last and ran alone for two minutes.
SLOW_FIRST = ("iree", "onnx.reference")
POLL_S = 0.2  # how often the calling thread looks up from waiting (so signals reach it)
STOP_WAIT_S = 5.0  # a bound on waiting for the workers to end once stopped


def check_workers() -> int:
    raw = os.environ.get(WORKERS_ENV, "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    return max(1, min(2, os.cpu_count() or 1))


class _Stopped(Exception):
    pass


def _slowness(session: RunSession, target: str) -> int:
    """0 for the slowest runtimes (SLOW_FIRST, in that order), else after them (a stable sort
    keeps the plan order among the rest)."""
    runtime = session.target(target).runtime
    return SLOW_FIRST.index(runtime) if runtime in SLOW_FIRST else len(SLOW_FIRST)


def run_side_by_side(
    session: RunSession,
    plans: Sequence[CheckPlan],
    on_record: Callable[[CheckRecord], None],
    workers: int,
) -> list[CheckRecord]:
    """Measure ``plans`` (none already written) with ``workers`` threads, one target each at a
    time; write and report each record in the calling thread; return them in plan order. The
    caller closes the runners."""
    by_target: dict[str, list[CheckPlan]] = {}
    for plan in plans:
        by_target.setdefault(plan.target, []).append(plan)
    for target in by_target:  # every child process is made by this thread's session
        session.runner(target)
    targets: queue.Queue[str] = queue.Queue()
    for target in sorted(by_target, key=lambda name: _slowness(session, name)):
        targets.put(target)
    results: queue.Queue[CheckRecord | BaseException | None] = queue.Queue()
    stop = threading.Event()

    def work() -> None:
        try:
            while not stop.is_set():
                try:
                    target = targets.get_nowait()
                except queue.Empty:
                    return
                for plan in by_target[target]:
                    if stop.is_set():
                        raise _Stopped()
                    results.put(session.measure(plan))
        except _Stopped:
            pass
        except BaseException as error:  # noqa: BLE001 - re-raised in the calling thread
            results.put(error)
        finally:
            results.put(None)  # this worker is done

    threads = [
        threading.Thread(target=work, name=f"checks-{i}", daemon=True)
        for i in range(min(workers, len(by_target)))
    ]
    for thread in threads:
        thread.start()
    done: list[CheckRecord] = []
    running = len(threads)
    try:
        while running:
            try:
                item = results.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                session.writer.add(item)
                done.append(item)
                on_record(item)
    finally:
        stop.set()
        if running:  # stopped early: unblock the workers (their children go), let them end
            session.close_runners()
            for thread in threads:
                thread.join(timeout=STOP_WAIT_S)
            session.close_runners()  # any child a worker started meanwhile
    order = {plan.check_id: index for index, plan in enumerate(session.plans)}
    for plan in plans:  # plans of the caller's own (compare's) keep the order they were given
        order.setdefault(plan.check_id, len(order))
    checks = session.document["checks"]
    checks.sort(key=lambda check: order.get(check.get("id"), len(order)))
    session.writer.flush()
    return sorted(done, key=lambda record: order[record.check_id])  # plan order, as written
