"""Figures for issue 12: `conformance compare` against the targets' own load + run time, against
`polygraphy run` (when installed), and localisation of a 500-node model on ORT (wall, peak RSS).

    .venv/bin/python scripts/bench_compare.py [--repeats 5] [--figures 1,2,3] [--out DIR]
        [--against CHECKOUT]

Each figure is the median of --repeats runs, measured side by side (paired). `compare` runs as a
user types it (the `conformance` console script). Figure 3's model has activations worth
localising (500 nodes, 256 x 256 values: 0.5 MB each in float64) and the peak is that of the
largest single process (the parent: the float64 reference; the child: the marked runs) against
the model's own load + run in a fresh process. With --against CHECKOUT (another checkout of the
suite, e.g. a git worktree of an earlier commit), figure 1 also times that checkout's compare
(PYTHONPATH=CHECKOUT), alternating with this one's, run for run. The machine may be shared
with other work: figures are leads, not limits (`uptime` is printed with them).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from conformance.localize.controls import chain_model

CONSOLE = Path(sys.executable).with_name("conformance")
COMPARE = (
    [str(CONSOLE), "compare"]
    if CONSOLE.exists()
    else [sys.executable, "-m", "conformance", "compare"]
)
TARGETS = ("ort:cpu", "ort:cpu:opt=disabled", "openvino:cpu", "tract")
OWN_RUN = """
import sys, time, numpy as np
from conformance.targets import get_target
t = time.perf_counter()
session = get_target(sys.argv[1]).load(sys.argv[2])
session.run({"x": np.load(sys.argv[3])})
print(time.perf_counter() - t)
"""


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Wall seconds, the peak RSS (kB) of the command's processes, and its output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    result = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before), result.stdout + result.stderr


def peak_of(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Like timed, in a fresh wrapper process so the peak is this command's alone."""
    wrapper = (
        "import resource, subprocess, sys, time, json, os\n"
        "t = time.perf_counter()\n"
        "r = subprocess.run(json.loads(sys.argv[1]), capture_output=True, text=True)\n"
        "w = time.perf_counter() - t\n"
        "print(json.dumps([w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
        "r.returncode, (r.stdout + r.stderr)[-400:]]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, json.dumps(command)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    wall, peak, code, text = json.loads(out.stdout)
    return wall, peak, f"rc={code} {text}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--figures", default="1,2,3", help="which figures: 1, 2, 3")
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-compare"))
    parser.add_argument(
        "--against", type=Path, default=None, help="another checkout for figure 1, paired"
    )
    args = parser.parse_args()
    out = args.out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    load = os.getloadavg()[0]
    print(
        f"machine: {os.cpu_count()} cores, load average {load:.1f} at the start (shared with "
        f"other work); medians of {args.repeats}; compare = {' '.join(COMPARE[-2:])}"
    )
    figures = {f.strip() for f in args.figures.split(",")}
    if "1" in figures:
        speed(out, args.repeats, args.against)
    if "2" in figures:
        against_polygraphy(out, args.repeats)
    if "3" in figures:
        localisation(out)


def speed(out: Path, repeats: int, against: Path | None = None) -> None:
    """1. a 100-node model on 4 CPU targets: compare's wall vs the targets' own load + run
    (and, with ``against``, that checkout's compare, alternating run for run)"""
    model = chain_model(out / "chain100.onnx", 100, width=64)
    x = np.random.default_rng(1).standard_normal((4, 64)).astype(np.float32)
    np.save(out / "x.npy", x)
    np.savez(out / "x.npz", x=x)
    from conformance.targets import get_target

    targets = [t for t in TARGETS if get_target(t).unavailable_reason() is None]
    walls, owns, processes, checks, others = [], [], [], [], []

    def compare(folder: Path, env: dict[str, str] | None = None) -> float:
        wall, _, text = timed(
            [
                *COMPARE,
                str(model),
                "--inputs",
                str(out / "x.npz"),
                *[a for t in targets for a in ("--target", t)],
                "--out",
                str(folder),
            ],
            env,
        )
        assert "conforms" in text, text[-2000:]
        return wall

    for k in range(repeats):
        if against is not None:
            others.append(compare(out / f"a{k}", {"PYTHONPATH": str(against.resolve())}))
        wall = compare(out / f"c{k}")
        document = json.loads((out / f"c{k}" / "results.json").read_text())
        checks.append(sum(c["duration_s"] for c in document["checks"]))
        own = process = 0.0
        for target in targets:
            started = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-c", OWN_RUN, target, str(model), str(out / "x.npy")],
                capture_output=True,
                text=True,
            )
            process += time.perf_counter() - started
            own += float(result.stdout.strip().splitlines()[-1])
        walls.append(wall)
        owns.append(own)
        processes.append(process)
    w, o = statistics.median(walls), statistics.median(owns)
    p, c = statistics.median(processes), statistics.median(checks)
    print(
        f"compare, 100-node model, {len(targets)} targets ({', '.join(targets)}): wall {w:.2f} s; "
        f"sum of the targets' own load+run {o:.2f} s; ratio {w / o:.2f}x (issue: <= 2x); "
        f"sum of one fresh process per target (start, import, load, run) {p:.2f} s: {w / p:.2f}x; "
        f"the checks' own durations (child start, load, runs: determinism, batch invariance) "
        f"sum to {c:.2f} s"
    )
    if others:
        a = statistics.median(others)
        print(
            f"  against {against}: its compare {a:.2f} s (ratio {a / o:.2f}x), this checkout's "
            f"{w:.2f} s: {w / a:.2f}x of it (paired: {', '.join(f'{x:.2f}' for x in others)} vs "
            f"{', '.join(f'{x:.2f}' for x in walls)})"
        )


def against_polygraphy(out: Path, repeats: int) -> None:
    """2. against polygraphy run on a pack artifact (cnn/torch-script), ORT, same inputs"""
    from conformance.pack.load import Pack
    from conformance.spec import PACK_DIR

    artifact = next(
        a for a in Pack(PACK_DIR).model("cnn").artifacts if a.exporter == "torch-script"
    )
    polygraphy = shutil.which("polygraphy") or str(Path(sys.executable).with_name("polygraphy"))
    if Path(polygraphy).exists():
        feeds = dict(artifact.inputs(1))
        inputs_json = out / "inputs.json"
        from polygraphy.json import save_json

        save_json([feeds], str(inputs_json))
        ours, theirs = [], []
        for k in range(repeats):
            ours.append(
                timed(
                    [
                        *COMPARE,
                        str(artifact.path),
                        "--inputs",
                        str(artifact.directory / "test_data_set_1"),
                        "--target",
                        "ort:cpu",
                        "--out",
                        str(out / f"p{k}"),
                    ]
                )[0]
            )
            theirs.append(
                timed(
                    [
                        polygraphy,
                        "run",
                        str(artifact.path),
                        "--onnxrt",
                        "--load-inputs",
                        str(inputs_json),
                    ]
                )[0]
            )
        a, b = statistics.median(ours), statistics.median(theirs)
        print(
            f"cnn/torch-script on ORT: compare {a:.2f} s (float64 reference, determinism, batch "
            f"invariance) vs polygraphy run --onnxrt {b:.2f} s: {a / b:.2f}x"
        )
    else:
        print("polygraphy not installed: `.venv/bin/pip install polygraphy==0.53.6` for figure 2")


def localisation(out: Path) -> None:
    """3. localisation of a 500-node model on ORT: wall and peak RSS vs the model's own run"""
    big = chain_model(out / "chain500.onnx", 500, width=256)
    x = np.random.default_rng(1).standard_normal((256, 256)).astype(np.float32)
    np.save(out / "x500.npy", x)
    np.savez(out / "x500.npz", x=x)
    env = {"CONFORMANCE_NODE_DEFECT": "tanh200"}
    wall, peak, text = peak_of(
        [
            *COMPARE,
            str(big),
            "--inputs",
            str(out / "x500.npz"),
            "--target",
            "backend:conformance.localize.controls:OneNodeDefect",
            "--out",
            str(out / "loc"),
        ],
        env,
    )
    localised = json.loads((out / "loc" / "results.json").read_text())["usermodel"]
    summaries = [entry.get("summary", "") for entry in localised.get("localizations", [])]
    assert any(s.startswith("first diverging node: tanh200 ") for s in summaries), (text, summaries)
    own_wall, own_peak, _ = peak_of(
        [sys.executable, "-c", OWN_RUN, "ort:cpu", str(big), str(out / "x500.npy")]
    )
    print(
        f"localisation, 500-node model (256 x 256 activations, {big.stat().st_size >> 20} MB) on "
        f"ORT (defect at tanh200): wall {wall:.1f} s "
        f"(issue: <= 60 s); peak RSS {peak / 1024:.0f} MB vs the model's own run "
        f"{own_peak / 1024:.0f} MB: {peak / own_peak:.2f}x (issue: <= 3x)"
    )


if __name__ == "__main__":
    main()
