"""MLPerf LoadGen (package mlcommons-loadgen, module mlperf_loadgen): Offline and Server scenarios.

LoadGen issues the queries and times them itself; our system under test only answers them:
Offline as one large query, run here in batches of ``offline_batch``; Server as a Poisson stream
of batch-1 queries, answered by one worker thread in arrival order. Settings are short (dev) or
long (cert) as the rules say, and calibrated from a quick measurement of the session itself:

- ``offline_expected_qps`` = headroom x the samples/s of a very short LoadGen Offline probe run
  (LoadGen pre-generates min_duration x expected_qps samples: an underestimate ends the run
  before min_duration, INVALID; an overestimate only lengthens it);
- ``server_target_qps`` = load_fraction / p50(batch 1), at most ``server_max_qps``;
- server target latency = max(server_target_latency_ms, latency_factor x calibrated p99).

LoadGen writes mlperf_log_summary.txt and mlperf_log_detail.txt into ``log_dir`` (kept beside the
results); its figures are parsed from the detail log's ``result_*`` entries.
"""

from __future__ import annotations

import json
import queue
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from conformance.bench.inputs import Feeds
from conformance.bench.rules import LoadGenRules
from conformance.bench.stats import PERCENTILE_LEVELS
from conformance.targets.interface import Session

SUMMARY, DETAIL = "mlperf_log_summary.txt", "mlperf_log_detail.txt"
KEPT_LOGS = (SUMMARY, DETAIL)
CALIBRATION_QUERIES = 64
CALIBRATION_S = 0.2
# our percentile name -> LoadGen's: the suite's percentiles, and p97, which LoadGen reports too
LATENCY_KEYS = {
    name: f"{level:.2f}"
    for name, level in sorted({**PERCENTILE_LEVELS, "p97": 97.0}.items(), key=lambda e: e[1])
}


class LoadGenUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class LoadGenResult:
    """One LoadGen run: its own figures, parsed from its detail log in our units (ms,
    samples/s), and what we chose and measured around it. The record's ``loadgen`` section."""

    result: str | None  # LoadGen's verdict: "VALID" or "INVALID"
    valid: bool
    invalid_reason: str | None
    samples_per_s: float | None
    scheduled_samples_per_s: float | None
    query_count: int | None
    overlatency_query_count: int | None
    latency_ms: Mapping[str, float]
    constraints: Mapping[str, bool | None]  # min_duration, min_queries, early_stopping, performance
    loadgen_version: str | None
    logs: Mapping[str, str]  # summary, detail: paths (relative to the run folder in a record)
    duration_s: float
    settings: Mapping[str, Any]  # the TestSettings values we chose
    sut_batch: int
    calibration: Mapping[str, float]  # p50_ms, p99_ms, samples_per_s

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _lg():
    try:
        import mlperf_loadgen
    except ImportError as error:
        raise LoadGenUnavailable(
            "mlperf_loadgen is not installed: pip install mlcommons-loadgen"
        ) from error
    return mlperf_loadgen


def _concatenated(pool: list[Feeds], indices: list[int]) -> Feeds:
    """One SUT batch: the samples' rows stacked, as the Offline SUT builds it for every chunk."""
    rows = [pool[i] for i in indices]
    return {name: np.concatenate([row[name] for row in rows]) for name in rows[0]}


def calibrate(session: Session, pool: list[Feeds], offline_batch: int) -> dict[str, float]:
    """Batch-1 p50/p99, and the fastest SUT-like batch throughput seen in CALIBRATION_S.

    The fastest block, not the mean: LoadGen Offline turns an underestimate into a run shorter
    than min_duration (INVALID), an overestimate only into a longer run.
    """
    singles = []
    for index in range(CALIBRATION_QUERIES + 8):
        start = time.perf_counter_ns()
        session.run(pool[index % len(pool)])
        singles.append((time.perf_counter_ns() - start) * 1e-9)
    singles = singles[8:]  # the first calls warm up
    best, spent, block = 0.0, 0.0, 0
    while spent < CALIBRATION_S or block < 3:
        began = time.perf_counter()
        for chunk in range(4):
            session.run(
                _concatenated(
                    pool, [(block * 4 + chunk + j) % len(pool) for j in range(offline_batch)]
                )
            )
        elapsed = time.perf_counter() - began
        best, spent, block = max(best, 4 * offline_batch / elapsed), spent + elapsed, block + 1
    return {
        "p50_s": float(np.percentile(singles, 50)),
        "p99_s": float(np.percentile(singles, 99)),
        "samples_per_s": best,
    }


def settings_for(
    scenario: str, rules: LoadGenRules, calibration: dict[str, float]
) -> dict[str, Any]:
    """The TestSettings values we choose (recorded with the result)."""
    chosen: dict[str, Any] = {
        "scenario": scenario,
        "mode": "PerformanceOnly",
        "min_duration_ms": rules.min_duration_ms,
    }
    if scenario == "Offline":
        chosen["offline_expected_qps"] = rules.offline_qps_headroom * calibration["samples_per_s"]
        chosen["min_query_count"] = rules.offline_min_query_count
    else:
        chosen["server_target_qps"] = min(
            rules.server_max_qps, rules.server_load_fraction / calibration["p50_s"]
        )
        latency_ms = max(
            rules.server_target_latency_ms,
            rules.server_latency_factor * calibration["p99_s"] * 1e3,
        )
        chosen["server_target_latency_ns"] = int(latency_ms * 1e6)
        chosen["server_target_latency_percentile"] = rules.server_target_percentile
        chosen["min_query_count"] = rules.server_min_query_count
    return chosen


def _test_settings(lg, chosen: dict[str, Any]):
    settings = lg.TestSettings()
    settings.scenario = getattr(lg.TestScenario, chosen["scenario"])
    settings.mode = lg.TestMode.PerformanceOnly
    for key, value in chosen.items():
        if key not in ("scenario", "mode"):
            setattr(settings, key, value)
    return settings


class _OfflineSut:
    """Answers LoadGen's one large query in batches, synchronously in LoadGen's issue thread."""

    def __init__(self, lg, session: Session, pool: list[Feeds], batch: int) -> None:
        self.lg, self.session, self.pool, self.batch = lg, session, pool, batch

    def issue(self, samples) -> None:
        for start in range(0, len(samples), self.batch):
            chunk = samples[start : start + self.batch]
            self.session.run(_concatenated(self.pool, [s.index for s in chunk]))
            self.lg.QuerySamplesComplete([self.lg.QuerySampleResponse(s.id, 0, 0) for s in chunk])

    def flush(self) -> None: ...

    def stop(self) -> None: ...


class _ServerSut:
    """Queues each batch-1 query; one worker thread runs them in arrival order."""

    def __init__(self, lg, session: Session, pool: list[Feeds], batch: int) -> None:
        self.lg, self.session, self.pool = lg, session, pool
        self.queue: queue.Queue = queue.Queue()
        self.worker = threading.Thread(target=self._work, daemon=True)
        self.worker.start()

    def _work(self) -> None:
        while (samples := self.queue.get()) is not None:
            for sample in samples:
                self.session.run(self.pool[sample.index])
                self.lg.QuerySamplesComplete([self.lg.QuerySampleResponse(sample.id, 0, 0)])

    def issue(self, samples) -> None:
        self.queue.put(samples)

    def flush(self) -> None: ...

    def stop(self) -> None:
        self.queue.put(None)
        self.worker.join(timeout=60)


def _start_test(
    lg,
    session: Session,
    pool: list[Feeds],
    chosen: dict[str, Any],
    rules: LoadGenRules,
    log_dir: Path,
) -> float:
    """One LoadGen test; returns its wall time. Only the summary and detail logs are kept."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(log_dir)
    log_settings.log_output.copy_summary_to_stdout = False
    sut_class = _OfflineSut if chosen["scenario"] == "Offline" else _ServerSut
    sut = sut_class(lg, session, pool, rules.offline_batch)
    count = min(rules.performance_sample_count, len(pool))
    handle_sut = lg.ConstructSUT(sut.issue, sut.flush)
    handle_qsl = lg.ConstructQSL(len(pool), count, lambda indices: None, lambda indices: None)
    started = time.perf_counter()
    try:
        lg.StartTestWithLogSettings(
            handle_sut, handle_qsl, _test_settings(lg, chosen), log_settings
        )
    finally:
        sut.stop()
        lg.DestroyQSL(handle_qsl)
        lg.DestroySUT(handle_sut)
    duration_s = time.perf_counter() - started
    for extra in log_dir.iterdir():
        if extra.name not in KEPT_LOGS:
            extra.unlink()
    return duration_s


def probe_offline(
    lg,
    session: Session,
    pool: list[Feeds],
    rules: LoadGenRules,
    calibration: dict[str, float],
    log_dir: Path,
) -> float:
    """Samples/s of a very short LoadGen Offline run: LoadGen's own threads and per-sample
    bookkeeping slow a small model several-fold, which no measurement outside LoadGen shows."""
    chosen = {
        "scenario": "Offline",
        "mode": "PerformanceOnly",
        "min_duration_ms": rules.offline_probe_ms,
        "offline_expected_qps": calibration["samples_per_s"],
        "min_query_count": 1,
    }
    probe_dir = log_dir / "probe"
    try:
        _start_test(lg, session, pool, chosen, rules, probe_dir)
        return float(detail_values(probe_dir / DETAIL)["result_samples_per_second"])
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)


def run_loadgen(
    session: Session, pool: list[Feeds], scenario: str, rules: LoadGenRules, log_dir: Path
) -> LoadGenResult:
    """Run one LoadGen scenario ("Offline" or "Server"): the record's ``loadgen`` section."""
    lg = _lg()
    calibration = calibrate(session, pool, rules.offline_batch)
    if scenario == "Offline":
        calibration["samples_per_s"] = probe_offline(lg, session, pool, rules, calibration, log_dir)
    chosen = settings_for(scenario, rules, calibration)
    duration_s = _start_test(lg, session, pool, chosen, rules, log_dir)
    sut_batch = rules.offline_batch if scenario == "Offline" else 1
    return LoadGenResult(
        **parse_logs(log_dir),
        duration_s=duration_s,
        settings=chosen,
        sut_batch=sut_batch,
        calibration={
            "p50_ms": calibration["p50_s"] * 1e3,
            "p99_ms": calibration["p99_s"] * 1e3,
            "samples_per_s": calibration["samples_per_s"],
        },
    )


def detail_values(detail_path: Path) -> dict[str, Any]:
    """key -> value of every ``:::MLLOG {json}`` line of LoadGen's detail log (last one wins)."""
    values: dict[str, Any] = {}
    for line in detail_path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(":::MLLOG "):
            try:
                entry = json.loads(line[len(":::MLLOG ") :])
            except ValueError:
                continue
            values[entry.get("key", "")] = entry.get("value")
    return values


def parse_logs(log_dir: Path) -> dict[str, Any]:
    """LoadGen's figures from its detail log, in our units (ms, samples/s)."""
    values = detail_values(log_dir / DETAIL)
    latency_ms = {
        name: values[f"result_{level}_percentile_latency_ns"] / 1e6
        for name, level in LATENCY_KEYS.items()
        if f"result_{level}_percentile_latency_ns" in values
    }
    for name in ("mean", "min", "max"):
        if f"result_{name}_latency_ns" in values:
            latency_ms[name] = values[f"result_{name}_latency_ns"] / 1e6
    samples_per_s = values.get(
        "result_samples_per_second", values.get("result_completed_samples_per_sec")
    )
    return {
        "result": values.get("result_validity"),
        "valid": values.get("result_validity") == "VALID",
        "invalid_reason": values.get("result_invalid_reason") or None,
        "samples_per_s": samples_per_s,
        "scheduled_samples_per_s": values.get("result_scheduled_samples_per_sec"),
        "query_count": values.get("result_query_count"),
        "overlatency_query_count": values.get("result_overlatency_query_count"),
        "latency_ms": latency_ms,
        "constraints": {
            "min_duration": values.get("result_min_duration_met"),
            "min_queries": values.get("result_min_queries_met"),
            "early_stopping": values.get("early_stopping_met"),
            "performance": values.get("result_perf_constraints_met"),
        },
        "loadgen_version": values.get("loadgen_version"),
        "logs": {"summary": str(log_dir / SUMMARY), "detail": str(log_dir / DETAIL)},
    }
