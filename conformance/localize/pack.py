"""The pack uses it too: every numeric runtime finding of a `conformance run` localised.

For each check that failed on values on the runtime's account, the artifact's float64 rewrite
(usermodel.reference) is the per-node reference, the target's own child process (the session's
runner) runs the marked model, and the first diverging node and the reproducer go into
the results document's "localization" section (reproducers in ``repro/<target>/<case>/``), for
the report's drill-down. Native targets (eager torch / tf) have no ONNX graph to mark: skipped.
A localisation an earlier run made of the same failure is taken from the localisation cache
(conformance.localize.cache) and says so (``"cached": true``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx

from conformance.compare.tolerance import Tolerance
from conformance.localize.cache import LocalizationCache, cache_key
from conformance.localize.cache import enabled as cache_enabled
from conformance.usermodel.reference import Reference, ReferenceError, reference_for

if TYPE_CHECKING:
    from conformance.results.records import CheckRecord
    from conformance.run.plan import CheckPlan
    from conformance.run.session import RunSession

LOCALIZATION = "localization"  # the results document's section
MAX_FINDINGS = 20  # localised per run (each costs a few runs of the model on the target)


@dataclass
class FindingContext:
    run_dir: Path
    tolerance: Tolerance
    reference: Reference


def _ignore(_: str) -> None:
    pass


def localize_run(
    session: RunSession, message: Callable[[str], None] = _ignore
) -> dict[str, Any] | None:
    """Localise the session's numeric runtime findings into the results document's
    "localization" section (written to the results file); the section, or None when there was
    nothing to localise."""
    from conformance.run.plan import NATIVE
    from conformance.usermodel.comparison import failing_on_values, jsonable

    plans = {p.check_id: p for p in session.plans}
    failing = [
        r
        for r in failing_on_values(session.records())
        if r.check_id in plans and r.exporter != NATIVE
    ]
    if not failing:
        return None
    # One localisation per (target, artifact): its other failing data sets share the graph and
    # almost always the cause, and each localisation costs several runs (IREE: compiles).
    also: dict[tuple[str, str, str], list[str]] = {}
    for r in failing:
        also.setdefault((r.target, r.model, r.exporter), []).append(r.check_id)
    firsts = {ids[0] for ids in also.values()}
    failing = [r for r in failing if r.check_id in firsts]
    entries: list[dict[str, Any]] = []
    cache = LocalizationCache() if cache_enabled() else None
    try:
        for record in failing[:MAX_FINDINGS]:
            plan = plans[record.check_id]
            sample = dict(plan.artifact.inputs(plan.data_set.index))
            key = cache_key(
                plan.artifact.path,
                session.target(record.target).as_dict(),
                sample,
                plan.tolerance,
                record.outputs,
            )
            entry = cache.get(key, session.run_dir) if cache is not None else None
            if entry is None:
                message(f"localising {record.check_id}")
                entry = _localize(session, plan, record, sample)
                if cache is not None:
                    cache.put(key, entry, session.run_dir)
            else:
                message(f"{record.check_id}: localised by an earlier run (localisation cache)")
            entry.update(model=record.model, exporter=record.exporter)
            entry["same_artifact"] = also[(record.target, record.model, record.exporter)][1:]
            message(f"{record.check_id}: {entry.get('summary', entry.get('error'))}")
            entries.append(entry)
    finally:
        session.close_runners()
    section: dict[str, Any] = jsonable(
        {"localizations": entries, "left_out": max(0, len(failing) - MAX_FINDINGS)}
    )
    session.document[LOCALIZATION] = section
    session.writer.flush()
    return section


def _localize(
    session: RunSession, plan: CheckPlan, record: CheckRecord, sample: dict[str, Any]
) -> dict[str, Any]:
    """One failing check localised on the target's own child process."""
    from conformance.localize.localize import localize_record

    model = onnx.load(str(plan.artifact.path))
    try:
        reference = reference_for(model, [sample])
    except ReferenceError as error:
        return {"check": record.check_id, "error": f"no float64 reference: {error}"}
    context = FindingContext(session.run_dir, plan.tolerance, reference)
    runner = session.runner(record.target)
    return localize_record(runner, model, context, sample, record, plan.artifact.path)
