"""What gets benchmarked: one case per (artifact, target), the target as the rules configure it."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from conformance.bench.rules import BenchRules
from conformance.pack.load import Pack, PackModel, TestDataSet
from conformance.targets import Target, TargetError, get_target, parse_target_name


@dataclass(frozen=True)
class BenchCase:
    """One artifact on one target; plain values so it crosses a process boundary."""

    model: str
    exporter: str
    target: str
    model_path: str
    artifact_dir: str
    data_set: int  # the test data set whose samples seed the rotating inputs
    seq_len: int | None

    @property
    def key(self) -> str:
        return f"{self.model}-{self.exporter}-{self.target}"


def source_data_set(model: PackModel) -> TestDataSet:
    """The largest batch at the first sequence length (its sample 0 is the batch-1 set)."""
    first = model.data_sets[0]
    same_length = [d for d in model.data_sets if d.seq_len == first.seq_len]
    return max(same_length, key=lambda d: d.batch)


def plan_groups(
    pack: Pack,
    targets: Iterable[str],
    models: Iterable[str] = (),
    exporters: Iterable[str] = (),
    rules: BenchRules | None = None,
) -> list[tuple[BenchCase, ...]]:
    """Targets outermost, then models in pack order. Each group is benchmarked once:

    with ``exporters`` given, every such artifact is its own group (in pack order); without, a
    model's group is its artifacts in the rules' ``default_exporters`` order, and the first that
    loads is used.
    """
    models, chosen = set(models), set(exporters)
    preference = list(rules.default_exporters) if rules else []
    groups: list[tuple[BenchCase, ...]] = []
    for target in targets:
        for model in pack.models:
            if models and model.name not in models:
                continue
            data_set = source_data_set(model)
            by_exporter = {a.exporter: a for a in model.artifacts if a.exists}
            names = (
                [e for e in by_exporter if e in chosen]
                if chosen
                else [e for e in preference or by_exporter if e in by_exporter]
            )
            candidates = tuple(
                BenchCase(
                    model.name,
                    e,
                    target,
                    str(by_exporter[e].path),
                    str(by_exporter[e].directory),
                    data_set.index,
                    data_set.seq_len,
                )
                for e in names
            )
            if chosen:
                groups += [(case,) for case in candidates]
            elif candidates:
                groups.append(candidates)
    return groups


def plan_cases(
    pack: Pack,
    targets: Iterable[str],
    models: Iterable[str] = (),
    exporters: Iterable[str] = (),
    rules: BenchRules | None = None,
) -> list[BenchCase]:
    """One case per group: its first (preferred) artifact, without trying whether it loads."""
    return [group[0] for group in plan_groups(pack, targets, models, exporters, rules)]


# one thread, for a target whose ``threads=1`` still hands each call to a worker thread:
# IREE's local-task with one worker spread 19% (worst 166%) over three dev runs on a shared
# 2-core machine, local-sync runs every call on the caller's thread (SPEC §8)
ONE_THREAD = {"iree:llvm-cpu": "driver=local-sync"}


def bench_target(name: str, threads: int) -> tuple[Target, str]:
    """The target with the rules' thread count applied where its adapter takes ``threads``.

    Returns the target and a description of the threads in force, for the record.
    """
    if threads <= 0:
        return get_target(name), "runtime default"
    parsed = parse_target_name(name)
    if "threads" in parsed.options or "driver" in parsed.options:
        return get_target(name), "set by the target name"
    one_thread = ONE_THREAD.get(parsed.base)
    if threads == 1 and one_thread:
        return get_target(
            f"{name}:{one_thread}"
        ), f"1 (target option {one_thread}: every call on the caller's thread)"
    try:
        return get_target(
            f"{name}:threads={threads}"
        ), f"{threads} (target option threads={threads})"
    except TargetError:
        unset = f"runtime default: {name} has no threads option, {threads} not enforced"
        return get_target(name), unset


@dataclass(frozen=True)
class BenchEnvironment:
    """What could move the numbers besides the runtime itself."""

    threads_requested: int
    threads: str
    target_options: Mapping[str, Any]
    runtime_version: str | None
    cpu_count: int | None
    affinity_cpus: int | None
    load_avg_1m: float
    process: str
    timer: str | None = None  # the timing engine; absent where nothing was timed

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["target_options"] = dict(self.target_options)
        if self.timer is None:
            del data["timer"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BenchEnvironment | None:
        return cls(**data) if data else None


def environment(
    target: Target, threads_in_force: str, requested: int, process: str
) -> BenchEnvironment:
    """The record's ``environment``: what could move the numbers besides the runtime itself."""
    info = target.info()
    try:
        affinity: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    return BenchEnvironment(
        threads_requested=requested,
        threads=threads_in_force,
        target_options=dict(info.options),
        runtime_version=info.version,
        cpu_count=os.cpu_count(),
        affinity_cpus=affinity,
        load_avg_1m=os.getloadavg()[0],
        process=process,
    )
