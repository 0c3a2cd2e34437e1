"""`conformance certify`: run what the profiles require on one target and write the bundle.

The checks and the benchmarks run in one run session (conformance.run), as `conformance run`'s
do, and certify reads its results document in memory; the profile outcomes are computed by the
verifier's own code (judge), and the finished bundle is verified before certify reports success,
so a bundle certify writes is one verify accepts.
"""

from __future__ import annotations

import contextlib
import shlex
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from conformance.certify import bundle, keys, strict_json
from conformance.certify.context import SpecContext
from conformance.certify.interface import (
    CertifyError,
    CertifyOutcome,
    CertifyRequest,
    CertifyUsageError,
    ProfileOutcome,
)
from conformance.certify.judge import judge_profiles
from conformance.certify.ops import OpsSelection, run_ops, table_member
from conformance.certify.profiles import Profile, models_of, select
from conformance.certify.verify import verify_bundle
from conformance.results.document import RESULTS_JSON, command_line
from conformance.run.plan import DEFAULT_PRECISION
from conformance.run.session import RunInputError, RunRequest, RunSession
from conformance.targets import TargetError, get_target

Progress = Callable[[str], None]


def check_target(name: str) -> None:
    try:
        reason = get_target(name).unavailable_reason()
    except TargetError as error:
        raise CertifyUsageError(str(error)) from error
    if reason:
        raise CertifyUsageError(
            f"{name} is not available here, so it cannot be certified here: {reason}"
        )


@contextlib.contextmanager
def run_folder(work_dir: Path | None) -> Iterator[Path]:
    if work_dir is not None:
        if (Path(work_dir) / RESULTS_JSON).exists():
            raise CertifyUsageError(f"{work_dir} already holds a run; certify needs a fresh folder")
        yield Path(work_dir)
        return
    with tempfile.TemporaryDirectory(prefix="conformance-certify-") as scratch:
        yield Path(scratch) / "run"


def union(profiles: list[Profile], field: str) -> list[str]:
    """The models (or exporters) the checks must cover: [] when any profile takes them all."""
    wanted = [getattr(p.checks, field) for p in profiles if p.checks]
    if any(w is None for w in wanted):
        return []
    return sorted({name for w in wanted for name in w})


def precision_of(profiles: tuple[Profile, ...]) -> str:
    """The precision the checks run at: the profiles' (one run serves one precision)."""
    wanted = {p.checks.precision for p in profiles if p.checks}
    if len(wanted) > 1:
        raise CertifyUsageError(
            f"profiles at different precisions ({', '.join(sorted(wanted))}): certify one at a time"
        )
    return wanted.pop() if wanted else DEFAULT_PRECISION


def open_run(
    request: CertifyRequest, context: SpecContext, profiles: tuple[Profile, ...], run_dir: Path
) -> RunSession:
    """The run session of a certification: the one target, the profiles' selection and
    precision, on the pack the context has already verified and found pinned."""
    with_checks = [p for p in profiles if p.checks]
    run_request = RunRequest(
        context.pack.directory,
        run_dir,
        [request.target],
        union(with_checks, "models") if with_checks else [],
        union(with_checks, "exporters") if with_checks else [],
        timeout_s=request.timeout_s,
        precision=precision_of(profiles),
        verify=False,
    )
    try:
        return RunSession.open(run_request)
    except RunInputError as error:
        raise CertifyUsageError(str(error)) from error


def run_checks(session: RunSession, profiles: tuple[Profile, ...], progress: Progress) -> None:
    if not any(p.checks for p in profiles):
        return
    todo = session.todo()
    progress(f"checks: {len(todo)} on {', '.join(session.targets)}")
    try:
        session.run_checks(todo)
    except KeyboardInterrupt as error:
        session.finish("interrupted")
        raise CertifyError("interrupted during the checks; nothing was certified") from error
    except RunInputError as error:  # the pack turned out malformed mid-run
        raise CertifyUsageError(str(error)) from error


def run_perf(
    session: RunSession,
    context: SpecContext,
    profiles: tuple[Profile, ...],
    progress: Progress,
) -> None:
    for profile in profiles:
        need = profile.benchmarks
        if need is None:
            continue
        models = [m.name for m in models_of(context.pack, need.models)]
        progress(
            f"benchmarks for profile {profile.name}: {need.mode} mode, {', '.join(need.scenarios)}"
        )
        session.bench(need.mode, need.scenarios, progress=progress, models=models, exporters=())


def run_operator_cases(
    session: RunSession,
    request: CertifyRequest,
    context: SpecContext,
    profiles: tuple[Profile, ...],
    progress: Progress,
) -> None:
    if not any(p.ops for p in profiles):
        return
    selection = OpsSelection(request.op_types, request.op_cases, request.op_sets)
    try:
        run_ops(session, request.target, selection, context.spec_version, progress)
    except KeyboardInterrupt as error:
        session.finish("interrupted")
        raise CertifyError(
            "interrupted during the operator cases; nothing was certified"
        ) from error


def bundle_files(
    session: RunSession, request: CertifyRequest, attested: dict[str, Any], log: list[str]
) -> dict[str, bytes]:
    from conformance.report import ReportError, write_report

    try:
        report = write_report(session.path, session.run_dir / "report.html").read_bytes()
    except (ReportError, OSError) as error:
        raise CertifyError(f"cannot write the report: {error}") from error
    document = session.document
    ops = (
        {bundle.OPS: strict_json.dumps(table_member(document["ops"], request.target))}
        if isinstance(document.get("ops"), dict)
        else {}
    )
    return {
        **ops,
        bundle.RESULTS: session.path.read_bytes(),  # the bytes signed are the file's own
        bundle.REPORT: report,
        bundle.ENVIRONMENT: strict_json.dumps(
            bundle.environment_document(document, request.target)
        ),
        bundle.SYSTEM: strict_json.dumps(
            bundle.system_document(attested, document, request.target)
        ),
        bundle.LOG: ("\n".join(log) + "\n").encode("utf-8"),
    }


def run_summary(session: RunSession) -> list[str]:
    from conformance.summary import render_run_summary

    records = session.records()
    return [render_run_summary(session.document, records)] if records else []


def outcome_lines(outcomes: tuple[ProfileOutcome, ...]) -> list[str]:
    lines = []
    for o in outcomes:
        lines.append(
            f"profile {o.profile}: {o.status.upper()} ({o.passed}/{o.required} required passed)"
        )
        lines += [f"  - {reason}" for reason in o.reasons]
    return lines


def certify(
    request: CertifyRequest, context: SpecContext, progress: Progress = lambda line: None
) -> CertifyOutcome:
    """Everything is checked before the (long) run: profiles, system description, key, target."""
    profiles = select(context.profiles, request.profiles)
    if not any(p.ops for p in profiles) and (
        request.op_types or request.op_cases or request.op_sets
    ):
        raise CertifyUsageError(
            "--op, --case and --set select operator cases: they need --profile ops"
        )
    attested = bundle.load_attested(request.system_path)
    key = keys.load_private(request.key_path) if request.key_path else None
    if any(p.ops for p in profiles):
        from conformance.ops.command import quiet_runtimes

        quiet_runtimes()  # before the session opens: ORT without spin-waiting, as `conformance ops`
    check_target(request.target)
    log = [
        f"command: {shlex.join(command_line())}",
        f"started {bundle.utc_now()}",
        f"target {request.target}; profiles {', '.join(p.name for p in profiles)}; "
        + f"spec {context.spec_version}; pack {context.pack_digest}",
    ]

    def note(line: str) -> None:
        log.append(line)
        progress(line)

    with (
        run_folder(request.work_dir) as run_dir,
        open_run(request, context, profiles, run_dir) as session,
    ):
        run_checks(session, profiles, note)
        log += run_summary(session)
        run_operator_cases(session, request, context, profiles, note)
        run_perf(session, context, profiles, note)
        session.finish("complete")
        document = session.document
        judged = judge_profiles(document, context, request.target, tuple(p.name for p in profiles))
        if judged.findings:
            raise CertifyError(
                "this run's own results break the certification rules (a suite bug): "
                + "; ".join(f.describe() for f in judged.findings[:5])
            )
        log += outcome_lines(judged.outcomes) + [f"finished {bundle.utc_now()}"]
        files = bundle_files(session, request, attested, log)
        manifest = bundle.manifest_for(document, request.target, judged.outcomes, files)
        path = bundle.write_bundle(request.out_path, files, manifest, key)
    verification = verify_bundle(path, context)
    if not verification.verified:
        raise CertifyError(
            "the bundle just written does not verify (a suite bug): "
            + "; ".join(f.describe() for f in verification.findings[:5])
        )
    return CertifyOutcome(path, request.target, judged.outcomes, key is not None)
