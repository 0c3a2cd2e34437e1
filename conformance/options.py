"""Options shared by `conformance run` and `pytest --conformance`, declared once so they cannot
drift."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click


@dataclass(frozen=True)
class SharedOption:
    cli_flag: str
    pytest_flag: str  # pytest's namespace is shared with other plugins: some get a prefix
    dest: str  # the parameter name in `conformance run`; pytest's dest is "conformance_" + dest
    help: str
    multiple: bool = False
    type: type = str


SHARED_OPTIONS = (
    SharedOption(
        "--target",
        "--target",
        "targets",
        "target name (repeatable); default: every available honest target",
        multiple=True,
    ),
    SharedOption("--model", "--model", "models", "only these models (repeatable)", multiple=True),
    SharedOption(
        "--exporter",
        "--exporter",
        "exporters",
        "only these exporters' artifacts (repeatable)",
        multiple=True,
    ),
    SharedOption(
        "--timeout",
        "--conformance-timeout",
        "timeout_s",
        "per-request timeout in seconds (default: check_timeout_s in spec/spec.json)",
        type=float,
    ),
)


def _compile_cache_settings(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """--no-compile-cache; else the cache's settings, checked before anything runs."""
    from conformance.targets import compile_cache

    if value:  # the environment reaches the isolated children, which do the compiling
        os.environ[compile_cache.NO_CACHE_ENV] = "1"
        return
    problem = compile_cache.settings_problem()
    if problem:
        raise click.UsageError(problem, ctx)
    unwritable = compile_cache.unwritable_reason()
    if unwritable:
        click.echo(f"warning: {unwritable}", err=True)


def no_compile_cache_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--no-compile-cache``: compile every model afresh (IREE's compile cache and OpenVINO's
    model cache are neither read nor written). Adds no parameter to the command."""
    return click.option(
        "--no-compile-cache",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_compile_cache_settings,
        help="Compile every model afresh: do not read or write the compile caches "
        "(same as CONFORMANCE_NO_COMPILE_CACHE=1).",
    )(command)


def _set_check_workers(ctx: click.Context, param: click.Parameter, value: int | None) -> None:
    if value is not None:
        from conformance.run.parallel import WORKERS_ENV

        os.environ[WORKERS_ENV] = str(value)


def jobs_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--jobs N``: how many targets' checks run side by side (1: one after the other, for
    debugging); default min(2, CPUs). Adds no parameter to the command."""
    return click.option(
        "--jobs",
        type=click.IntRange(min=1, max=64),
        default=None,
        expose_value=False,
        is_eager=True,
        callback=_set_check_workers,
        help="Targets whose checks run side by side (1: one after the other); "
        "default: min(2, CPUs).",
    )(command)


def click_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a click command with every shared option."""
    for option in reversed(SHARED_OPTIONS):
        command = click.option(
            option.cli_flag,
            option.dest,
            multiple=option.multiple,
            type=option.type,
            default=() if option.multiple else None,
            help=option.help,
        )(command)
    return command


def add_pytest_options(addoption: Callable[..., None]) -> None:
    """Declare every shared option on a pytest option group's ``addoption``."""
    for option in SHARED_OPTIONS:
        addoption(
            option.pytest_flag,
            action="append" if option.multiple else "store",
            type=option.type,
            default=[] if option.multiple else None,
            dest=f"conformance_{option.dest}",
            help=option.help,
        )
