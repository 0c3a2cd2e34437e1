"""Benchmark records for the results document, built from the raw measurements.

One record per (case, scenario, mode); its ``id`` is stable, so writing a record again (a rerun
into the same run folder) replaces the old one. ``status`` is ok, error, crashed, timed-out or
skipped, with ``problems`` saying why; the figures are present only where they were measured.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from conformance.bench import guard, stats
from conformance.bench.cases import BenchCase
from conformance.bench.rules import BenchRules

OK, ERROR, CRASHED, TIMED_OUT, SKIPPED = "ok", "error", "crashed", "timed-out", "skipped"


def record_id(case: BenchCase, scenario: str, mode: str) -> str:
    return f"{case.key}-{scenario}-{mode}"


def folder_name(record_id: str) -> str:
    """A record id as a portable folder name (target names carry ':')."""
    return re.sub(r"[^A-Za-z0-9._=-]", "_", record_id)


def base_record(
    case: BenchCase, scenario: str, rules: BenchRules, environment: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": record_id(case, scenario, rules.mode),
        "model": case.model,
        "exporter": case.exporter,
        "target": case.target,
        "scenario": scenario,
        "mode": rules.mode,
        "status": OK,
        "problems": [],
        "rules": rules.in_force(scenario),
        "environment": dict(environment),
        "inputs": {
            "data_set": case.data_set,
            "seq_len": case.seq_len,
            "rotating_inputs": rules.rotating_inputs,
        },
    }


def failed(base: dict[str, Any], status: str, message: str) -> dict[str, Any]:
    return {**base, "status": status, "problems": [message]}


def latency_fields(
    latencies_s: list[float], duration_s: float, rules: BenchRules
) -> dict[str, Any]:
    queries = len(latencies_s)
    return {
        "latency_ms": stats.latency_summary_ms(latencies_s),
        "valid": stats.validity(queries, rules.early_stopping_min_queries),
        "queries": queries,
        "duration_s": duration_s,
        "latency_histogram": stats.histogram_ms(latencies_s),
    }


def with_timer(base: dict[str, Any], engine: str) -> dict[str, Any]:
    return {**base, "environment": {**base["environment"], "timer": engine}}


def single_stream(base: dict[str, Any], raw: dict[str, Any], rules: BenchRules) -> dict[str, Any]:
    if not raw["latencies_s"]:
        return failed(base, SKIPPED, f"no timed calls ({raw['engine']})")
    record = {
        **with_timer(base, raw["engine"]),
        **latency_fields(raw["latencies_s"], raw["duration_s"], rules),
    }
    if record["queries"] < rules.single_stream.min_queries:
        record["problems"] = [
            f"max_duration_s stopped the series at {record['queries']} queries "
            f"< min_queries {rules.single_stream.min_queries}"
        ]
    return record


def throughput_entry(batch_raw: dict[str, Any]) -> dict[str, Any]:
    """samples_per_s: MLPerf's definition, all samples over all time (stalls included);
    samples_per_s_at_p50: batch / p50 latency, which a busy machine's stalls barely move."""
    latencies, batch = batch_raw["latencies_s"], batch_raw["batch"]
    p50_s = stats.percentiles(latencies)["p50"]
    return {
        "batch": batch,
        "samples_per_s": stats.samples_per_s(batch, latencies),
        "queries": len(latencies),
        "p50_ms": p50_s * 1e3,
        "samples_per_s_at_p50": batch / p50_s if p50_s > 0 else 0.0,
        "duration_s": batch_raw["duration_s"],
    }


def offline(base: dict[str, Any], sweep: list[dict[str, Any]], rules: BenchRules) -> dict[str, Any]:
    measured = [b for b in sweep if b.get("latencies_s")]
    if not measured:
        return failed(
            base,
            SKIPPED,
            "no batch size was measured: " + "; ".join(b.get("skipped", "") for b in sweep),
        )
    record = with_timer(base, measured[0]["engine"])
    record["throughput"] = [throughput_entry(b) for b in measured]
    record["queries"] = sum(e["queries"] for e in record["throughput"])
    record["duration_s"] = sum(b["duration_s"] for b in measured)
    record["problems"] = [
        f"batch {b['batch']} skipped: {b['skipped']}" for b in sweep if b.get("skipped")
    ]
    return record


def cold_start(base: dict[str, Any], measured: dict[str, float]) -> dict[str, Any]:
    return {
        **base,
        "cold_start": dict(measured),
        "duration_s": (measured["session_create_ms"] + measured["first_inference_ms"]) / 1e3,
    }


def caching_guard(base: dict[str, Any], raw: dict[str, Any], rules: BenchRules) -> dict[str, Any]:
    verdict = guard.judge(raw, rules.caching_guard.threshold_ratio)
    record = {
        **with_timer(base, raw["engine"]),
        "caching_guard": verdict,
        "queries": len(raw["rotating_s"]) + len(raw["repeated_s"]),
        "duration_s": sum(raw["rotating_s"]) + sum(raw["repeated_s"]),
    }
    record["problems"] = list(verdict["problems"])
    return record


def loadgen(base: dict[str, Any], measured: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """LoadGen's own figures; its log paths made relative to the run folder."""
    logs = {name: _relative(Path(path), run_dir) for name, path in measured["logs"].items()}
    section = {**measured, "logs": logs}
    record = {
        **with_timer(base, "mlperf_loadgen (LoadGen times every query itself)"),
        "loadgen": section,
        "latency_ms": dict(measured["latency_ms"]),
        "duration_s": measured["duration_s"],
    }
    if measured.get("query_count") is not None:
        record["queries"] = int(measured["query_count"])
    if measured.get("samples_per_s") is not None:
        record["throughput"] = [
            {
                "batch": int(measured["sut_batch"]),
                "samples_per_s": float(measured["samples_per_s"]),
                "queries": record.get("queries", 0),
            }
        ]
    if not measured["valid"]:
        reason = measured.get("invalid_reason") or "see its summary log"
        record["problems"] = [f"LoadGen result {measured['result']}: {reason}"]
    return record


def _relative(path: Path, run_dir: Path) -> str:
    try:
        return str(path.resolve().relative_to(run_dir.resolve()))
    except ValueError:
        return str(path)
