"""The conformance checks as pytest items: glue only; the run session does the work.

``pytest --conformance [--target T ...]`` collects one collector per target and, under it, one
item per check, named by the check's id in results.json::

    conformance/ort:cpu::mlp-tf2onnx-batch4-ort:cpu

so JUnit XML reads ``classname="conformance.ort:cpu" name="mlp-tf2onnx-batch4-ort:cpu"``, and
``--collect-only``, ``-k``, ``--deselect`` and ``--lf`` see ordinary items. Each item carries the
markers ``model_<model>``, ``exporter_<exporter>`` and ``target_<target>`` (every character that
is not a letter, digit or ``_`` written as ``_``), registered when the run starts: select exactly
with ``-m "model_mlp and target_ort_cpu"`` (``-k mlp`` is a substring match and also selects
``embedding_mlp``). A failure's first line says the verdict, the margin and the first problem,
so pytest's short summary and JUnit's ``message`` carry the reason.

The run writes the same results file as ``conformance run``. Under pytest-xdist each worker
writes a part file; the controller merges them in plan order.

``--profile fp16`` (``int8``, ``bf16``: every profile of spec/profiles.json with checks) runs the
checks at that precision: the pack's fp16 or int8 artifacts (bf16: the fp32 ones, on a target's
bf16 mode), judged at the precision's tolerances, plus one accuracy item per artifact and target
for a model with a task (``conformance/ort:cpu::digits-torch-script.int8-tensor-accuracy-ort:cpu``).

``--profile ops`` collects the operator cases instead (conformance/ops), one item per case and
target, ``conformance/ort:cpu::ops-test_softmax_large_number-ort:cpu``; ``--op`` and ``--case``
select cases. A case on the target's known-findings list (spec/ops/known) that fails is an
expected failure (xfail), one that now passes fails ("fixed: take it off the list"), a case not
testable here is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from conformance.bench import pytest_hooks
from conformance.bench.pytest_hooks import CONTEXT, BenchContext, bench_items
from conformance.options import add_pytest_options
from conformance.results.document import RESULTS_JSON, load_document
from conformance.results.records import EXPORTER, PASSED, SKIPPED, CheckRecord
from conformance.run.plan import DEFAULT_PRECISION, CheckPlan, check_profiles
from conformance.run.session import REPORTS_DIR, RunInputError, RunRequest, RunSession
from conformance.spec import PACK_DIR
from conformance.untrusted import printable

STATE = pytest.StashKey["ConformanceState"]()
ROOT = "conformance"  # node ids: conformance/<target>::<check id>
STDERR_LINES = 12  # of a failed check's captured stderr, in its failure text
PARTS = "results.gw*.json"  # pytest-xdist workers' part files, merged by the controller


def marker_name(kind: str, value: str) -> str:
    """``model_mlp``, ``exporter_torch_script``, ``target_ort_cpu``: a name ``-m`` can parse."""
    return f"{kind}_{re.sub(r'[^A-Za-z0-9_]', '_', value)}"


def figure(value: float) -> str:
    """A margin for people: three significant figures (31.7, 0.0109, inf)."""
    return f"{value:.3g}"


def reason(record: CheckRecord) -> str:
    """One line for pytest's short summary: the verdict, the margin, the first problem."""
    head = (
        record.verdict
        if record.margin is None
        else f"{record.verdict}, margin {figure(record.margin)}"
    )
    if not record.problems:
        return head
    first = record.problems[0].strip().splitlines()[0] if record.problems[0].strip() else ""
    more = len(record.problems) - 1
    return f"{head}: {first}" + (f" (+{more} more)" if more else "")


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    if not pluginmanager.is_registered(pytest_hooks):  # --bench: items on pytest-benchmark
        pluginmanager.register(pytest_hooks, pytest_hooks.__name__)
    group = parser.getgroup("conformance", "ML inference conformance checks")
    group.addoption("--conformance", action="store_true", help="add one item per conformance check")
    add_pytest_options(group.addoption)
    group.addoption(
        "--conformance-pack", default=str(PACK_DIR), help="pack folder (default: the shipped pack)"
    )
    group.addoption(
        "--conformance-id",
        action="append",
        default=[],
        dest="conformance_ids",
        metavar="NODEID",
        help="only this item, or a target's items (conformance/ort:cpu); repeatable. A node id "
        "given as an argument (as pytest prints it) does the same",
    )
    group.addoption(
        "--profile",
        dest="conformance_profile",
        choices=(*check_profiles(), "ops"),
        default="core",
        help="core: the pack's fp32 checks (default); fp16 / int8: the pack's fp16 / int8 "
        "artifacts; bf16: the fp32 artifacts on a target's bf16 mode "
        "(openvino:cpu:precision=bf16), each judged at its precision's tolerances and by task "
        "accuracy; ops: every ONNX node case (conformance ops)",
    )
    group.addoption(
        "--op", action="append", default=[], dest="conformance_ops", help="--profile ops: op type"
    )
    group.addoption(
        "--case",
        action="append",
        default=[],
        dest="conformance_cases",
        help="--profile ops: case name glob",
    )
    group.addoption(
        "--conformance-out",
        default=str(REPORTS_DIR / "pytest"),
        help=f"run folder for results.json (default: {REPORTS_DIR / 'pytest'})",
    )


class ConformanceState:
    """The pytest run: a caller of the run session, like ``conformance run``."""

    def __init__(self, config: pytest.Config) -> None:
        worker = getattr(config, "workerinput", {}).get("workerid")
        profile = config.getoption("conformance_profile")
        if profile == "ops":  # each case is a fresh tiny ORT session: no spin-waiting (H6)
            from conformance.ops.command import quiet_runtimes

            quiet_runtimes()
        request = RunRequest(
            pack_dir=Path(config.getoption("conformance_pack")),
            run_dir=Path(config.getoption("conformance_out")),
            targets=tuple(config.getoption("conformance_targets")),
            models=tuple(config.getoption("conformance_models")),
            exporters=tuple(config.getoption("conformance_exporters")),
            timeout_s=config.getoption("conformance_timeout_s"),
            results_name=f"results.{worker}.json" if worker else RESULTS_JSON,
            replace=True,  # every pytest run writes a fresh results file (there is no --resume)
            precision=check_profiles().get(profile, DEFAULT_PRECISION),
        )
        self.session = RunSession.open(request)
        self.ops: Any = None  # --profile ops: the OpsProfile, and its plans
        self.op_plans: list[Any] = []
        if profile == "ops":
            self.plans: list[CheckPlan] = []
            self._open_ops(config)
        else:
            self.plans = self.session.plans
        if not worker:  # before any worker starts: no part file of an earlier run gets merged
            for part in self.session.run_dir.glob(PARTS):
                part.unlink()

    def _open_ops(self, config: pytest.Config) -> None:
        from conformance.ops.cases import CaseSetError, load_case_set
        from conformance.ops.profile import OpsProfile

        self.ops = OpsProfile.open(self.session, load_case_set())
        try:
            self.op_plans = self.ops.plans(
                config.getoption("conformance_ops"), config.getoption("conformance_cases")
            )
        except CaseSetError as error:
            raise RunInputError(str(error)) from error

    def targets(self) -> list[str]:
        plans = [p.target for p in self.op_plans] if self.ops is not None else []
        return list(dict.fromkeys([*plans, *(plan.target for plan in self.plans)]))

    def available(self) -> list[str]:
        return [name for name, target in self.session.targets.items() if target.available]


def _register_markers(config: pytest.Config, values: Iterable[tuple[str, str]]) -> None:
    for kind, value in sorted(set(values)):
        config.addinivalue_line(
            "markers", f"{marker_name(kind, value)}: conformance items of {kind} {value!r}"
        )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "conformance: a conformance check generated by --conformance"
    )
    if not config.getoption("conformance", default=False):
        return
    try:
        state = ConformanceState(config)
    except RunInputError as error:
        raise pytest.UsageError(str(error)) from None
    config.stash[STATE] = state
    _take_node_id_arguments(config, state)
    session = state.session
    config.stash[CONTEXT] = BenchContext(
        session.pack,
        session.writer,
        state.available(),
        session.request.models,
        session.request.exporters,
    )
    _register_markers(
        config,
        (
            pair
            for plan in state.plans
            for pair in (
                ("model", plan.model.name),
                ("exporter", plan.artifact.exporter),
                ("target", plan.target),
            )
        ),
    )
    _register_markers(config, (("target", target) for target in state.targets()))


def _take_node_id_arguments(config: pytest.Config, state: ConformanceState) -> None:
    """``pytest --conformance conformance/ort:cpu::mlp-...`` runs that item (a collector id
    such as ``conformance/ort:cpu`` runs its items), as a node id copied from pytest's output
    would for a test file: such arguments leave the paths pytest collects and select instead
    (through an option, so pytest-xdist workers get them too)."""
    collectors = {f"{ROOT}/{target}" for target in state.targets()}
    ours = [arg for arg in config.args if arg.split("::")[0] in collectors]
    if ours:
        config.args = [arg for arg in config.args if arg not in ours]
        config.option.conformance_ids = [*config.option.conformance_ids, *ours]


def _picked(nodeid: str, ids: list[str]) -> bool:
    return any(nodeid == i or nodeid.startswith(f"{i}::") for i in ids)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ids: list[str] = config.getoption("conformance_ids", default=[])
    if STATE not in config.stash or not ids:
        return
    unknown = [i for i in ids if not any(_picked(item.nodeid, [i]) for item in items)]
    if unknown:
        raise pytest.UsageError(
            f"no conformance item {unknown[0]}; `pytest --conformance --collect-only -q` "
            "lists them (with the same --target/--model/--exporter options)"
        )
    ours = [item for item in items if item.nodeid.startswith(f"{ROOT}/")]
    dropped = [item for item in ours if not _picked(item.nodeid, ids)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        gone = set(map(id, dropped))
        items[:] = [item for item in items if id(item) not in gone]


class CheckFailed(Exception):
    def __init__(self, record: CheckRecord) -> None:
        super().__init__(reason(record))
        self.record = record


class TargetCollector(pytest.Collector):
    """Every item of one target: its checks, then (with --bench) its benchmarks."""

    def __init__(self, *, target: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target
        self.add_marker(marker_name("target", target))

    def collect(self) -> list[pytest.Item]:
        state = self.config.stash[STATE]
        items: list[pytest.Item] = [
            ConformanceItem.from_parent(self, name=plan.check_id, plan=plan)
            for plan in state.plans
            if plan.target == self.target
        ]
        items += [
            OpsItem.from_parent(self, name=plan.id, plan=plan)
            for plan in state.op_plans
            if plan.target == self.target
        ]
        for item in bench_items(self, self.target):
            item.add_marker(marker_name("model", item.case.model))
            item.add_marker(marker_name("exporter", item.case.exporter))
            items.append(item)
        return items


class ConformanceItem(pytest.Item):
    def __init__(self, *, plan: CheckPlan, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.add_marker(pytest.mark.conformance)
        self.add_marker(marker_name("model", plan.model.name))
        self.add_marker(marker_name("exporter", plan.artifact.exporter))

    def runtest(self) -> None:
        record = self.config.stash[STATE].session.check(self.plan)
        self.user_properties += [  # JUnit XML <properties> of the testcase
            ("verdict", record.verdict),
            *([("margin", figure(record.margin))] if record.margin is not None else []),
            *([("attributed_to", record.attributed_to)] if record.attributed_to else []),
        ]
        if record.verdict == PASSED:
            return
        if record.verdict == SKIPPED:
            pytest.skip(record.problems[0])
        if record.attributed_to == EXPORTER:
            pytest.xfail(f"exporter finding recorded in the pack: {reason(record)[:300]}")
        raise CheckFailed(record)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, CheckFailed):
            record = excinfo.value.record
            lines = [reason(record), *(f"  {problem}" for problem in record.problems)]
            if record.tolerance:
                rule = ", ".join(f"{k} {v:g}" for k, v in record.tolerance.items())
                lines.append(f"  tolerance: {rule}")
            if record.stderr.strip():
                tail = record.stderr.strip().splitlines()[-STDERR_LINES:]
                lines.append("  the target wrote on stderr (last lines):")
                lines += [f"    {printable(line)}" for line in tail]
            lines.append(f"  record: {record.check_id} in {self.config.stash[STATE].session.path}")
            return "\n".join(lines)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.plan.artifact.path, None, self.name


class OpsItem(pytest.Item):
    """One operator case on one target (--profile ops)."""

    def __init__(self, *, plan: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.add_marker(pytest.mark.conformance)

    def runtest(self) -> None:
        from conformance.ops.profile import FIXED, PASS, SKIP, XFAIL

        profile = self.config.stash[STATE].ops
        record = profile.run(self.plan)
        self.user_properties += [("category", record.category)]
        status, why = profile.outcome(record)
        if status == PASS:
            return
        if status == SKIP:
            pytest.skip(printable(why, 300))
        if status == XFAIL:
            pytest.xfail(printable(why, 300))
        if status == FIXED:
            pytest.fail(
                f"fixed: {record.case} passes on {record.target}; take it off the target's "
                "known-findings list (spec/ops/known)",
                pytrace=False,
            )
        lines = [printable(why, 500), *(f"  {printable(p, 500)}" for p in record.problems[1:5])]
        if record.message:
            lines.append(f"  the runtime said: {printable(record.message, 1000)}")
        pytest.fail("\n".join(lines), pytrace=False)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.plan.case.model_path, None, self.name


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    """The session's collection gains one collector per target, so pytest counts and lists
    the items as it does any other (``--collect-only``, "N items collected", deselection)."""
    report = yield
    if isinstance(collector, pytest.Session) and STATE in collector.config.stash and report.passed:
        targets = collector.config.stash[STATE].targets()
        report.result.extend(
            TargetCollector.from_parent(
                collector, name=target, nodeid=f"{ROOT}/{target}", target=target
            )
            for target in targets
        )
    return report


def merge_parts(state: ConformanceState) -> None:
    """Controller side: collect worker part files (if any) and write results.json in plan order."""
    document = state.session.document
    checks = {c["id"]: c for c in document["checks"]}
    ops = document.get("ops")
    for part in sorted(state.session.run_dir.glob(PARTS)):
        loaded = load_document(part)
        checks.update({c["id"]: c for c in loaded["checks"]})
        if ops is not None and "ops" in loaded:
            ops["cases"].extend(loaded["ops"]["cases"])
        part.unlink()
    order = {plan.check_id: i for i, plan in enumerate(state.plans)}
    document["checks"] = sorted(checks.values(), key=lambda c: order.get(c["id"], len(order)))


def pytest_report_header(config: pytest.Config) -> list[str]:
    if STATE not in config.stash:
        return []
    session = config.stash[STATE].session
    lines = [f"conformance: pack {session.pack.digest[:16]}..., results in {session.path}"]
    return [*lines, session.pin_warning] if session.pin_warning else lines


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the results: "complete", or "interrupted" when the run stopped early (Ctrl-C,
    ``-x``); ``--collect-only`` runs nothing and writes nothing."""
    if STATE not in session.config.stash:
        return
    state = session.config.stash[STATE]
    if session.config.option.collectonly:
        state.session.close()
        return
    if not hasattr(session.config, "workerinput"):
        merge_parts(state)
    if state.ops is not None:
        state.ops.finish()
    stopped = exitstatus == pytest.ExitCode.INTERRUPTED or bool(
        session.shouldstop or session.shouldfail
    )
    state.session.finish("interrupted" if stopped else "complete")
