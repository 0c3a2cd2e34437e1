"""The target contract: where a model runs. One adapter module per runtime.

The base classes own the public behaviour (input checking, error wrapping); an adapter
overrides only ``_load`` (and its session's ``_run``).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

Outputs = list[tuple[str, np.ndarray]]


class TargetError(RuntimeError):
    """The runtime refused or failed: carries the runtime's own message."""


class TargetUnavailable(TargetError):
    """The runtime or device is not present here (a skip, not a failure)."""


@dataclass(frozen=True)
class TargetInfo:
    name: str  # as selected, e.g. "ort:cpu:opt=disabled"
    runtime: str
    version: str
    device: str
    options: dict[str, Any] = field(default_factory=dict)  # everything that changes numerics
    deterministic: bool = True


class Session(abc.ABC):
    """A model loaded on a target."""

    def __init__(self, input_names: list[str]) -> None:
        self.input_names = input_names

    def run(self, inputs: dict[str, np.ndarray]) -> Outputs:
        missing = [name for name in self.input_names if name not in inputs]
        if missing:
            raise TargetError(f"inputs missing: {', '.join(missing)}")
        try:
            return self._run(inputs)
        except TargetError:
            raise
        except Exception as error:
            raise TargetError(f"{type(error).__name__}: {error}") from error

    @abc.abstractmethod
    def _run(self, inputs: dict[str, np.ndarray]) -> Outputs: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class Target(abc.ABC):
    def __init__(self, name: str, options: dict[str, str]) -> None:
        self.name = name
        self.options = options

    @abc.abstractmethod
    def unavailable_reason(self) -> str | None:
        """None when the runtime can be used here, else why not (missing package, device)."""

    @abc.abstractmethod
    def describe(self) -> TargetInfo: ...

    def load(self, model_path: Path) -> Session:
        reason = self.unavailable_reason()
        if reason:
            raise TargetUnavailable(reason)
        try:
            return self._load(model_path)
        except TargetError:
            raise
        except Exception as error:
            raise TargetError(f"{type(error).__name__}: {error}") from error

    @abc.abstractmethod
    def _load(self, model_path: Path) -> Session: ...
