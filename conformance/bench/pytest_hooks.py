"""pytest glue for benchmarks: ``pytest --conformance --bench`` adds one item per benchmark.

SingleStream and each Offline batch size are pytest-benchmark items: they time through the
``benchmark`` fixture (``pedantic``, one call per round), so ``--benchmark-json``,
``--benchmark-autosave`` and ``--benchmark-compare`` keep working, and the JSON's ``stats`` gain
p50..p99.9 (seconds, like its other stats) with ``percentiles_valid``. ColdStart, CachingGuard and
LoadGen items are plain items. Every item writes its record into the run's results.json.

pytest-benchmark times in the pytest process, so the runtime is loaded there too; before that, a
child process loads the artifact and runs it once (the ColdStart measurement), so a runtime that
crashes on load costs its items, not the session. Under pytest-xdist workers every benchmark item
is skipped: benchmarks never run beside other work.
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance.bench import guard, records, scenarios, stats
from conformance.bench.cases import BenchCase, plan_cases
from conformance.bench.rules import LOADGEN_SCENARIOS, MODES, SCENARIOS, BenchRules, load_rules
from conformance.bench.runner import LOADGEN_DIR, status_of
from conformance.bench.worker import BenchWorker, CaseBench
from conformance.targets import TargetError

BENCH = pytest.StashKey["BenchSession"]()
IN_PROCESS = "pytest process (pytest-benchmark times in-process); cold start in a child process"
XDIST_SKIP = (
    "benchmarks never run beside other work: pytest-xdist worker {worker} skips them; "
    "run the benchmarks without -n"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance")
    group.addoption(
        "--bench",
        action="store_true",
        help="with --conformance: add benchmark items (pytest-benchmark timing)",
    )
    group.addoption(
        "--bench-mode", choices=MODES, default="dev", help="benchmark rules: dev (short) or cert"
    )
    group.addoption(
        "--bench-scenario",
        action="append",
        default=[],
        choices=SCENARIOS,
        dest="bench_scenarios",
        help="only these benchmark scenarios (repeatable)",
    )
    group.addoption(
        "--bench-loadgen", action="store_true", help="add LoadGen-Offline and LoadGen-Server items"
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("bench", default=False) and not config.getoption(
        "conformance", default=False
    ):
        raise pytest.UsageError(
            "--bench adds benchmarks to a conformance run: use it with --conformance"
        )


class BenchSession:
    """The benchmark items' shared state: rules, the loaded case, the cold-start probes."""

    def __init__(self, config: pytest.Config) -> None:
        from conformance.pytest_plugin import STATE

        conformance = config.stash[STATE]
        self.writer = conformance.writer
        self.rules: BenchRules = load_rules(config.getoption("bench_mode"))
        available = [name for name, info in conformance.targets.items() if info["available"]]
        self.cases = plan_cases(
            conformance.pack,
            available,
            config.getoption("conformance_models"),
            config.getoption("conformance_exporters"),
            self.rules,
        )
        chosen = config.getoption("bench_scenarios")
        self.scenarios = [s for s in SCENARIOS if not chosen or s in chosen]
        self.scenarios += list(LOADGEN_SCENARIOS) if config.getoption("bench_loadgen") else []
        self.run_dir = self.writer.path.parent
        self.probes: dict[str, dict[str, Any]] = {}
        self.loaded: tuple[str, CaseBench] | None = None
        self.offline_parts: dict[str, dict[int, dict[str, Any]]] = {}  # case -> batch -> raw
        self.item_names: set[str] = set()

    def probe(self, case: BenchCase) -> dict[str, Any]:
        """The case's cold start, measured once in a fresh child; {"error": ...} if that failed."""
        if case.key not in self.probes:
            worker = BenchWorker(case, self.rules)
            try:
                self.probes[case.key] = worker.open()
            except TargetError as error:
                self.probes[case.key] = {"error": error}
            finally:
                worker.close()
        return self.probes[case.key]

    def bench(self, case: BenchCase) -> CaseBench:
        """The case loaded in this process (one at a time), after a successful probe."""
        probe = self.probe(case)
        if "error" in probe:
            raise probe["error"]
        if self.loaded is None or self.loaded[0] != case.key:
            self.close()
            self.loaded = (case.key, CaseBench(case, self.rules, IN_PROCESS))
        return self.loaded[1]

    def close(self) -> None:
        if self.loaded is not None:
            self.loaded[1].close()
            self.loaded = None


def timed_item(benchmark: Any, request: pytest.FixtureRequest) -> None:
    """A pytest-benchmark item: SingleStream or one Offline batch size."""
    _run_item(request.node, benchmark)


def plain_item(request: pytest.FixtureRequest) -> None:
    """ColdStart, CachingGuard or LoadGen: measured without the benchmark fixture."""
    _run_item(request.node, None)


class BenchItem(pytest.Function):
    def __init__(
        self, *, case: BenchCase, scenario: str, batch: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.case, self.scenario, self.batch = case, scenario, batch

    def reportinfo(self):
        return self.case.model_path, 0, self.name


def _write(node: BenchItem, record: dict[str, Any]) -> None:
    node.config.stash[BENCH].writer.add_benchmark(record)
    if record["status"] == records.SKIPPED:
        pytest.skip(record["problems"][0])
    if record["status"] != records.OK:
        pytest.fail(f"{record['status']}: {record['problems'][0]}", pytrace=False)
    if record.get("caching_guard", {}).get("flagged"):
        pytest.fail(
            "caching guard: " + "; ".join(record["caching_guard"]["problems"]), pytrace=False
        )


def _run_item(node: BenchItem, benchmark: Any) -> None:
    session: BenchSession = node.config.stash[BENCH]
    case, rules = node.case, session.rules
    probe = session.probe(case)
    if "error" in probe:
        base = records.base_record(case, node.scenario, rules, {})
        _write(
            node,
            records.failed(
                base, status_of(probe["error"]), f"load or first run failed: {probe['error']}"
            ),
        )
        return
    if node.scenario == "ColdStart":
        base = records.base_record(case, node.scenario, rules, probe["environment"])
        _write(node, records.cold_start(base, probe["cold_start"]))
        return
    loaded = session.bench(case)
    base = records.base_record(case, node.scenario, rules, loaded.environment)
    _write(node, _measure(node, session, loaded, base, benchmark))


def _measure(
    node: BenchItem, session: BenchSession, loaded: CaseBench, base: dict[str, Any], benchmark: Any
) -> dict[str, Any]:
    rules = session.rules
    if node.scenario == "SingleStream":
        raw = scenarios.single_stream(
            loaded.session, loaded.pool, rules.single_stream, benchmark, node.name
        )
        record = records.single_stream(base, raw, rules)
        _annotate(benchmark, record)
        return record
    if node.scenario == "Offline":
        reason = scenarios.over_budget(
            loaded.session,
            loaded.pool,
            node.batch,
            rules.offline,
            loaded.cold_start["rss_before_load_mb"],
        )
        part = (
            {"batch": node.batch, "skipped": reason}
            if reason
            else scenarios.offline_batch(
                loaded.session, loaded.pool, node.batch, rules.offline, benchmark, node.name
            )
        )
        parts = session.offline_parts.setdefault(node.case.key, {})
        parts[node.batch] = part
        if reason:
            pytest.skip(f"batch {node.batch}: {reason}")
        return records.offline(base, [parts[b] for b in sorted(parts)], rules)
    if node.scenario == "CachingGuard":
        return records.caching_guard(
            base, guard.measure(loaded.session, loaded.pool, rules.caching_guard), rules
        )
    from conformance.bench.loadgen import run_loadgen

    log_dir = session.run_dir / LOADGEN_DIR / records.folder_name(base["id"])
    measured = run_loadgen(
        loaded.session, loaded.pool, node.scenario.split("-", 1)[1], rules.loadgen, log_dir
    )
    return records.loadgen(base, measured, session.run_dir)


def _annotate(benchmark: Any, record: dict[str, Any]) -> None:
    if benchmark is not None and record["status"] == records.OK:
        benchmark.extra_info.update(
            {
                "record_id": record["id"],
                "latency_ms": record["latency_ms"],
                "valid": record["valid"],
                "queries": record["queries"],
                "mode": record["mode"],
            }
        )


def _items(session: pytest.Session, bench: BenchSession) -> list[BenchItem]:
    items = []
    for case in bench.cases:
        for scenario in bench.scenarios:
            batches = bench.rules.offline.batch_sizes if scenario == "Offline" else (None,)
            for batch in batches:
                suffix = f"-batch{batch}" if batch else ""
                name = f"bench[{case.key}-{scenario}{suffix}]"
                timed = scenario in ("SingleStream", "Offline")
                item = BenchItem.from_parent(
                    session,
                    name=name,
                    callobj=timed_item if timed else plain_item,
                    case=case,
                    scenario=scenario,
                    batch=batch,
                )
                if timed:
                    item.add_marker(pytest.mark.benchmark(group=f"{scenario}{suffix}"))
                bench.item_names.add(item.nodeid)
                items.append(item)
    return items


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list):
    """Add the items before other plugins look (pytest-benchmark marks its items), move them last after."""
    if not config.getoption("bench", default=False):
        return (yield)
    bench = config.stash[BENCH] = BenchSession(config)
    added = _items(session, bench)
    worker = getattr(config, "workerinput", {}).get("workerid")
    for item in added:
        if worker:
            item.add_marker(pytest.mark.skip(reason=XDIST_SKIP.format(worker=worker)))
    items.extend(added)
    result = yield
    ours = set(map(id, added))
    items[:] = [i for i in items if id(i) not in ours] + [i for i in items if id(i) in ours]
    return result


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(
    config: pytest.Config, benchmarks: list, output_json: dict
) -> None:
    """Add p50..p99.9 (seconds) and their validity to the stats of our items in pytest-benchmark's JSON."""
    if BENCH not in config.stash:
        return
    bench = config.stash[BENCH]
    data = {
        b.fullname: list(b.stats.data) for b in benchmarks if b and b.fullname in bench.item_names
    }
    for entry in output_json.get("benchmarks", []):
        raw = data.get(entry.get("fullname"))
        if raw:
            entry["stats"].update(stats.percentiles(raw))
            entry["stats"]["percentiles_valid"] = stats.validity(
                len(raw), bench.rules.early_stopping_min_queries
            )


def pytest_sessionfinish(session: pytest.Session) -> None:
    if BENCH in session.config.stash:
        session.config.stash[BENCH].close()
