"""How runs are timed: rules from spec/benchmarks.json, scenarios, percentiles, the caching guard.

Scenario names follow MLPerf Inference: SingleStream, Offline, plus ColdStart and CachingGuard,
and LoadGen-Offline / LoadGen-Server when mlperf_loadgen drives the queries. Every scenario
records the rules in force and per-percentile validity flags (MLPerf early-stopping minimums).
"""
