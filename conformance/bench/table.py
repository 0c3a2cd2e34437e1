"""Plain-text tables of benchmark records: SingleStream latency, Offline throughput, the rest.

Which table a record goes in follows from its figures' type, never from its scenario's name.
"""

from __future__ import annotations

from collections.abc import Sequence

from conformance.bench.records import (
    BenchRecord,
    ColdStartFigures,
    GuardFigures,
    LoadGenFigures,
    OfflineFigures,
    SingleStreamFigures,
)

ESTIMATE = "~"  # prefix of a percentile measured with fewer queries than its early-stopping minimum
TABLED = ("SingleStream", "Offline")  # scenarios with a table of their own


def first_line(message: str, limit: int = 120) -> str:
    """Runtime errors can run to pages (compiler diagnostics): their first line, shortened."""
    line = message.strip().splitlines()[0] if message.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _ms(figures: SingleStreamFigures, percentile: str) -> str:
    mark = "" if figures.valid[percentile] else ESTIMATE
    return f"{mark}{figures.latency_ms[percentile]:.4f}"


def _label(record: BenchRecord) -> str:
    return f"{record.model}/{record.exporter}"


def _not_measured(record: BenchRecord) -> str:
    return (
        f"{_label(record):34s} {record.target:16s} {record.status}: "
        f"{first_line(record.problems[0], 60)}"
    )


def single_stream_table(records: Sequence[BenchRecord]) -> str:
    rows = [r for r in records if r.scenario == "SingleStream"]
    if not rows:
        return ""
    lines = [
        "SingleStream (batch 1) latency, ms; ~ = estimate "
        "(fewer queries than its early-stopping minimum)",
        f"{'model/exporter':34s} {'target':16s} {'queries':>8s} "
        + " ".join(f"{name:>10s}" for name in ("p50", "p90", "p99", "max")),
    ]
    for r in rows:
        f = r.figures
        if not r.measured or not isinstance(f, SingleStreamFigures):
            lines.append(_not_measured(r))
            continue
        lines.append(
            f"{_label(r):34s} {r.target:16s} {f.queries:8d} {_ms(f, 'p50'):>10s} "
            f"{_ms(f, 'p90'):>10s} {_ms(f, 'p99'):>10s} {f.latency_ms['max']:10.4f}"
        )
    return "\n".join(lines)


def runtime_table(records: Sequence[BenchRecord]) -> str:
    """SingleStream's runtime latency beside end-to-end, and a runtime tool's p50 where one
    was run (--compare-tools)."""
    rows = [
        r
        for r in records
        if isinstance(r.figures, SingleStreamFigures) and r.figures.runtime_latency_ms is not None
    ]
    if not rows:
        return ""
    lines = [
        "SingleStream p50, ms: end-to-end (session.run) / runtime (inputs bound before the "
        "clock) / the runtime's own tool, ratio = runtime / tool",
        f"{'model/exporter':34s} {'target':16s} {'end-to-end':>10s} {'runtime':>10s} "
        f"{'tool':>10s} {'ratio':>6s}  tool",
    ]
    for r in rows:
        f = r.figures
        assert isinstance(f, SingleStreamFigures) and f.runtime_latency_ms is not None
        tool = f.tool
        cells = (
            f"{tool.p50_ms:10.4f} {tool.ratio or float('nan'):6.2f}  {tool.tool}"
            if tool is not None
            else f"{'-':>10s} {'-':>6s}"
        )
        lines.append(
            f"{_label(r):34s} {r.target:16s} {f.latency_ms['p50']:10.4f} "
            f"{f.runtime_latency_ms['p50']:10.4f} {cells}"
        )
    return "\n".join(lines)


def offline_table(records: Sequence[BenchRecord]) -> str:
    rows = [r for r in records if r.scenario == "Offline"]
    if not rows:
        return ""
    measured = {id(r): r.figures for r in rows if isinstance(r.figures, OfflineFigures)}
    batches = sorted({e.batch for f in measured.values() for e in f.throughput})
    lines = [
        "Offline throughput, samples/s, by batch size",
        f"{'model/exporter':34s} {'target':16s} "
        + " ".join(f"{'b' + str(b):>10s}" for b in batches),
    ]
    for r in rows:
        f = measured.get(id(r))
        if not r.measured or f is None:
            lines.append(_not_measured(r))
            continue
        by_batch = {e.batch: e.samples_per_s for e in f.throughput}
        cells = " ".join(
            f"{by_batch[b]:10.0f}" if b in by_batch else f"{'-':>10s}" for b in batches
        )
        lines.append(f"{_label(r):34s} {r.target:16s} {cells}")
    return "\n".join(lines)


def other_lines(records: Sequence[BenchRecord]) -> list[str]:
    """ColdStart, guard and LoadGen results, one line each."""
    lines = []
    for r in records:
        if r.scenario in TABLED:
            continue
        name = f"{r.scenario:14s} {_label(r)} on {r.target}"
        f = r.figures
        if not r.measured:
            lines.append(f"{name}: {r.status}: {first_line(r.problems[0], 100)}")
        elif isinstance(f, ColdStartFigures):
            c = f.cold_start
            lines.append(
                f"{name}: create {c.session_create_ms:.1f} ms, first inference "
                f"{c.first_inference_ms:.2f} ms, peak RSS {c.peak_rss_mb:.0f} MB"
            )
        elif isinstance(f, GuardFigures):
            g = f.caching_guard
            verdict = "FLAGGED: " + "; ".join(g.problems) if g.flagged else "not flagged"
            ratio = "inf" if g.ratio is None else f"{g.ratio:.2f}"
            lines.append(f"{name}: rotated/repeated p50 ratio {ratio}, {verdict}")
        elif isinstance(f, LoadGenFigures):
            lg = f.loadgen
            samples_per_s = lg.samples_per_s if lg.samples_per_s is not None else float("nan")
            lines.append(
                f"{name}: {lg.result}, {samples_per_s:.0f} samples/s, "
                f"p99 {lg.latency_ms.get('p99', float('nan')):.3f} ms ({lg.logs['summary']})"
            )
    return lines


def render(records: Sequence[BenchRecord]) -> str:
    parts = [
        single_stream_table(records),
        runtime_table(records),
        offline_table(records),
        "\n".join(other_lines(records)),
    ]
    return "\n\n".join(p for p in parts if p)
