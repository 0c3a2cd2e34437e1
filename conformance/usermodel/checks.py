"""compare's checks: one model on several targets, each target's checks in a thread of its own.

The targets are independent (one isolated child process each, the parent only waits on pipes),
so while one target loads or runs, another does too: up to one target per core. The records are
written to the results in plan order, each target's as soon as it is done. Without the session's
``measure`` (a check without the write) the plans run one after the other.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from conformance.results.records import CheckRecord
from conformance.run.plan import CheckPlan

if TYPE_CHECKING:
    from conformance.run.session import RunSession

Message = Callable[[str], None]


def run_plans(
    session: RunSession, plans: Sequence[CheckPlan], message: Message
) -> list[CheckRecord]:
    """Every plan's record, written to the results in plan order. The targets are independent
    (one child process each): with the session's ``measure`` (a check without the write), each
    target's plans run in a thread of their own, side by side, up to one per core."""
    measure = getattr(session, "measure", None)
    by_target: dict[str, list[CheckPlan]] = {}
    for plan in plans:
        by_target.setdefault(plan.target, []).append(plan)
    workers = min(len(by_target), os.cpu_count() or 1)
    if measure is None or workers < 2:
        return [_said(session.check(plan), message) for plan in plans]
    for target in by_target:  # the runners are made in this thread; their children start lazily
        if session.target(target).available:
            session.runner(target)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="compare-target")
    futures = [
        pool.submit(lambda group: [measure(p) for p in group], g) for g in by_target.values()
    ]
    records = []
    try:
        for future in futures:  # written in plan order, each target's as soon as it is done
            for record in future.result():
                session.writer.add(record)
                records.append(_said(record, message))
    except BaseException:
        session.close_runners()  # a worker waiting on a child is released by the child's end
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return records


def _said(record: CheckRecord, message: Message) -> CheckRecord:
    message(f"{record.check_id}: {record.verdict}")
    return record
