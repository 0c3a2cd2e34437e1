"""Plain-text tables of benchmark records: SingleStream latency and Offline throughput."""

from __future__ import annotations

from typing import Any

ESTIMATE = "~"  # prefix of a percentile measured with fewer queries than its early-stopping minimum


def _ms(record: dict[str, Any], percentile: str) -> str:
    value = record["latency_ms"][percentile]
    mark = "" if record["valid"][percentile] else ESTIMATE
    return f"{mark}{value:.4f}"


def first_line(message: str, limit: int = 120) -> str:
    """Runtime errors can run to pages (compiler diagnostics): their first line, shortened."""
    line = message.strip().splitlines()[0] if message.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _label(record: dict[str, Any]) -> str:
    return f"{record['model']}/{record['exporter']}"


def single_stream_table(records: list[dict[str, Any]]) -> str:
    rows = [r for r in records if r["scenario"] == "SingleStream"]
    if not rows:
        return ""
    lines = [
        "SingleStream (batch 1) latency, ms; ~ = estimate (fewer queries than its early-stopping minimum)",
        f"{'model/exporter':34s} {'target':16s} {'queries':>8s} "
        + " ".join(f"{name:>10s}" for name in ("p50", "p90", "p99", "max")),
    ]
    for r in rows:
        if r["status"] != "ok":
            lines.append(
                f"{_label(r):34s} {r['target']:16s} {r['status']}: {first_line(r['problems'][0], 60)}"
            )
            continue
        lines.append(
            f"{_label(r):34s} {r['target']:16s} {r['queries']:8d} {_ms(r, 'p50'):>10s} "
            f"{_ms(r, 'p90'):>10s} {_ms(r, 'p99'):>10s} {r['latency_ms']['max']:10.4f}"
        )
    return "\n".join(lines)


def offline_table(records: list[dict[str, Any]]) -> str:
    rows = [r for r in records if r["scenario"] == "Offline"]
    if not rows:
        return ""
    batches = sorted({e["batch"] for r in rows for e in r.get("throughput", [])})
    lines = [
        "Offline throughput, samples/s, by batch size",
        f"{'model/exporter':34s} {'target':16s} "
        + " ".join(f"{'b' + str(b):>10s}" for b in batches),
    ]
    for r in rows:
        if r["status"] != "ok":
            lines.append(
                f"{_label(r):34s} {r['target']:16s} {r['status']}: {first_line(r['problems'][0], 60)}"
            )
            continue
        by_batch = {e["batch"]: e["samples_per_s"] for e in r["throughput"]}
        cells = " ".join(
            f"{by_batch[b]:10.0f}" if b in by_batch else f"{'-':>10s}" for b in batches
        )
        lines.append(f"{_label(r):34s} {r['target']:16s} {cells}")
    return "\n".join(lines)


def other_lines(records: list[dict[str, Any]]) -> list[str]:
    """ColdStart, guard and LoadGen results, one line each."""
    lines = []
    for r in records:
        name = f"{r['scenario']:14s} {_label(r)} on {r['target']}"
        if r["status"] != "ok" and r["scenario"] not in ("SingleStream", "Offline"):
            lines.append(f"{name}: {r['status']}: {first_line(r['problems'][0], 100)}")
        elif r["scenario"] == "ColdStart":
            c = r["cold_start"]
            lines.append(
                f"{name}: create {c['session_create_ms']:.1f} ms, first inference "
                f"{c['first_inference_ms']:.2f} ms, peak RSS {c['peak_rss_mb']:.0f} MB"
            )
        elif r["scenario"] == "CachingGuard":
            g = r["caching_guard"]
            verdict = "FLAGGED: " + "; ".join(g["problems"]) if g["flagged"] else "not flagged"
            ratio = "inf" if g["ratio"] is None else f"{g['ratio']:.2f}"
            lines.append(f"{name}: rotated/repeated p50 ratio {ratio}, {verdict}")
        elif r["scenario"].startswith("LoadGen"):
            lg = r["loadgen"]
            lines.append(
                f"{name}: {lg['result']}, {lg['samples_per_s']:.0f} samples/s, "
                f"p99 {lg['latency_ms'].get('p99', float('nan')):.3f} ms ({lg['logs']['summary']})"
            )
    return lines


def render(records: list[dict[str, Any]]) -> str:
    parts = [single_stream_table(records), offline_table(records), "\n".join(other_lines(records))]
    return "\n\n".join(p for p in parts if p)
