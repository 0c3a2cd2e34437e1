"""One run session: the spine every entry point opens (run, calibrate, certify, bench, pytest).

``RunSession.open(request)`` verifies the pack, resolves the targets, validates the selection and
the run folder, and opens (or resumes, or extends) the results document; every bad input ends in
one ``RunInputError`` before the first check runs. The session then runs checks (``check``,
``run_checks``) and benchmarks (``bench``) into that document, which it holds in memory
(``document``, ``records()``): nobody reads the results file back. The session never prints:
progress and messages go to the callbacks its caller passes, and only the CLI maps outcomes to
exit codes.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conformance.isolation import IsolatedTarget, start_children_early
from conformance.live import LIVE_PACK, NATIVE_TARGETS, LiveModeError, build_live_pack, live_section
from conformance.pack.hashing import PackManifestError, Verification
from conformance.pack.load import Pack
from conformance.results.document import (
    RESULTS_JSON,
    ResultsFileError,
    ResultsWriter,
    command_line,
    load_document,
    new_document,
    records_of,
)
from conformance.results.metadata import RunMetadata, Selection, TargetDescription, targets_of
from conformance.results.records import EXPORTER, NOT_PASSED, CheckRecord, SkipKind
from conformance.run.check import run_check, skipped
from conformance.run.inputs import (  # check_timeout_s: re-exported for callers
    RunInputError,
    check_timeout_s,
    other_pack,
    pin_warning,
    read_goldens,
    read_resumable,
    valid_timeout,
    validate_selection,
    verified_pack,
    writable_run_dir,
)
from conformance.run.plan import (
    DEFAULT_PRECISION,
    CheckPlan,
    check_precision_error,
    plan_checks,
)
from conformance.targets import Target, TargetError
from conformance.targets import choose_targets as choose_named_targets
from conformance.targets.interface import ARTIFACTS_ENV, TargetInfo

if TYPE_CHECKING:
    from conformance.bench.records import BenchRecord

__all__ = [
    "REPORTS_DIR",
    "RunInputError",
    "RunRequest",
    "RunSession",
    "StartedTargets",
    "check_timeout_s",
]

REPORTS_DIR = Path("reports")  # where run folders go by default (relative to the working folder)
ARTIFACTS_DIR = "artifacts"  # in the run folder: what targets keep of a failure
Message = Callable[[str], None]


def ignore(_: str) -> None:
    """The default callback: a session never prints."""


class Mode(enum.Enum):
    NEW = "new"  # a fresh run folder; an existing results file is refused
    RESUME = "resume"  # finish an interrupted run: its own targets and selection
    EXTEND = "extend"  # add records to an existing results file, or start one (bench)
    REPLACE = "replace"  # a fresh document over any existing file (pytest re-runs)


def default_run_dir(prefix: str = "") -> Path:
    return REPORTS_DIR / f"{prefix}{datetime.now().strftime('%Y%m%d-%H%M%S')}"


@dataclass(frozen=True)
class RunRequest:
    pack_dir: Path
    run_dir: Path
    targets: Sequence[str] = ()  # empty: every available default target
    models: Sequence[str] = ()
    exporters: Sequence[str] = ()
    resume: bool = False
    timeout_s: float | None = None  # per request to a target; None: the spec's check_timeout_s
    live: bool = False
    precision: str = DEFAULT_PRECISION
    extend: bool = False  # an existing results file gets records added (bench)
    replace: bool = False  # a fresh document overwrites an existing results file (pytest)
    results_name: str = RESULTS_JSON  # a pytest-xdist worker writes its own part file
    verify: bool = True  # False only for a pack the caller has verified already (certify)

    @property
    def mode(self) -> Mode:
        if self.resume:
            return Mode.RESUME
        if self.extend:
            return Mode.EXTEND
        return Mode.REPLACE if self.replace else Mode.NEW


def choose_targets(names: Sequence[str], live: bool = False) -> list[Target]:
    """A run's targets (targets.choose_targets), plus live mode's native targets. A bad name or
    option raises TargetError (InvalidTargetError) here, before any check."""
    return choose_named_targets(list(names), NATIVE_TARGETS if live else ())


def describe_target(target: Target) -> TargetDescription:
    reason = target.availability()
    return description_of(target.name, reason, None if reason else target.info())


def description_of(name: str, reason: str | None, info: TargetInfo | None) -> TargetDescription:
    """A target's description from its availability and (when available) its info()."""
    if reason or info is None:
        return TargetDescription.unavailable(name, reason or "unknown")
    return TargetDescription(
        name,
        True,
        runtime=info.runtime,
        version=info.version,
        device=info.device,
        options=dict(info.options),
        deterministic=info.deterministic,
    )


def describe_targets(
    targets: Sequence[Target], started: StartedTargets | None = None
) -> dict[str, Any]:
    """The results file's "targets" section: what each target is, or why it is unavailable
    (asked of its started child when ``started`` has one, else in this process)."""
    described = started.described() if started is not None else {}
    return {t.name: described.get(t.name) or describe_target(t).as_dict() for t in targets}


class StartedTargets:
    """Targets' child processes, started now and asked to describe their target (availability,
    ``info()``) in the background, one thread each, side by side. The runtimes are imported in
    the children that will run the checks (not a second time in the parent), while the caller
    does its own work (compare: the float64 reference). ``RunSession.open(request,
    started=...)`` adopts the children of the targets it runs; ``close()`` ends the others (and
    all of them when no session opens)."""

    def __init__(self, names: Sequence[str], run_dir: Path, timeout_s: float | None = None):
        timeout = valid_timeout(timeout_s)  # RunInputError, before any child starts
        os.environ[ARTIFACTS_ENV] = str((Path(run_dir) / ARTIFACTS_DIR).resolve())
        self.runners = {name: IsolatedTarget(name, timeout) for name in dict.fromkeys(names)}
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, len(self.runners)), thread_name_prefix="describe-target"
        )
        self._futures = {n: self._pool.submit(r.describe) for n, r in self.runners.items()}

    def described(self) -> dict[str, dict[str, Any]]:
        """Every target's description (waits for them); TargetError as describe() raises it."""
        return {
            name: description_of(name, *future.result()).as_dict()
            for name, future in self._futures.items()
        }

    def adopt(self, name: str) -> IsolatedTarget | None:
        """The started child of ``name`` (now the caller's to close), or None."""
        return self.runners.pop(name, None)

    def close(self) -> None:
        """End the children nobody adopted (once their describes are answered)."""
        self._pool.shutdown(wait=True)  # a child still starting is closed once it has started
        runners, self.runners = self.runners, {}
        for runner in runners.values():
            runner.close()


@dataclass(frozen=True)
class RunOutcome:
    """What a finished set of checks says, for the caller to turn into an exit code."""

    records: tuple[CheckRecord, ...]

    @property
    def target_findings(self) -> tuple[CheckRecord, ...]:
        """Checks that did not pass on a runtime's account (exporter findings excluded)."""
        return tuple(
            r for r in self.records if r.verdict in NOT_PASSED and r.attributed_to != EXPORTER
        )


@dataclass
class RunSession:
    """An open run: the pack, its run folder, its targets and its results document."""

    request: RunRequest
    pack: Pack
    writer: ResultsWriter
    verification: Verification | None = None  # of the pack, when the session verified it
    pin_warning: str | None = None
    timeout_s: float = 0.0
    created: bool = True  # this session started the results document (not resumed, extended)
    _runners: dict[str, IsolatedTarget] = field(default_factory=dict)
    # per target, how many loads said each compile-cache outcome ("hit", "miss", "off")
    compile_cache_loads: dict[str, dict[str, int]] = field(default_factory=dict)

    # ---- opening -------------------------------------------------------------------------
    @classmethod
    def open(
        cls, request: RunRequest, message: Message = ignore, started: StartedTargets | None = None
    ) -> RunSession:
        """Validate every input and open the results document; raises RunInputError. With
        ``started``, the targets it started are described by their children, which the
        session adopts (the caller still closes ``started``: the children left over)."""
        start_children_early()  # the fork server starts while the pack is verified
        timeout_s = valid_timeout(request.timeout_s)
        precision_error = check_precision_error(request.precision)
        if precision_error:
            raise RunInputError(precision_error)
        if request.resume and (request.targets or request.models or request.exporters):
            raise RunInputError(
                "--resume finishes the interrupted run with its own targets and selection: "
                "drop --target, --model and --exporter (or start a new run with --out)"
            )
        try:  # the targets first: a bad name or option fails before any work
            chosen = (
                [] if request.mode is Mode.RESUME else choose_targets(request.targets, request.live)
            )
            described = describe_targets(chosen, started)
        except TargetError as error:  # a bad name or option (InvalidTargetError), an adapter
            raise RunInputError(str(error)) from error  # whose describe() fails (AdapterError)
        verification = verified_pack(request.pack_dir) if request.verify else None
        try:
            pack = cls._open_pack(request, message)
            validate_selection(pack, request.models, request.exporters)
            read_goldens(pack, request.models)
            writable_run_dir(request.run_dir)
            writer, created = cls._open_writer(request, pack, described)
        except (PackManifestError, LiveModeError, TargetError) as error:
            raise RunInputError(str(error)) from error
        warning = pin_warning(Pack(request.pack_dir)) if request.live else pin_warning(pack)
        session = cls(request, pack, writer, verification, warning, timeout_s, created)
        for target in chosen:
            available = described[target.name]["available"]
            runner = started.adopt(target.name) if started is not None and available else None
            if runner is not None:
                runner.timeout_s = timeout_s
                session._runners[target.name] = runner
        return session

    @staticmethod
    def _open_pack(request: RunRequest, message: Message) -> Pack:
        """The shipped pack; in live mode a fresh export of it (built once per run folder)."""
        if not request.live:
            return Pack(request.pack_dir)
        live_dir = request.run_dir / LIVE_PACK
        if not (request.resume and (live_dir / "pack.json").exists()):
            writable_run_dir(request.run_dir)
            message(f"live mode: re-exporting the reference models into {live_dir}")
            build_live_pack(request.run_dir, list(request.models), progress=message)
        return Pack(live_dir, goldens_from=request.pack_dir)

    @staticmethod
    def _open_writer(
        request: RunRequest, pack: Pack, described: dict[str, Any]
    ) -> tuple[ResultsWriter, bool]:
        path = request.run_dir / request.results_name
        if request.mode is Mode.RESUME:
            document = read_resumable(path, pack, request.live)
            document["run"]["status"] = "running"
            return ResultsWriter(path, document), False
        if request.mode is Mode.EXTEND and path.is_file():
            try:
                document = load_document(path)
            except (OSError, ResultsFileError) as error:
                raise RunInputError(f"cannot add to {path}: {error}") from error
            other_pack(path, document.get("run") or {}, pack)
            for name, info in described.items():
                document["targets"].setdefault(name, info)
            return ResultsWriter(path, document), False
        if request.mode is Mode.NEW and path.exists():
            raise RunInputError(
                f"{path} exists; use --resume to finish it or --out for a new run folder"
            )
        document = new_document(
            pack.manifest,
            described,
            command_line(),
            list(request.models),
            list(request.exporters),
            request.precision,
        )
        if request.live:
            document["run"]["live"] = live_section(pack.directory, request.pack_dir)
        return ResultsWriter(path, document), True

    # ---- what the session holds ---------------------------------------------------------
    @property
    def path(self) -> Path:
        return self.writer.path

    @property
    def run_dir(self) -> Path:
        return self.request.run_dir

    @property
    def document(self) -> dict[str, Any]:
        """The results document, in memory (the file on disk is its latest flush)."""
        return self.writer.document

    @property
    def targets(self) -> dict[str, TargetDescription]:
        return targets_of(self.writer.document)

    def target(self, name: str) -> TargetDescription:
        return self.targets.get(name) or TargetDescription.unavailable(name, "unknown")

    @property
    def unavailable(self) -> dict[str, str]:
        return {n: t.reason for n, t in self.targets.items() if not t.available}

    @property
    def metadata(self) -> RunMetadata:
        """The results document's "run" section, typed (a snapshot: the document is the truth)."""
        return RunMetadata.from_dict(self.writer.document["run"])

    @property
    def selection(self) -> Selection:
        """On --resume, the interrupted run's own selection."""
        return self.metadata.selection

    @property
    def live(self) -> Mapping[str, Any] | None:
        return self.metadata.live

    @cached_property
    def plans(self) -> list[CheckPlan]:
        selection = self.selection
        return plan_checks(
            self.pack,
            list(self.targets),
            selection.models,
            selection.exporters,
            selection.precision,  # a resumed or extended document keeps its own
        )

    def todo(self) -> list[CheckPlan]:
        return [p for p in self.plans if not self.writer.has(p.check_id)]

    def records(self) -> list[CheckRecord]:
        return records_of(self.writer.document)

    def outcome(self) -> RunOutcome:
        return RunOutcome(tuple(self.records()))

    # ---- running ------------------------------------------------------------------------
    def runner(self, target: str) -> IsolatedTarget:
        """The target's isolated child process (started on first use; closed by close_runners):
        pack checks and other callers' cases (ops) share it."""
        if target not in self._runners:
            # what a target keeps of a failure (IREE's model.mlir) goes into the run folder,
            # which outlives the check; the child inherits this from the environment
            os.environ[ARTIFACTS_ENV] = str((self.run_dir / ARTIFACTS_DIR).resolve())
            self._runners[target] = IsolatedTarget(target, self.timeout_s)
        return self._runners[target]

    def measure(self, plan: CheckPlan) -> CheckRecord:
        """Run one check (or say why it is skipped); nothing is written. Checks of different
        targets may be measured from different threads at once, once ``runner(target)`` was
        first called for each from one thread."""
        description = self.target(plan.target)
        if not description.available:
            record = skipped(
                plan,
                SkipKind.TARGET_UNAVAILABLE,
                f"target unavailable: {description.reason or 'unknown'}",
            )
        else:
            try:
                record = run_check(
                    self.runner(plan.target),
                    plan,
                    description.deterministic,
                    description.options,
                )
            except PackManifestError as error:  # a test data file of the pack is malformed
                raise RunInputError(str(error)) from error
        return record

    def check(self, plan: CheckPlan) -> CheckRecord:
        """Run one check (or record why it is skipped) and write its record."""
        record = self.measure(plan)
        self.writer.add(record)
        return record

    def run_checks(
        self,
        plans: Sequence[CheckPlan] | None = None,
        on_record: Callable[[CheckRecord], None] = lambda record: None,
        keep_runners: bool = False,
    ) -> list[CheckRecord]:
        """Run every plan (default: the session's) not already in the results; each record is
        written as it comes. Targets run side by side (conformance.run.parallel: one worker
        per core, each target's checks in order); the targets' processes are closed at the end
        unless ``keep_runners`` (compare localises a failure in the child that ran it)."""
        from conformance.run.parallel import check_workers, run_side_by_side

        todo = [
            p for p in (self.plans if plans is None else plans) if not self.writer.has(p.check_id)
        ]
        workers = check_workers()
        try:
            if workers > 1 and len({p.target for p in todo}) > 1:
                return run_side_by_side(self, todo, on_record, workers)
            done = []
            for plan in todo:
                if self.writer.has(plan.check_id):  # a plan given twice
                    continue
                record = self.check(plan)
                done.append(record)
                on_record(record)
            return done
        except BaseException:
            self.close_runners()  # a worker waiting on a child is released by the child's end
            raise
        finally:
            if not keep_runners:
                self.close_runners()

    def bench(
        self,
        mode: str,
        scenarios: Sequence[str] = (),
        loadgen: bool = False,
        progress: Message = ignore,
        targets: Sequence[str] | None = None,
        models: Sequence[str] | None = None,
        exporters: Sequence[str] | None = None,
        compare_tools: bool = False,
    ) -> list[BenchRecord]:
        """Benchmarks after the checks, never beside them; each (model, target) in its own
        process. Defaults: the available targets and the session's selection."""
        from conformance.bench.runner import run_benchmarks

        self.close_runners()
        selection = self.selection
        chosen = [n for n, t in self.targets.items() if t.available] if targets is None else targets
        return run_benchmarks(
            self.writer,
            self.pack,
            list(chosen),
            list(selection.models if models is None else models),
            list(selection.exporters if exporters is None else exporters),
            mode,
            list(scenarios),
            loadgen,
            progress=progress,
            compare_tools=compare_tools,
        )

    def finish(self, status: str = "complete") -> None:
        self.close_runners()
        self.writer.finish(status)

    def close_runners(self) -> None:
        runners, self._runners = self._runners, {}
        for runner in runners.values():  # every child signalled first: their ends overlap
            runner.kill()
        for name, runner in runners.items():
            counts = self.compile_cache_loads.setdefault(name, {})
            for outcome, count in runner.compile_cache_counts.items():
                counts[outcome] = counts.get(outcome, 0) + count
            runner.close()

    def close(self) -> None:
        self.close_runners()

    def __enter__(self) -> RunSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
