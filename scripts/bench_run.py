"""Figures for issue 15 item 5: the default `conformance run` twice (cold, then warm compile
cache) and `conformance targets`, wall times and where each run's time goes.

    .venv/bin/python scripts/bench_run.py [--out /tmp/bench-run] [--targets-repeats 3]
        [--cache DIR] [-- extra `conformance run` arguments, e.g. --target iree:llvm-cpu]

The compile cache is a fresh folder under --out (or --cache: an existing one, then the "first"
run is not cold), so the first run compiles everything and the second finds it compiled.
Each run's phases are read from the time its lines reach stdout: opening (pack verification,
target descriptions), the checks, localisation of numeric findings, then summary and report.
The machine may be shared with other work: figures are leads, not limits (a run is minutes of
both cores; do not run this beside other measurements).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

CLI = [sys.executable, "-m", "conformance"]
# The first line of each phase, as `conformance run` prints it (the compile-cache line comes
# right after the last check; localisation, when there are numeric findings, follows it).
PHASES = (("checks", "run "), ("localisation", "compile cache"), ("summary+report", "model "))


def timed_lines(command: list[str], env: dict[str, str], log: Path) -> tuple[float, list, int]:
    """Run ``command``; (wall s, [(seconds since start, line)], exit code); output to ``log``."""
    started = time.perf_counter()
    stamped = []
    with (
        subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            bufsize=1,
        ) as process,
        open(log, "w", encoding="utf-8") as out,
    ):
        assert process.stdout is not None
        for line in process.stdout:
            stamped.append((time.perf_counter() - started, line.rstrip("\n")))
            out.write(f"{stamped[-1][0]:8.2f} {line}")
        code = process.wait()
    return time.perf_counter() - started, stamped, code


def phases(wall_s: float, stamped: list) -> dict[str, float]:
    """Seconds per phase: from the first line of a phase to the first line of the next one."""
    starts = [("opening", 0.0)]
    for name, prefix in PHASES:
        at = next((t for t, line in stamped if line.startswith(prefix)), None)
        if at is not None:
            starts.append((name, at))
    starts.sort(key=lambda item: item[1])
    ends = [t for _, t in starts[1:]] + [wall_s]
    return {name: end - start for (name, start), end in zip(starts, ends)}


def one_run(label: str, out: Path, env: dict[str, str], extra: list[str]) -> float:
    run_dir = out / label
    shutil.rmtree(run_dir, ignore_errors=True)
    wall_s, stamped, code = timed_lines(
        [*CLI, "run", "--out", str(run_dir), *extra], env, out / f"{label}.log"
    )
    cache_line = next((line for _, line in stamped if line.startswith("compile cache")), "")
    split = ", ".join(
        f"{name} {seconds:.1f} s" for name, seconds in phases(wall_s, stamped).items()
    )
    print(f"{label} run: {wall_s:.1f} s wall (exit {code}): {split}")
    if cache_line:
        print(f"    {cache_line}")
    return wall_s


def targets_wall(env: dict[str, str], repeats: int) -> list[float]:
    walls = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([*CLI, "targets"], capture_output=True, env=env, check=True)
        walls.append(time.perf_counter() - started)
    return walls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-run"))
    parser.add_argument("--cache", type=Path, default=None, help="an existing compile cache")
    parser.add_argument("--targets-repeats", type=int, default=3)
    parser.add_argument("extra", nargs="*", help="more `conformance run` arguments (after --)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.cache or args.out / "compile-cache"
    if args.cache is None:
        shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "CONFORMANCE_CACHE_DIR": str(cache), "PYTHONUNBUFFERED": "1"}
    env.pop("CONFORMANCE_NO_COMPILE_CACHE", None)
    print(f"{os.cpu_count()} CPUs; compile cache {cache}; logs in {args.out}")
    walls = targets_wall(env, args.targets_repeats)
    print(
        f"conformance targets: median {statistics.median(walls):.2f} s wall "
        f"({', '.join(f'{w:.2f}' for w in walls)})"
    )
    first = one_run("first", args.out, env, args.extra)
    second = one_run("second", args.out, env, args.extra)
    print(f"second / first: {second / first:.2f}")


if __name__ == "__main__":
    main()
