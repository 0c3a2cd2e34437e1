"""Judge benchmark records against a profile's benchmark requirement: the rules, never the speed.

A record that claims other rules than the spec's for its mode, or whose validity flags, query
counts and percentiles disagree with each other, is a broken rule of the bundle (a rejection).
A record measured honestly under the rules that still falls short of them (stopped early by
max_duration_s, a batch size skipped, the caching guard flagged, a crash) makes the profile
"not certified", with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from conformance.bench.rules import BenchRules, RulesError, load_rules
from conformance.certify.interface import (
    CERTIFIED,
    NOT_CERTIFIED,
    CertifyUsageError,
    Finding,
    ProfileOutcome,
    Reason,
)
from conformance.certify.profiles import EXAMPLES, Profile
from conformance.results.records import PERCENTILES

OK = "ok"


def normalised(value: Any) -> Any:
    return json.loads(json.dumps(value))


def rules_for(mode: str) -> BenchRules:
    try:
        return load_rules(mode)
    except RulesError as error:
        raise CertifyUsageError(f"benchmark rules: {error}") from error


def consistency(record: Mapping[str, Any], rules: BenchRules) -> list[str]:
    """Relations that hold for every honest record, whatever its speed."""
    problems = []
    queries = record.get("queries")
    latency = record.get("latency_ms")
    if (
        isinstance(latency, dict)
        and isinstance(record.get("valid"), dict)
        and isinstance(queries, int)
    ):
        expected = {p: queries >= rules.min_queries_for(p) for p in PERCENTILES}
        if {p: record["valid"].get(p) for p in PERCENTILES} != expected:
            problems.append(
                f"validity flags {record['valid']} do not follow from {queries} queries"
            )
        ordered = [latency[k] for k in ("min", *PERCENTILES, "max") if k in latency]
        if not all(isinstance(v, (int, float)) for v in ordered) or ordered != sorted(ordered):
            problems.append("latency percentiles are not in increasing order")
        histogram = record.get("latency_histogram")
        if isinstance(histogram, dict) and sum(histogram.get("counts", [])) != queries:
            problems.append(
                f"latency histogram counts {sum(histogram.get('counts', []))} calls, not {queries}"
            )
    if record.get("scenario") == "Offline" and isinstance(record.get("throughput"), list):
        total = sum(e.get("queries", 0) for e in record["throughput"])
        if queries is not None and total != queries:
            problems.append(f"Offline queries {queries} is not the sum over batch sizes {total}")
    return problems


def shortfalls(
    record: Mapping[str, Any], rules: BenchRules, valid_percentiles: Iterable[str]
) -> list[str]:
    """How an honest record falls short of the rules (empty: rules met)."""
    if record.get("status") != OK:
        return [f"status {record.get('status')}: {'; '.join(record.get('problems', []))[:200]}"]
    why = [f"problem: {p[:160]}" for p in record.get("problems", [])]
    scenario = record.get("scenario")
    if scenario == "SingleStream":
        if record.get("queries", 0) < rules.single_stream.min_queries:
            why.append(
                f"{record.get('queries')} queries < min_queries {rules.single_stream.min_queries}"
            )
        invalid = [p for p in valid_percentiles if not (record.get("valid") or {}).get(p)]
        if invalid:
            why.append(f"percentiles {invalid} not valid")
    elif scenario == "Offline":
        measured = {e.get("batch"): e.get("queries", 0) for e in record.get("throughput", [])}
        missing = [b for b in rules.offline.batch_sizes if b not in measured]
        short = [b for b, q in measured.items() if q < rules.offline.min_queries]
        if missing:
            why.append(f"batch sizes {missing} not measured")
        if short:
            why.append(f"batch sizes {short} below min_queries {rules.offline.min_queries}")
    elif (
        scenario == "CachingGuard"
        and (record.get("caching_guard") or {}).get("flagged") is not False
    ):
        why.append("the caching guard flagged this target")
    return why


def record_findings(record: Mapping[str, Any], rules: BenchRules) -> list[Finding]:
    subject = str(record.get("id", "?"))
    found = []
    if record.get("mode") != rules.mode or normalised(record.get("rules")) != normalised(
        rules.in_force(str(record.get("scenario", "")))
    ):
        found.append(
            Finding(
                Reason.BENCHMARK_RULES_NOT_MET,
                f"measured under other rules than the spec's "
                f"{rules.mode} mode (rules_version {rules.rules_version})",
                subject,
            )
        )
    found += [
        Finding(Reason.BENCHMARK_INCONSISTENT, p, subject) for p in consistency(record, rules)
    ]
    return found


def judge_benchmarks(
    profile: Profile, records: list[Mapping[str, Any]], target: str, models: list[str]
) -> tuple[list[Finding], ProfileOutcome]:
    """Findings (rules broken by the bundle) and the profile's outcome for ``target``."""
    need = profile.benchmarks
    assert need is not None
    rules = rules_for(need.mode)
    mine = [r for r in records if r.get("target") == target and r.get("mode") == need.mode]
    found: list[Finding] = []
    missing, short = [], []
    for model in models:
        for scenario in need.scenarios:
            candidates = [
                r for r in mine if r.get("model") == model and r.get("scenario") == scenario
            ]
            if not candidates:
                missing.append(f"{model} {scenario}")
                continue
            for record in candidates:
                found += record_findings(record, rules)
            if all(shortfalls(r, rules, need.valid_percentiles) for r in candidates):
                first = shortfalls(candidates[0], rules, need.valid_percentiles)[0][:120]
                short.append(f"{model} {scenario} ({first})")
    found += [Finding(Reason.MISSING_BENCHMARK, f"no {need.mode}-mode record", m) for m in missing]
    required = len(models) * len(need.scenarios)
    reasons = []
    if missing:
        reasons.append(
            f"{len(missing)} required benchmark records missing: {', '.join(missing[:EXAMPLES])}"
        )
    if short:
        reasons.append(
            f"{len(short)} of {required} benchmarks fall short of the {need.mode}-mode rules: "
            + "; ".join(short[:EXAMPLES])
            + (f" and {len(short) - EXAMPLES} more" if len(short) > EXAMPLES else "")
        )
    status = NOT_CERTIFIED if reasons else CERTIFIED
    return found, ProfileOutcome(
        profile.name, status, tuple(reasons), required, required - len(missing) - len(short)
    )
