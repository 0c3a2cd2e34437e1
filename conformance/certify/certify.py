"""`conformance certify`: run what the profiles require on one target and write the bundle.

The checks run through `conformance run`'s engine (execute_run), the benchmarks through the bench
engine (run_benchmarks); the profile outcomes are computed by the verifier's own code (judge), and
the finished bundle is verified before certify reports success, so a bundle certify writes is one
verify accepts.
"""

from __future__ import annotations

import contextlib
import shlex
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

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
from conformance.certify.profiles import Profile, models_of, select
from conformance.certify.verify import verify_bundle
from conformance.results.document import (
    RESULTS_JSON,
    ResultsWriter,
    command_line,
    load_document,
    new_document,
)
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


def run_checks(
    request: CertifyRequest, context: SpecContext, profiles: tuple[Profile, ...], run_dir: Path
) -> None:
    from conformance.run import RunRequest, execute_run

    with_checks = [p for p in profiles if p.checks]
    if not with_checks:
        document = new_document(context.pack.manifest, {}, command_line())
        from conformance.engine import describe_targets, resolve_targets

        document["targets"] = describe_targets(resolve_targets([request.target]))
        ResultsWriter(run_dir / RESULTS_JSON, document).finish("complete")
        return
    code = execute_run(
        RunRequest(
            context.pack.directory,
            run_dir,
            [request.target],
            union(with_checks, "models"),
            union(with_checks, "exporters"),
            False,
            request.timeout_s,
        )
    )
    if code not in (0, 1):
        raise CertifyError(
            f"the conformance run stopped (exit code {code}); see its messages above"
        )


def run_perf(
    request: CertifyRequest,
    context: SpecContext,
    profiles: tuple[Profile, ...],
    run_dir: Path,
    progress: Progress,
) -> None:
    from conformance.bench.runner import run_benchmarks

    path = run_dir / RESULTS_JSON
    for profile in profiles:
        need = profile.benchmarks
        if need is None:
            continue
        writer = ResultsWriter(path, load_document(path))
        models = [m.name for m in models_of(context.pack, need.models)]
        progress(
            f"benchmarks for profile {profile.name}: {need.mode} mode, {', '.join(need.scenarios)}"
        )
        run_benchmarks(
            writer,
            context.pack,
            [request.target],
            models,
            (),
            need.mode,
            need.scenarios,
            progress=progress,
        )


def bundle_files(
    run_dir: Path, request: CertifyRequest, attested: dict, log: list[str]
) -> dict[str, bytes]:
    from conformance.report import ReportError, write_report

    results_path = run_dir / RESULTS_JSON
    try:
        report = write_report(results_path, run_dir / "report.html").read_bytes()
    except (ReportError, OSError) as error:
        raise CertifyError(f"cannot write the report: {error}") from error
    document = load_document(results_path)
    return {
        bundle.RESULTS: results_path.read_bytes(),
        bundle.REPORT: report,
        bundle.ENVIRONMENT: strict_json.dumps(
            bundle.environment_document(document, request.target)
        ),
        bundle.SYSTEM: strict_json.dumps(
            bundle.system_document(attested, document, request.target)
        ),
        bundle.LOG: ("\n".join(log) + "\n").encode("utf-8"),
    }


def run_summary(run_dir: Path) -> list[str]:
    from conformance.results.document import records_of
    from conformance.summary import render_interop, render_table

    records = records_of(load_document(run_dir / RESULTS_JSON))
    return [render_table(records), "", render_interop(records)] if records else []


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
    attested = bundle.load_attested(request.system_path)
    key = keys.load_private(request.key_path) if request.key_path else None
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

    with run_folder(request.work_dir) as run_dir:
        run_checks(request, context, profiles, run_dir)
        log += run_summary(run_dir)
        run_perf(request, context, profiles, run_dir, note)
        document = load_document(run_dir / RESULTS_JSON)
        judged = judge_profiles(document, context, request.target, tuple(p.name for p in profiles))
        if judged.findings:
            raise CertifyError(
                "this run's own results break the certification rules (a suite bug): "
                + "; ".join(f.describe() for f in judged.findings[:5])
            )
        log += outcome_lines(judged.outcomes) + [f"finished {bundle.utc_now()}"]
        files = bundle_files(run_dir, request, attested, log)
        manifest = bundle.manifest_for(document, request.target, judged.outcomes, files)
        path = bundle.write_bundle(request.out_path, files, manifest, key)
    verification = verify_bundle(path, context)
    if not verification.verified:
        raise CertifyError(
            "the bundle just written does not verify (a suite bug): "
            + "; ".join(f.describe() for f in verification.findings[:5])
        )
    return CertifyOutcome(path, request.target, judged.outcomes, key is not None)
