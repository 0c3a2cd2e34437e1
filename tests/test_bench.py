"""Benchmarks: statistics, rules, inputs, the caching guard, the CLI, LoadGen and the pytest glue.

No assertion here bounds a latency: timings on a shared CI machine prove nothing about speed.
What is asserted is structure (records, flags, validity) and behaviour (a crash costs one case,
stale outputs are flagged, xdist workers skip benchmarks).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import subprocess
import sys
import time
import tomllib
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement

from conformance.bench import guard, registry, stats, timing
from conformance.bench.cases import plan_cases, plan_groups
from conformance.bench.guard import GuardRaw
from conformance.bench.inputs import batched, sample_pool
from conformance.bench.records import MEASURED, STATUSES, BenchRecord
from conformance.bench.rules import PERCENTILES, RulesError, load_rules, parse_rules
from conformance.bench.runner import run_benchmarks
from conformance.results import records as check_records
from conformance.results.document import (
    ResultsWriter,
    load_document,
    new_document,
    validate_document,
)
from conformance.spec import load_json
from conformance.targets.interface import Session

HOOKS = [
    "-p",
    "conformance.bench.pytest_hooks",
]  # harmless once pytest_plugin registers the hooks itself


# --- statistics --------------------------------------------------------------------------------


def linear_percentile(values, level: float) -> float:
    """The definition stats.percentiles documents, in plain Python (no numpy): sort, take rank
    level/100 x (n - 1), interpolate linearly between the two samples around it."""
    ordered = sorted(float(v) for v in values)
    rank = level / 100 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (rank - low) * (ordered[high] - ordered[low])


def test_percentiles_follow_the_linear_definition():
    # hand-computed: n = 4, rank = level/100 x 3, e.g. p90 -> rank 2.7 -> 3 + 0.7 x (4 - 3)
    assert stats.percentiles([4.0, 1.0, 3.0, 2.0]) == pytest.approx(
        {"p50": 2.5, "p90": 3.7, "p95": 3.85, "p99": 3.97, "p99.9": 3.997}, rel=1e-12
    )
    known = stats.percentiles(np.arange(1.0, 101.0))  # linear interpolation between ranks
    assert known == pytest.approx(
        {"p50": 50.5, "p90": 90.1, "p95": 95.05, "p99": 99.01, "p99.9": 99.901}
    )
    assert stats.percentiles([3.0]) == {name: 3.0 for name in PERCENTILES}
    rng = np.random.default_rng(7)
    for data in (rng.lognormal(-9, 0.5, 5000), rng.uniform(0, 1, 37)):
        measured = stats.percentiles(data)
        assert list(measured) == list(PERCENTILES)
        for name, level in stats.PERCENTILE_LEVELS.items():
            assert measured[name] == pytest.approx(linear_percentile(data, level), rel=1e-12)
    with pytest.raises(ValueError):
        stats.percentiles([])


def test_the_percentile_list_is_defined_once():
    assert PERCENTILES is stats.PERCENTILES is check_records.PERCENTILES  # one definition
    assert PERCENTILES == tuple(stats.PERCENTILE_LEVELS)
    assert stats.PERCENTILE_LEVELS == {"p50": 50, "p90": 90, "p95": 95, "p99": 99, "p99.9": 99.9}
    assert set(load_rules("dev").early_stopping_min_queries) == set(PERCENTILES)
    from conformance.bench.loadgen import LATENCY_KEYS

    # LoadGen's names for them (its detail log's result_<level>_percentile_latency_ns), plus p97
    assert LATENCY_KEYS == {
        "p50": "50.00",
        "p90": "90.00",
        "p95": "95.00",
        "p97": "97.00",
        "p99": "99.00",
        "p99.9": "99.90",
    }


def test_latency_summary_is_in_ms_and_histogram_counts_every_call():
    latencies_s = [1e-3, 2e-3, 3e-3, 4e-3]
    summary = stats.latency_summary_ms(latencies_s)
    assert summary["p50"] == pytest.approx(2.5) and summary["min"] == 1.0 and summary["max"] == 4.0
    assert summary["mean"] == pytest.approx(2.5)
    histogram = stats.histogram_ms(latencies_s)
    assert (
        sum(histogram["counts"]) == 4 and len(histogram["edges_ms"]) == len(histogram["counts"]) + 1
    )
    assert stats.samples_per_s(8, [0.5, 0.5]) == 16.0


def test_validity_follows_the_early_stopping_minimums():
    minimums = load_rules("dev").early_stopping_min_queries
    assert minimums["p90"] == 64 and minimums["p99"] == 662  # MLPerf's published minimums
    assert stats.validity(63, minimums)["p90"] is False
    assert stats.validity(64, minimums) == {
        "p50": True,
        "p90": True,
        "p95": False,
        "p99": False,
        "p99.9": False,
    }
    assert stats.validity(661, minimums)["p99"] is False
    assert (
        stats.validity(662, minimums)["p99"] is True
        and stats.validity(662, minimums)["p99.9"] is False
    )
    assert all(stats.validity(minimums["p99.9"], minimums).values())


# --- rules and inputs --------------------------------------------------------------------------


def test_rules_both_modes_and_dev_is_short():
    dev, cert = load_rules("dev"), load_rules("cert")
    assert dev.mode == "dev" and cert.mode == "cert"
    assert {1, 8, 32} <= set(dev.offline.batch_sizes) and {1, 8, 32} <= set(
        cert.offline.batch_sizes
    )
    assert cert.single_stream.min_queries >= cert.min_queries_for(
        "p99"
    )  # cert: a valid p99 by construction
    assert dev.single_stream.min_queries >= dev.min_queries_for("p90")
    # dev's worst case for the ten core models stays within two minutes of timed series
    assert 10 * dev.max_timed_s_per_case() <= 120
    assert (
        dev.in_force("SingleStream")["SingleStream"]["min_queries"] == dev.single_stream.min_queries
    )
    assert dev.in_force("SingleStream") == registry.get("SingleStream").rules_in_force(dev)
    assert dev.in_force("Nonesuch") == dev.common_in_force()  # a name a bundle may carry
    with pytest.raises(RulesError):
        parse_rules(load_json("benchmarks.json"), "fast")
    document = json.loads(json.dumps(load_json("benchmarks.json")))
    document["modes"]["dev"]["loadgen"]["offline_batch"] = 8.5  # LoadGen takes whole numbers
    with pytest.raises(RulesError, match="offline_batch"):
        parse_rules(document, "dev")
    spec_loadgen = load_json("benchmarks.json")["modes"]["dev"]["loadgen"]
    # the rules a record carries read as the spec's, ints as ints, in the spec's order
    assert json.dumps(dev.in_force("LoadGen-Server")["loadgen"]) == json.dumps(spec_loadgen)


def test_inputs_rotate_over_distinct_buffers(pack):
    model = pack.model("embedding_mlp")  # two inputs, one of them integer ids
    case = plan_cases(pack, ["ort:cpu"], ["embedding_mlp"], ["torch-script"], load_rules("dev"))[0]
    pool = sample_pool(Path(case.artifact_dir), case.data_set, 8, 0.05, seed=1)
    assert len(pool) == 8 and all(a.shape[0] == 1 for feeds in pool for a in feeds.values())
    flat = [
        np.concatenate([a.ravel().astype(np.float64) for a in feeds.values()]) for feeds in pool
    ]
    assert all(not np.array_equal(flat[i], flat[j]) for i in range(8) for j in range(i))
    ids = [feeds["item_ids"] for feeds in pool]
    vocabulary = np.unique(
        np.concatenate([a.ravel() for _, a in model.artifacts[0].inputs(1) if a.dtype.kind == "i"])
    )
    assert all(np.isin(a, vocabulary).all() for a in ids)  # permuted, never out of range
    batches = batched(pool, 8, 4)
    assert all(b["item_ids"].shape[0] == 8 for b in batches)
    assert not np.array_equal(batches[0]["item_ids"], batches[1]["item_ids"])


def test_default_exporters_are_a_preference_list(pack):
    groups = plan_groups(pack, ["tract"], ["transformer_encoder"], (), load_rules("dev"))
    assert [c.exporter for c in groups[0]] == ["torch-script", "torch-dynamo", "tf2onnx"]
    explicit = plan_groups(pack, ["tract"], ["mlp"], ["tf2onnx", "torch-script"], load_rules("dev"))
    assert [[c.exporter for c in g] for g in explicit] == [
        ["torch-script"],
        ["tf2onnx"],
    ]  # pack order


# --- caching guard -----------------------------------------------------------------------------


class CachingSession(Session):
    """Answers a repeated input (the same buffer) from a cache, skipping the 'model' (2 ms)."""

    def __init__(self) -> None:
        super().__init__(["x"])
        self._last: tuple[int, list] | None = None

    def _run(self, inputs):
        if self._last is not None and self._last[0] == id(inputs["x"]):
            return self._last[1]
        time.sleep(0.002)
        outputs = [("y", inputs["x"] * 2.0)]
        self._last = (id(inputs["x"]), outputs)
        return outputs


def test_guard_judge_flags_timing_and_outputs():
    honest = GuardRaw((1e-3,) * 10, (1e-3,) * 10, "test", ())
    assert guard.judge(honest, 1.5).flagged is False
    cached = dataclasses.replace(honest, repeated_s=(1e-5,) * 10)
    verdict = guard.judge(cached, 1.5)
    assert verdict.flagged and verdict.timing_flagged and verdict.ratio == pytest.approx(100)
    stale = dataclasses.replace(honest, output_problems=("input 1 issued twice ...",))
    assert guard.judge(stale, 1.5).outputs_flagged and guard.judge(stale, 1.5).flagged


def test_guard_flags_a_session_that_caches_repeated_inputs():
    pool = [{"x": np.full((1, 4), float(i), dtype=np.float32)} for i in range(8)]
    rules = load_rules("dev").caching_guard
    verdict = guard.judge(guard.measure(CachingSession(), pool, rules), rules.threshold_ratio)
    assert verdict.timing_flagged and not verdict.outputs_flagged


# --- the scenario registry, the records, the timing engine -----------------------------------


def test_the_registry_has_one_entry_per_scenario():
    assert registry.SCENARIOS == ("ColdStart", "SingleStream", "Offline", "CachingGuard")
    assert registry.LOADGEN_SCENARIOS == ("LoadGen-Offline", "LoadGen-Server")
    assert set(registry.REGISTRY) == {*registry.SCENARIOS, *registry.LOADGEN_SCENARIOS}
    assert [s.name for s in registry.chosen()] == list(registry.SCENARIOS)
    assert [s.name for s in registry.chosen(["Offline", "ColdStart"])] == ["ColdStart", "Offline"]
    assert [s.name for s in registry.chosen(["ColdStart"], loadgen=True)] == [
        "ColdStart",
        *registry.LOADGEN_SCENARIOS,
    ]
    with pytest.raises(registry.UnknownScenarioError, match="SingleStream"):
        registry.get("SingelStream")
    dev = load_rules("dev")
    assert registry.get("ColdStart").at_load and not registry.get("SingleStream").at_load
    assert registry.get("Offline").batches(dev) == dev.offline.batch_sizes
    assert registry.get("SingleStream").batches(dev) == (None,)
    assert {s.name for s in registry.REGISTRY.values() if s.timed} == {"SingleStream", "Offline"}
    sections = {
        name: set(s.rules_in_force(dev)) - set(dev.common_in_force())
        for name, s in registry.REGISTRY.items()
    }
    assert sections == {
        "ColdStart": set(),
        "SingleStream": {"SingleStream"},
        "Offline": {"Offline"},
        "CachingGuard": {"CachingGuard"},
        "LoadGen-Offline": {"loadgen"},
        "LoadGen-Server": {"loadgen"},
    }


def test_bench_statuses_are_the_checks_words():
    assert set(STATUSES) - {MEASURED} == {
        check_records.ERROR,
        check_records.CRASHED,
        check_records.TIMED_OUT,
        check_records.SKIPPED,
    }
    assert MEASURED == "ok"  # its word in results files (schema 1), unchanged


def test_benchmark_fixture_constructor_is_the_pinned_one():
    """timing.py builds pytest-benchmark's BenchmarkFixture outside pytest (not its public API):
    this fails when the installed release's constructor is not the one the engine builds."""
    from pytest_benchmark.fixture import BenchmarkFixture

    parameters = list(inspect.signature(BenchmarkFixture.__init__).parameters)[1:]
    assert tuple(parameters) == timing.FIXTURE_PARAMETERS
    assert set(timing.fixture_arguments("x")) == set(timing.FIXTURE_PARAMETERS)
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    pinned = next(
        Requirement(r)
        for r in pyproject["project"]["dependencies"]
        if Requirement(r).name == "pytest-benchmark"
    )
    assert metadata.version("pytest-benchmark") in pinned.specifier
    series = timing.time_calls(lambda feeds: feeds["x"] * 2, [{"x": 1}, {"x": 2}], rounds=5)
    assert len(series.latencies_s) == 5 and all(t > 0 for t in series.latencies_s)
    assert series.engine.startswith("pytest-benchmark ") and "outside pytest" in series.engine


# --- the CLI: dev rules end to end -------------------------------------------------------------


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    """`conformance bench` on mlp: an honest target and the stale and crashing controls."""
    out = tmp_path_factory.mktemp("bench") / "run"
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance.bench.command",
            "--target",
            "defect:crash",
            "--target",
            "ort:cpu",
            "--target",
            "defect:stale",
            "--model",
            "mlp",
            "--exporter",
            "torch-script",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    return result, load_document(out / "results.json"), time.perf_counter() - started


def by_id(document, target, scenario):
    return next(
        r for r in document["benchmarks"] if r["target"] == target and r["scenario"] == scenario
    )


def test_bench_command_writes_valid_records(bench_run):
    result, document, _ = bench_run
    assert result.returncode == 1, result.stderr  # the negative controls are flagged
    validate_document(document)
    single = by_id(document, "ort:cpu", "SingleStream")
    assert single["status"] == "ok" and single["queries"] >= 64 and single["valid"]["p90"]
    assert single["valid"]["p99"] == (single["queries"] >= 662)
    assert set(single["latency_ms"]) == {*PERCENTILES, "mean", "min", "max"}
    assert (
        single["rules"]["SingleStream"]["min_queries"]
        == load_rules("dev").single_stream.min_queries
    )
    assert "pytest-benchmark" in single["environment"]["timer"] and single["environment"]["threads"]
    offline = by_id(document, "ort:cpu", "Offline")
    assert [e["batch"] for e in offline["throughput"]] == [1, 8, 32]
    cold = by_id(document, "ort:cpu", "ColdStart")["cold_start"]
    assert cold["session_create_ms"] > 0 and cold["first_inference_ms"] > 0
    assert cold["peak_rss_mb"] > cold["model_rss_mb"] >= 0
    assert (
        "SingleStream (batch 1) latency" in result.stdout and "Offline throughput" in result.stdout
    )


def test_benchmark_figures_are_consistent_on_a_real_target(bench_run):
    """Values, not keys: ordered percentiles, positive throughput, the rules' query minimums,
    and the rules' thread count set on ort:cpu and recorded."""
    _, document, _ = bench_run
    rules = load_rules("dev")
    single = by_id(document, "ort:cpu", "SingleStream")
    latency = single["latency_ms"]
    ordered = [latency["min"], *(latency[p] for p in PERCENTILES), latency["max"]]
    assert ordered == sorted(ordered) and latency["min"] > 0
    assert latency["p50"] <= latency["p90"] <= latency["p99"]
    assert latency["min"] <= latency["mean"] <= latency["max"]
    assert single["queries"] >= rules.single_stream.min_queries and not single["problems"]
    assert sum(single["latency_histogram"]["counts"]) == single["queries"]
    assert single["valid"] == {
        p: single["queries"] >= rules.min_queries_for(p) for p in PERCENTILES
    }
    offline = by_id(document, "ort:cpu", "Offline")
    for entry in offline["throughput"]:
        assert entry["samples_per_s"] > 0 and entry["samples_per_s_at_p50"] > 0
        assert entry["queries"] >= rules.offline.min_queries and entry["p50_ms"] > 0
    assert offline["queries"] == sum(e["queries"] for e in offline["throughput"])
    for record in document["benchmarks"]:
        if record["target"] == "ort:cpu":
            environment = record["environment"]
            assert environment["threads_requested"] == rules.threads == record["rules"]["threads"]
            assert (
                environment["threads"] == f"{rules.threads} (target option threads={rules.threads})"
            )
            assert environment["target_options"]["intra_op_num_threads"] == rules.threads
    guard_record = by_id(document, "ort:cpu", "CachingGuard")
    assert guard_record["queries"] > 0 and guard_record["caching_guard"]["rotating_p50_ms"] > 0


# the keys of each record, in order, as results files held them before the records were typed
# (read from a `conformance bench` run of commit 1fd9360 on mlp, ort:cpu and the two controls)
SCHEMA_1_KEYS = {
    "ColdStart": ["cold_start", "duration_s"],
    "SingleStream": ["latency_ms", "valid", "queries", "duration_s", "latency_histogram"],
    "Offline": ["throughput", "queries", "duration_s"],
    "CachingGuard": ["caching_guard", "queries", "duration_s"],
}
COMMON_KEYS = [
    "id", "model", "exporter", "target", "scenario", "mode", "status", "problems", "rules",
    "environment", "inputs",
]  # fmt: skip
# issue 15: a measured SingleStream record appends what its two latencies are, and the runtime
# latency where the session has a bound call (ort:cpu here; the controls' sessions have none)
ADDED_KEYS = {
    ("SingleStream", True): [
        "latency_kinds", "runtime_latency_ms", "runtime_valid", "runtime_queries",
    ],
    ("SingleStream", False): ["latency_kinds"],
    ("Offline", True): ["offline_api"],
    ("Offline", False): ["offline_api"],
}  # fmt: skip


def test_typed_records_write_the_json_readers_know(bench_run):
    _, document, _ = bench_run
    for data in document["benchmarks"]:
        assert data["status"] in STATUSES
        measured = SCHEMA_1_KEYS[data["scenario"]] if data["status"] == MEASURED else []
        if data["status"] == MEASURED:
            measured = measured + ADDED_KEYS.get(
                (data["scenario"], data["target"] == "ort:cpu"), []
            )
        assert list(data) == COMMON_KEYS + measured, data["id"]
        timed = data["status"] == MEASURED and data["scenario"] != "ColdStart"
        assert ("timer" in data["environment"]) == timed
        assert BenchRecord.from_dict(data).as_dict() == data  # read back, written again: the same
    crashed = by_id(document, "defect:crash", "SingleStream")
    assert crashed["environment"] == {} and crashed["problems"]


def test_caching_guard_flags_stale_outputs_and_not_an_honest_target(bench_run):
    _, document, _ = bench_run
    assert by_id(document, "defect:stale", "CachingGuard")["caching_guard"]["outputs_flagged"]
    honest = by_id(document, "ort:cpu", "CachingGuard")["caching_guard"]
    assert honest["flagged"] is False, honest["problems"]


def test_a_crashing_target_costs_its_own_benchmarks_only(bench_run):
    _, document, _ = bench_run
    crashed = [r for r in document["benchmarks"] if r["target"] == "defect:crash"]
    assert len(crashed) == 4 and all(r["status"] == "crashed" for r in crashed)
    assert all(r["status"] == "ok" for r in document["benchmarks"] if r["target"] == "ort:cpu")


def test_spread_reads_the_records_back_from_results_files(bench_run):
    from conformance.bench.spread import FIGURES, spreads

    result, _, _ = bench_run
    run_dir = Path(result.stdout.strip().splitlines()[-1].split("results: ", 1)[1]).parent
    rows = spreads([run_dir, run_dir])  # the same run twice: every figure agrees with itself
    assert {(r["target"], r["figure"]) for r in rows} == {
        (target, figure) for target in ("ort:cpu", "defect:stale") for figure in FIGURES
    }  # the crashed target measured nothing
    assert all(r["spread"] == 0.0 and r["values"][0] > 0 for r in rows)


def test_bench_adds_to_an_existing_run_and_refuses_bad_input(bench_run, tmp_path):
    result, document, _ = bench_run
    run_dir = Path(result.stdout.strip().splitlines()[-1].split("results: ", 1)[1]).parent
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance.bench.command",
            "--target",
            "ort:cpu",
            "--model",
            "mlp",
            "--exporter",
            "torch-script",
            "--scenario",
            "ColdStart",
            "--out",
            str(run_dir),
        ],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr
    updated = load_document(run_dir / "results.json")
    assert len(updated["benchmarks"]) == len(
        document["benchmarks"]
    )  # same id: replaced, not duplicated
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance.bench.command",
            "--target",
            "ort:cpu",
            "--model",
            "nope",
            "--out",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "unknown model" in bad.stderr and "Traceback" not in bad.stderr


# --- LoadGen -----------------------------------------------------------------------------------


def test_loadgen_runs_record_their_result_with_logs_beside_the_results(pack, tmp_path):
    pytest.importorskip("mlperf_loadgen")
    document = new_document(pack.manifest, {}, ["test"])
    writer = ResultsWriter(tmp_path / "results.json", document)
    written = run_benchmarks(
        writer, pack, ["ort:cpu"], ["mlp"], ["torch-script"], "dev", ["ColdStart"], loadgen=True
    )
    loadgen = {r.scenario: r for r in written if r.scenario in registry.LOADGEN_SCENARIOS}
    assert set(loadgen) == {"LoadGen-Offline", "LoadGen-Server"}
    for record in loadgen.values():
        # whether LoadGen calls a run VALID depends on how busy the machine is (Server's latency
        # bound, Offline's duration): assert that the run completed and recorded its result and
        # the constraints behind it, whatever they are, and that an INVALID one says why
        assert record.measured, record.problems
        section = record.figures.loadgen
        assert section.result in ("VALID", "INVALID")
        assert section.valid == (section.result == "VALID")
        assert set(section.constraints) == {
            "min_duration",
            "min_queries",
            "early_stopping",
            "performance",
        }
        assert section.valid or (
            record.problems and record.problems[0].startswith("LoadGen result INVALID")
        )
        assert section.samples_per_s > 0 and "p99" in section.latency_ms
        assert section.query_count >= 1 and record.figures.queries == section.query_count
        for log in section.logs.values():
            assert (tmp_path / log).is_file()
    assert loadgen["LoadGen-Server"].figures.loadgen.settings["server_target_qps"] > 0
    assert (
        loadgen["LoadGen-Offline"].figures.throughput[0].batch
        == load_rules("dev").loadgen.offline_batch
    )
    validate_document(load_document(tmp_path / "results.json"))


# --- pytest glue -------------------------------------------------------------------------------


def pytest_bench(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *HOOKS,
            "--conformance",
            "--bench",
            "--target",
            "ort:cpu",
            "--model",
            "mlp",
            "--exporter",
            "torch-script",
            "--bench-scenario",
            "SingleStream",
            "--bench-scenario",
            "Offline",
            "--conformance-out",
            str(tmp_path / "out"),
            "--rootdir",
            str(tmp_path),
            *extra,
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )


def test_pytest_benchmark_json_carries_the_percentiles(tmp_path):
    storage = f"file://{tmp_path / 'storage'}"
    first = pytest_bench(
        tmp_path,
        "--benchmark-json",
        str(tmp_path / "bench.json"),
        "--benchmark-autosave",
        "--benchmark-storage",
        storage,
    )
    assert first.returncode == 0, first.stdout[-3000:]
    output = json.loads((tmp_path / "bench.json").read_text())
    single = next(b for b in output["benchmarks"] if b["name"].endswith("-SingleStream-dev"))
    for name, level in stats.PERCENTILE_LEVELS.items():
        assert single["stats"][name] == pytest.approx(
            linear_percentile(single["stats"]["data"], level), rel=1e-12
        )
    assert single["stats"]["p50"] <= single["stats"]["p90"] <= single["stats"]["p99"]
    assert single["stats"]["percentiles_valid"]["p90"] is True
    assert single["extra_info"]["latency_ms"]["p50"] == pytest.approx(single["stats"]["p50"] * 1e3)
    assert len([b for b in output["benchmarks"] if "Offline" in b["name"]]) == 3
    records = load_document(tmp_path / "out" / "results.json")["benchmarks"]
    assert {r["scenario"] for r in records} == {"SingleStream", "Offline"}
    saved = list((tmp_path / "storage").rglob("*.json"))
    assert saved and "p99" in json.loads(saved[0].read_text())["benchmarks"][0]["stats"]
    compared = pytest_bench(tmp_path, "--benchmark-compare", "--benchmark-storage", storage)
    assert compared.returncode == 0 and "Comparing against" in compared.stdout + compared.stderr


def test_pytest_xdist_workers_skip_benchmarks(tmp_path):
    result = pytest_bench(tmp_path, "-n", "2", "-rs")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "benchmarks never run beside other work" in result.stdout
    assert "4 skipped" in result.stdout  # SingleStream + Offline at three batch sizes


# --- issue 15: two latencies per SingleStream result -------------------------------------------


def test_single_stream_records_both_latencies_and_names_them(bench_run):
    """End-to-end (session.run) and runtime (the bound call) are both recorded on ort:cpu, each
    named; a control's session has no bound call and its record says so instead of a figure."""
    _, document, _ = bench_run
    single = by_id(document, "ort:cpu", "SingleStream")
    kinds = single["latency_kinds"]
    assert kinds["latency_ms"].startswith("end-to-end: session.run(feeds)")
    assert kinds["runtime_latency_ms"].startswith("runtime: onnxruntime IO binding")
    runtime = single["runtime_latency_ms"]
    ordered = [runtime["min"], *(runtime[p] for p in PERCENTILES), runtime["max"]]
    assert ordered == sorted(ordered) and runtime["min"] > 0
    assert single["runtime_queries"] >= load_rules("dev").single_stream.min_queries
    assert single["runtime_valid"] == {
        p: single["runtime_queries"] >= load_rules("dev").min_queries_for(p) for p in PERCENTILES
    }
    stale = by_id(document, "defect:stale", "SingleStream")
    assert "runtime_latency_ms" not in stale
    assert stale["latency_kinds"]["runtime_latency_ms"].startswith("runtime: not measured")


@pytest.mark.parametrize("target", ["ort:cpu", "openvino:cpu", "iree:llvm-cpu"])
def test_the_bound_call_computes_what_run_returns(pack, target):
    """The runtime latency times the same model on the same inputs: each prepared input's
    outputs, read back from the runtime's buffers, are run()'s; and a mismatch is caught."""
    from conformance.bench import bound
    from conformance.targets import get_target

    chosen = get_target(f"{target}:threads=1" if target != "iree:llvm-cpu" else target)
    reason = chosen.unavailable_reason()
    if reason:
        pytest.skip(reason)
    case = plan_cases(pack, [target], ["embedding_mlp"], ["torch-script"], load_rules("dev"))[0]
    pool = sample_pool(Path(case.artifact_dir), case.data_set, 3, 0.05, seed=1)
    session = chosen.load(Path(case.model_path))
    try:
        calls = bound.bind(session, pool)
        assert calls is not None and calls.binding.startswith("runtime: ")
        for index, feeds in enumerate(pool):
            expected = [array for _, array in session.run(feeds)]
            got = calls.outputs(index)
            assert [a.shape for a in got] == [a.shape for a in expected]
            for a, b in zip(got, expected):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        bound.checked(calls, session, pool)
        with pytest.raises(bound.BindingMismatch):  # prepared input 1 is not run()'s pool[0]
            bound.checked(dataclasses.replace(calls, items=calls.items[1:]), session, pool)
    finally:
        session.close()


def test_the_report_reads_both_latencies_each_named(bench_run):
    from conformance.report.performance import build_performance

    _, document, _ = bench_run
    performance = build_performance(document["benchmarks"])
    (end_to_end,) = [r for r in performance.single_stream if r.target == "ort:cpu"]
    (runtime,) = [r for r in performance.single_stream_runtime if r.target == "ort:cpu"]
    record = by_id(document, "ort:cpu", "SingleStream")
    assert end_to_end.latency("p50") == record["latency_ms"]["p50"]
    assert runtime.latency("p50") == record["runtime_latency_ms"]["p50"]
    assert runtime.record["queries"] == record["runtime_queries"]
    assert end_to_end.latency_kind.startswith("end-to-end")
    assert runtime.latency_kind.startswith("runtime: onnxruntime IO binding")
    assert all(r.target != "defect:stale" for r in performance.single_stream_runtime)


# --- issue 15: the runtimes' own tools beside the suite; Offline through the async API ----------


@pytest.fixture(scope="module")
def tools_run(tmp_path_factory):
    """`conformance bench --compare-tools` on mlp: SingleStream with each runtime's own tool,
    and Offline (OpenVINO through its asynchronous requests)."""
    from conformance.targets import get_target

    targets = ["ort:cpu", "openvino:cpu", "iree:llvm-cpu"]
    missing = {t: r for t in targets if (r := get_target(t).unavailable_reason())}
    if missing:
        pytest.skip(f"runtimes missing: {missing}")
    out = tmp_path_factory.mktemp("tools") / "run"
    command = [sys.executable, "-m", "conformance.bench.command", "--model", "mlp"]
    command += ["--exporter", "torch-script", "--scenario", "SingleStream"]
    command += ["--scenario", "Offline", "--compare-tools", "--out", str(out)]
    for target in targets:
        command += ["--target", target]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    # the terminal shows the two latencies and the tool's figure side by side
    assert "end-to-end (session.run) / runtime" in result.stdout
    assert "benchmark_app" in result.stdout.split("Offline throughput")[0]
    return load_document(out / "results.json")


@pytest.mark.parametrize(
    "target, tool",
    [
        ("ort:cpu", "onnxruntime bound loop"),
        ("openvino:cpu", "benchmark_app"),
        ("iree:llvm-cpu", "iree-benchmark-module"),
    ],
)
def test_compare_tools_records_the_tools_figure_beside_ours(tools_run, target, tool):
    validate_document(tools_run)
    single = by_id(tools_run, target, "SingleStream")
    figure = single["tool"]
    assert figure["tool"] == tool and figure["p50_ms"] > 0 and figure["version"]
    assert figure["ratio"] == pytest.approx(single["runtime_latency_ms"]["p50"] / figure["p50_ms"])
    threads = load_rules("dev").threads
    if target == "openvino:cpu":  # same threads, precision, shape and input as the suite's
        assert (
            f"-nthreads {threads}" in figure["command"]
            and "-infer_precision f32" in figure["command"]
        )
        assert (
            "-data_shape 'image[1,784]'" in figure["command"]
            and "-inference_only true" in figure["command"]
        )
    if target == "iree:llvm-cpu":  # the one-thread rule: local-sync, every call on one thread
        assert threads == 1 and "--device=local-sync" in figure["command"]
        assert single["environment"]["target_options"]["driver"] == "local-sync"
        assert "driver=local-sync" in single["environment"]["threads"]


def test_offline_goes_through_openvinos_async_requests_and_records_ort_settings(tools_run):
    offline = by_id(tools_run, "openvino:cpu", "Offline")
    api = offline["offline_api"]
    assert api["api"].startswith("openvino InferRequest.start_async/wait over a ring")
    assert api["performance_hint"] == "THROUGHPUT"
    assert api["infer_requests"] >= 1
    assert [e["batch"] for e in offline["throughput"]] == list(
        load_rules("dev").offline.batch_sizes
    )
    for entry in offline["throughput"]:
        assert entry["requests"] == api["infer_requests"] and entry["samples_per_s"] > 0
        assert "samples_per_s_at_p50" not in entry  # overlapping requests: not batch / p50
        assert entry["samples_per_s"] == pytest.approx(
            entry["batch"] * entry["queries"] / entry["duration_s"]
        )
        assert entry["queries"] >= load_rules("dev").offline.min_queries
    ort = by_id(tools_run, "ort:cpu", "Offline")["offline_api"]
    assert ort["intra_op_num_threads"] == load_rules("dev").threads
    assert {"inter_op_num_threads", "execution_mode"} <= set(ort)


def test_the_tools_real_output_is_parsed(pack, tmp_path):
    """benchmark_app's throughput run, parsed from its real output; garbage is refused."""
    from conformance.bench import tools

    case = plan_cases(pack, ["openvino:cpu"], ["mlp"], ["torch-script"], load_rules("dev"))[0]
    feeds = sample_pool(Path(case.artifact_dir), case.data_set, 2, 0.05, seed=1)[0]
    try:
        fps, command = tools.benchmark_app_throughput(
            Path(case.model_path), feeds, tmp_path, seconds=1
        )
    except tools.ToolError as error:
        pytest.skip(str(error)) if "not installed" in str(error) else pytest.fail(str(error))
    assert fps > 0 and "-hint throughput" in command
    with pytest.raises(tools.ToolError):
        tools.parse_benchmark_app("[ INFO ] nothing measured")
    with pytest.raises(tools.ToolError):
        tools.parse_iree_benchmark("no json here")
    parsed = tools.parse_benchmark_app(
        "[ INFO ]    Median:        31.02 us\n[ INFO ] Throughput:   26775.94 FPS"
    )
    assert parsed.median_ms == pytest.approx(0.03102) and parsed.throughput_fps == 26775.94


def test_offlines_requests_hold_the_preset_batches_and_answer_as_the_sync_run(pack):
    """Each request of OpenVINO's Offline ring is filled with its own batch outside the clock
    (moved on by one ring's worth of batches between timed blocks) and only restarted inside
    it: after a timed series every request still holds the batch it was given, its outputs are
    the synchronous run's on that batch, the requests hold distinct batches and the blocks sent
    every rotating batch, so a request restarted on another batch, on stale inputs or on fewer
    batches than the series has fails here."""
    from conformance.bench.offline_api import OpenVinoQueue, runner_for
    from conformance.bench.rules import SeriesRules
    from conformance.targets import get_target

    target = get_target("openvino:cpu")
    if reason := target.unavailable_reason():
        pytest.skip(reason)
    case = plan_cases(pack, ["openvino:cpu"], ["mlp"], ["torch-script"], load_rules("dev"))[0]
    pool = sample_pool(Path(case.artifact_dir), case.data_set, 8, 0.05, seed=3)
    session = target.load(Path(case.model_path))
    queue = runner_for(session, target, Path(case.model_path))
    assert isinstance(queue, OpenVinoQueue)
    queue.block_s = 0.0  # blocks of two rings: 20 queries take several blocks
    try:
        for batch in (3, 5):  # a second batch size reshapes the pre-set tensors
            feeds = batched(pool, batch, queue.requests + 2)
            series = queue.series(feeds, SeriesRules(2, 20, 0.0, 5.0))
            assert len(series.latencies_s) >= 20
            assert queue.api["infer_requests"] == queue.requests == len(queue.ring)
            assert queue.sent == set(range(len(feeds)))
            held = [next(k for k, f in enumerate(feeds) if f is feed) for feed in queue.loaded]
            assert len(set(held)) == len(held) == queue.requests
            outputs = []
            for request, feed in zip(queue.ring, queue.loaded):
                for index, name in enumerate(session.input_names):
                    assert np.array_equal(request.get_input_tensor(index).data, feed[name])
                expected = dict(session.run(feed))
                for index, port in enumerate(queue.compiled.outputs):
                    got = np.array(request.get_output_tensor(index).data)
                    want = expected[port.get_any_name()]
                    assert got.shape == want.shape and got.shape[0] == batch
                    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
                outputs.append(got)
            if len(outputs) > 1:
                assert not np.allclose(outputs[0], outputs[1])  # distinct batches per request
    finally:
        queue.close()
