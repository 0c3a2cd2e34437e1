"""What an exporter takes and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from reference_models.interface import Params


class ExportError(RuntimeError):
    """The exporter raised: no artifact was written."""


@dataclass(frozen=True)
class ExportResult:
    exporter_version: str
    layout: str  # "torch" (NCHW...) or "keras" (channels last)
    options: dict[str, Any] = field(default_factory=dict)
    log: str = ""  # what the exporter said that matters (unsupported ops, warnings)


class Exporter(Protocol):
    def __call__(
        self, family: ModuleType, params: Params, path: Path, options: dict[str, Any]
    ) -> ExportResult: ...
