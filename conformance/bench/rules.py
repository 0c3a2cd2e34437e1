"""The benchmark rules: spec/benchmarks.json, one mode (dev or cert) at a time, as typed values."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from conformance.bench.stats import PERCENTILES
from conformance.spec import load_json

RULES_JSON = "benchmarks.json"
MODES = ("dev", "cert")

# the scenario names are the registry's (conformance.bench.registry.SCENARIOS)
__all__ = [
    "MODES",
    "PERCENTILES",
    "RULES_JSON",
    "BenchRules",
    "GuardRules",
    "LoadGenRules",
    "OfflineRules",
    "RulesError",
    "SeriesRules",
    "load_rules",
    "parse_rules",
]


class RulesError(ValueError):
    pass


@dataclass(frozen=True)
class SeriesRules:
    """How long one timed series runs: warm-up, then max(min_queries, min_duration_s) within
    max_duration_s."""

    warmup_queries: int
    min_queries: int
    min_duration_s: float
    max_duration_s: float


@dataclass(frozen=True)
class OfflineRules(SeriesRules):
    batch_sizes: tuple[int, ...]
    rotating_batches: int
    memory_budget_mb: float


@dataclass(frozen=True)
class GuardRules:
    warmup_queries: int
    blocks: int
    queries_per_block: int  # fewer when blocks x 2 x queries would overrun max_duration_s
    max_duration_s: float
    threshold_ratio: float


@dataclass(frozen=True)
class LoadGenRules:
    """MLPerf LoadGen's settings (conformance.bench.loadgen says how each is used); values as
    spec/benchmarks.json gives them, so the rules a record carries read as the spec's."""

    min_duration_ms: int
    offline_batch: int
    offline_min_query_count: int
    offline_qps_headroom: float
    offline_probe_ms: int
    server_min_query_count: int
    server_load_fraction: float
    server_max_qps: float
    server_target_latency_ms: float
    server_latency_factor: float
    server_target_percentile: float
    performance_sample_count: int

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            wanted = (int,) if item.type == "int" else (int, float)
            if isinstance(value, bool) or not isinstance(value, wanted):
                raise TypeError(
                    f"loadgen.{item.name} must be a number ({item.type}), not {value!r}"
                )


@dataclass(frozen=True)
class BenchRules:
    mode: str
    rules_version: str
    seed: int
    threads: int  # 0: the runtime's default
    rotating_inputs: int
    perturbation: float
    timeout_s: float
    single_stream: SeriesRules
    offline: OfflineRules
    caching_guard: GuardRules
    loadgen: LoadGenRules
    early_stopping_min_queries: dict[str, int]
    default_exporters: tuple[str, ...]

    def min_queries_for(self, percentile: str) -> int:
        return self.early_stopping_min_queries[percentile]

    def max_timed_s_per_case(self) -> float:
        """The most time one case spends in timed series (warm-ups, loads and LoadGen aside)."""
        return (
            self.single_stream.max_duration_s
            + len(self.offline.batch_sizes) * self.offline.max_duration_s
            + self.caching_guard.max_duration_s
        )

    def common_in_force(self) -> dict[str, Any]:
        """What every record carries of the rules; its scenario adds its own section
        (conformance.bench.registry.Scenario.rules_in_force)."""
        return {
            "mode": self.mode,
            "rules_version": self.rules_version,
            "threads": self.threads,
            "rotating_inputs": self.rotating_inputs,
            "perturbation": self.perturbation,
            "early_stopping_min_queries": dict(self.early_stopping_min_queries),
        }

    def in_force(self, scenario: str) -> dict[str, Any]:
        """What a record of ``scenario`` carries: the common rules plus its scenario's section
        (none for a name the registry does not know, as a verifier may meet in a bundle)."""
        from conformance.bench.registry import rules_in_force

        return rules_in_force(scenario, self)


def _series(data: dict[str, Any]) -> SeriesRules:
    return SeriesRules(
        int(data["warmup_queries"]),
        int(data["min_queries"]),
        float(data["min_duration_s"]),
        float(data["max_duration_s"]),
    )


def _offline(data: dict[str, Any]) -> OfflineRules:
    series = _series(data)
    return OfflineRules(
        **asdict(series),
        batch_sizes=tuple(int(b) for b in data["batch_sizes"]),
        rotating_batches=int(data["rotating_batches"]),
        memory_budget_mb=float(data["memory_budget_mb"]),
    )


def parse_rules(document: dict[str, Any], mode: str) -> BenchRules:
    if mode not in document["modes"]:
        raise RulesError(
            f"no benchmark mode {mode!r}; the rules have {', '.join(document['modes'])}"
        )
    data = document["modes"][mode]
    try:
        rules = BenchRules(
            mode=mode,
            rules_version=document["rules_version"],
            seed=int(document["seed"]),
            threads=int(data["threads"]),
            rotating_inputs=int(data["rotating_inputs"]),
            perturbation=float(data["perturbation"]),
            timeout_s=float(data["timeout_s"]),
            single_stream=_series(data["single_stream"]),
            offline=_offline(data["offline"]),
            caching_guard=GuardRules(**data["caching_guard"]),
            loadgen=LoadGenRules(**data["loadgen"]),
            early_stopping_min_queries={
                p: int(document["early_stopping_min_queries"][p]) for p in PERCENTILES
            },
            default_exporters=tuple(document["default_exporters"]),
        )
    except (KeyError, TypeError) as error:
        raise RulesError(f"{RULES_JSON} mode {mode!r} is incomplete: {error}") from error
    if rules.rotating_inputs < 2:
        raise RulesError(
            "rotating_inputs must be at least 2: one cached buffer is what the rules forbid"
        )
    return rules


def load_rules(mode: str = "dev") -> BenchRules:
    return parse_rules(load_json(RULES_JSON), mode)
