"""How runs are timed: rules from spec/benchmarks.json, scenarios, percentiles, the caching guard.

Scenario names follow MLPerf Inference: SingleStream, Offline, plus ColdStart and CachingGuard,
and LoadGen-Offline / LoadGen-Server when mlperf_loadgen drives the queries. Every scenario
records the rules in force and per-percentile validity flags (MLPerf early-stopping minimums).

The map of this room:
- registry.py: one entry per scenario (how it is measured, how it is recorded); add one there.
- rules.py, cases.py, inputs.py: the rules, what is benchmarked, what it is fed.
- scenarios.py, guard.py, loadgen.py, timing.py, rss.py: measurements (raw results), run where
  the runtime lives; timing.py drives pytest-benchmark.
- stats.py (the percentile list), records.py (frozen BenchRecord and its JSON): the figures.
- runner.py + worker.py: a child process per case for `conformance bench`, `run --bench` and
  certify; pytest_hooks.py: the same entries as pytest items; table.py: the plain-text tables.
"""
