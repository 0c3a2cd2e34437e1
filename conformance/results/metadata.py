"""Typed views of the results file's run metadata and target descriptions.

The JSON shape is schema 1.0's, unchanged: these records are built from it and write it back
key for key, so rooms pass a ``TargetDescription`` or ``RunMetadata`` around instead of reading
``document["targets"][name]["available"]`` by string key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TargetDescription:
    """What a target is (runtime, version, device, options), or why it is unavailable here."""

    name: str
    available: bool
    reason: str = ""  # why unavailable; empty when available
    runtime: str = ""
    version: str = ""
    device: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    deterministic: bool = True

    @classmethod
    def unavailable(cls, name: str, reason: str) -> TargetDescription:
        return cls(name, False, reason=reason)

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> TargetDescription:
        if not data.get("available", False):
            return cls.unavailable(name, str(data.get("reason", "unknown")))
        return cls(
            name,
            True,
            runtime=str(data.get("runtime", "?")),
            version=str(data.get("version", "?")),
            device=str(data.get("device", "?")),
            options=dict(data.get("options") or {}),
            deterministic=bool(data.get("deterministic", True)),
        )

    def as_dict(self) -> dict[str, Any]:
        if not self.available:
            return {"available": False, "reason": self.reason}
        return {
            "available": True,
            "name": self.name,
            "runtime": self.runtime,
            "version": self.version,
            "device": self.device,
            "options": dict(self.options),
            "deterministic": self.deterministic,
        }

    def describe(self) -> str:
        """One line: "onnxruntime 1.22.0 on cpu", or why the target is unavailable."""
        if not self.available:
            return f"unavailable: {self.reason or 'no reason given'}"
        return f"{self.runtime} {self.version} on {self.device}"


def targets_of(document: Mapping[str, Any]) -> dict[str, TargetDescription]:
    """The results file's "targets" section, typed, in its order."""
    section = document.get("targets") or {}
    return {name: TargetDescription.from_dict(name, info) for name, info in section.items()}


@dataclass(frozen=True)
class Selection:
    models: tuple[str, ...] = ()  # empty: every model of the pack
    exporters: tuple[str, ...] = ()  # empty: every exporter
    precision: str = "fp32"  # what the run judges at (its profile's); a resume keeps it

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Selection:
        data = data or {}
        return cls(
            tuple(data.get("models") or ()),
            tuple(data.get("exporters") or ()),
            str(data.get("precision") or "fp32"),
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready; "precision" only when it is not fp32 (a default run's file is unchanged)."""
        data: dict[str, Any] = {"models": list(self.models), "exporters": list(self.exporters)}
        if self.precision != "fp32":
            data["precision"] = self.precision
        return data


@dataclass(frozen=True)
class RunMetadata:
    """The results file's "run" section (``live`` stays the live-mode mapping it is)."""

    suite_version: str
    spec_version: str
    pack_version: str
    pack_digest: str
    started_at: str
    finished_at: str | None
    status: str  # "running", "complete" or "interrupted"
    command: tuple[str, ...]
    selection: Selection
    live: Mapping[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunMetadata:
        return cls(
            suite_version=str(data["suite_version"]),
            spec_version=str(data["spec_version"]),
            pack_version=str(data["pack_version"]),
            pack_digest=str(data["pack_digest"]),
            started_at=str(data["started_at"]),
            finished_at=data.get("finished_at"),
            status=str(data["status"]),
            command=tuple(data.get("command") or ()),
            selection=Selection.from_dict(data.get("selection")),
            live=data.get("live"),
        )

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "suite_version": self.suite_version,
            "spec_version": self.spec_version,
            "pack_version": self.pack_version,
            "pack_digest": self.pack_digest,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "status": self.status,
            "command": list(self.command),
            "selection": self.selection.as_dict(),
        }
        if self.live is not None:
            data["live"] = dict(self.live)
        return data
