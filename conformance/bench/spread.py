"""How far repeated benchmark runs disagree.

``python -m conformance.bench.spread RUN_DIR RUN_DIR ...``.

For every (model, exporter, target) measured in all the given run folders: the SingleStream p50
(end-to-end, and the runtime latency's where recorded) of each run and its spread,
(max - min) / median; likewise the Offline samples/s at the largest
batch measured, both as all samples over all time and as batch / p50. Prints one table per
figure, then the median and worst spread.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from conformance.bench.records import BenchRecord, OfflineFigures, SingleStreamFigures
from conformance.bench.stats import spread
from conformance.results.document import RESULTS_JSON, load_document

RUNTIME_FIGURE = {"runtime_p50_ms": "SingleStream runtime p50 (the runtime's bound call), ms"}
FIGURES = {
    "p50_ms": "SingleStream p50 (end-to-end), ms",
    "offline_samples_per_s": "Offline samples/s at the largest batch (all samples / all time)",
    "offline_samples_per_s_at_p50": "Offline samples/s at the largest batch (batch / p50)",
}


def figures(run_dir: Path) -> dict[tuple[str, str, str], dict[str, float]]:
    found: dict[tuple[str, str, str], dict[str, float]] = {}
    for data in load_document(run_dir / RESULTS_JSON).get("benchmarks", []):
        record = BenchRecord.from_dict(data)
        if not record.measured:
            continue
        key = (record.model, record.exporter, record.target)
        figures = record.figures
        if isinstance(figures, SingleStreamFigures):
            found.setdefault(key, {})["p50_ms"] = figures.latency_ms["p50"]
            if figures.runtime_latency_ms is not None:
                found[key]["runtime_p50_ms"] = figures.runtime_latency_ms["p50"]
        elif isinstance(figures, OfflineFigures):
            largest = max(figures.throughput, key=lambda e: e.batch)
            found.setdefault(key, {})["offline_samples_per_s"] = largest.samples_per_s
            if largest.samples_per_s_at_p50 is not None:
                found[key]["offline_samples_per_s_at_p50"] = largest.samples_per_s_at_p50
    return found


def spreads(run_dirs: list[Path], runtime: bool = False) -> list[dict[str, Any]]:
    """Rows of FIGURES (``runtime``: and RUNTIME_FIGURE) measured in every run folder."""
    runs = [figures(d) for d in run_dirs]
    rows = []
    for key in runs[0]:
        for figure in {**FIGURES, **(RUNTIME_FIGURE if runtime else {})}:
            found = [run.get(key, {}).get(figure) for run in runs]
            values = [v for v in found if v is not None]
            if len(values) == len(found):
                rows.append(
                    {
                        "model": key[0],
                        "exporter": key[1],
                        "target": key[2],
                        "figure": figure,
                        "values": values,
                        "spread": spread(values),
                    }
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", type=Path, nargs="+")
    rows = spreads(parser.parse_args().run_dirs, runtime=True)
    for figure, unit in {**FIGURES, **RUNTIME_FIGURE}.items():
        chosen = [r for r in rows if r["figure"] == figure]
        if not chosen:
            continue
        print(f"\n{unit}: value in each run, spread = (max - min) / median")
        for r in chosen:
            values = " ".join(
                f"{v:12.4f}" if figure.endswith("_ms") else f"{v:12.0f}" for v in r["values"]
            )
            print(
                f"{r['model'] + '/' + r['exporter']:34s} {r['target']:16s} {values}  "
                f"{100 * r['spread']:6.1f}%"
            )
        worst = max(chosen, key=lambda r: r["spread"])
        print(
            f"median spread {100 * float(np.median([r['spread'] for r in chosen])):.1f}%, worst "
            f"{100 * worst['spread']:.1f}% ({worst['model']} on {worst['target']})"
        )


if __name__ == "__main__":
    main()
