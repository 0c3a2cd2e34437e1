"""Chart geometry for inline SVG: coordinates and labels here, markup in templates/_charts.html.j2.

Keeping text out of this module's output means every label is escaped by the template engine.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from conformance.compare.stats import RATIO_BIN_EDGES
from conformance.report.signs import number


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # under the bar
    value: str  # above the bar
    failing: bool  # drawn hatched as well as coloured


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    bars: tuple[Bar, ...]
    title: str
    x_label: str
    divider_x: float | None = None  # a dashed line (the tolerance) between two bars


def bin_labels(edges: tuple[float, ...]) -> list[str]:
    """Each bin by its upper edge ("<0.01"); the open last bin by its lower one ("\u226510")."""
    return [
        f"\u2265{lo:g}" if math.isinf(hi) else f"<{hi:g}" for lo, hi in itertools.pairwise(edges)
    ]


def bar_chart(
    counts: list[int],
    labels: list[str],
    title: str,
    x_label: str,
    failing_from: int | None = None,
    width: int = 360,
    height: int = 150,
) -> BarChart:
    """Bar heights on a log scale (counts span orders of magnitude); the count is printed on
    each bar."""
    left, bottom, top = 8, 34, 26
    slot = (width - 2 * left) / max(len(counts), 1)
    tallest = math.log10(max(counts, default=1) + 1) or 1.0
    bars = []
    for i, (count, label) in enumerate(zip(counts, labels, strict=True)):
        bar_h = (height - bottom - top) * math.log10(count + 1) / tallest
        bars.append(
            Bar(
                x=round(left + i * slot + 2, 1),
                y=round(height - bottom - bar_h, 1),
                width=round(slot - 4, 1),
                height=round(bar_h, 1),
                label=label,
                value=str(count),
                failing=failing_from is not None and i >= failing_from,
            )
        )
    divider = round(left + failing_from * slot, 1) if failing_from is not None else None
    return BarChart(width, height, tuple(bars), title, x_label, divider)


def ratio_histogram(counts: list[int]) -> BarChart:
    """Element counts per bin of |error| / allowed error; bins past 1 are outside tolerance."""
    labels = bin_labels(RATIO_BIN_EDGES)
    failing_from = next(i for i, lo in enumerate(RATIO_BIN_EDGES) if lo >= 1.0)
    counts = list(counts)[: len(labels)] + [0] * (len(labels) - len(counts))
    return bar_chart(
        counts,
        labels,
        "elements by |error| / allowed error",
        "|error| / allowed (dashed: the tolerance; bars marked \u2717 fail)",
        failing_from,
    )


def latency_histogram(edges_ms: list[float], counts: list[int]) -> BarChart | None:
    if not counts or len(edges_ms) != len(counts) + 1:
        return None
    labels = [number(e, 2) for e in edges_ms[:-1]]
    return bar_chart(
        list(counts), labels, "queries by latency", "latency (ms, bin start)", width=420
    )


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class LadderRow:
    """One benchmark's latency spread: a line min..max, a box p50..p90, a mark at p99."""

    y: float
    label: str
    min_x: float | None
    max_x: float | None
    p50_x: float | None
    p90_x: float | None
    p99_x: float | None


@dataclass(frozen=True)
class LadderChart:
    width: int
    height: int
    plot_left: int
    rows: tuple[LadderRow, ...]
    ticks: tuple[Tick, ...]
    title: str


class LogScale:
    def __init__(self, low: float, high: float, start: float, end: float) -> None:
        self.low = math.log10(low)
        self.span = (math.log10(high) - self.low) or 1.0
        self.start, self.end = start, end

    def __call__(self, value: float | None) -> float | None:
        """Where a value lies; None for a missing or non-positive one (no place on a log scale)."""
        if value is None or value <= 0:
            return None
        return self.position(value)

    def position(self, value: float) -> float:
        return round(
            self.start + (math.log10(value) - self.low) / self.span * (self.end - self.start), 1
        )

    def ticks(self) -> tuple[Tick, ...]:
        """Decades; 1-2-5 steps too when the range spans fewer than three decades."""
        first, last = math.floor(self.low), math.ceil(self.low + self.span)
        lowest, highest = sorted((self.start, self.end))
        for steps in ((1,), (1, 2, 5)):
            ticks = tuple(
                Tick(at, f"{k * 10.0**e:g}")
                for e in range(first, last + 1)
                for k in steps
                if (at := self(k * 10.0**e)) is not None and lowest - 0.5 <= at <= highest + 0.5
            )
            if len(ticks) >= 3:
                break
        return ticks


def padded_range(values: list[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    return low / 1.5, high * 1.5


def latency_ladder(rows: list[tuple[str, dict]], title: str) -> LadderChart | None:
    """``rows``: (label, latency_ms dict with any of min, p50, p90, p99, max)."""
    values = [
        v
        for _, lat in rows
        for k, v in lat.items()
        if k in ("min", "p50", "p90", "p99", "max") and isinstance(v, (int, float)) and v > 0
    ]
    if not values:
        return None
    width, plot_left, row_h = 640, 200, 22
    scale = LogScale(*padded_range(values), plot_left, width - 16)
    ladder = tuple(
        LadderRow(
            y=24 + i * row_h,
            label=label,
            min_x=scale(lat.get("min")),
            max_x=scale(lat.get("max")),
            p50_x=scale(lat.get("p50")),
            p90_x=scale(lat.get("p90")),
            p99_x=scale(lat.get("p99")),
        )
        for i, (label, lat) in enumerate(rows)
    )
    return LadderChart(width, 24 + len(rows) * row_h + 30, plot_left, ladder, scale.ticks(), title)


@dataclass(frozen=True)
class Series:
    label: str
    points: str  # SVG polyline points
    marks: tuple[tuple[float, float, str], ...]  # x, y, tooltip
    end: tuple[float, float]  # where the label is written


@dataclass(frozen=True)
class LineChart:
    width: int
    height: int
    plot_left: int
    plot_bottom: int
    series: tuple[Series, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    title: str
    x_label: str
    y_label: str


def throughput_chart(
    series: list[tuple[str, list[tuple[int, float]]]], title: str
) -> LineChart | None:
    """Samples/s against batch size, both on log scales; each line is labelled at its end."""
    points = [(b, s) for _, pts in series for b, s in pts if b > 0 and s > 0]
    if not points:
        return None
    width, height, plot_left, plot_bottom, plot_right = 640, 260, 64, 220, 480
    x = LogScale(*padded_range([b for b, _ in points]), plot_left, plot_right)
    y = LogScale(*padded_range([s for _, s in points]), plot_bottom, 16)
    drawn = []
    for label, pts in series:
        coords = [
            (x.position(b), y.position(s), f"{label}: batch {b}, {s:.4g} samples/s")
            for b, s in sorted(pts)
            if b > 0 and s > 0
        ]
        if coords:
            drawn.append(
                Series(
                    label,
                    " ".join(f"{cx},{cy}" for cx, cy, _ in coords),
                    tuple(coords),
                    (coords[-1][0] + 6, coords[-1][1] + 4),
                )
            )
    batches = sorted({b for b, _ in points})
    return LineChart(
        width,
        height,
        plot_left,
        plot_bottom,
        tuple(drawn),
        tuple(Tick(x.position(b), str(b)) for b in batches),
        y.ticks(),
        title,
        "batch size",
        "samples/s",
    )
