"""The results file: one JSON document, rewritten atomically after every check.

A crash or Ctrl-C loses nothing already measured; ``--resume`` reads the file back and
runs only the checks it lacks. The report, bundle and scoreboard read this file only.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import uuid
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from conformance import __version__
from conformance.results.metadata import RunMetadata, Selection
from conformance.results.records import CheckRecord
from conformance.untrusted import loads_strict_json

SCHEMA_VERSION = "1.0"
RESULTS_JSON = "results.json"
MAX_RESULTS_BYTES = 1 << 30  # a results file larger than this is refused, not read
PACKAGES = (
    "onnx",
    "onnxruntime",
    "openvino",
    "tract",
    "iree-base-runtime",
    "iree-base-compiler",
    "numpy",
    "torch",
    "tensorflow",
    "tf2onnx",
)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": packages,
    }


def new_document(
    pack_manifest: dict[str, Any],
    targets: dict[str, Any],
    command: list[str],
    models: list[str] | None = None,
    exporters: list[str] | None = None,
    precision: str = "fp32",
) -> dict[str, Any]:
    run = RunMetadata(
        suite_version=__version__,
        spec_version=pack_manifest["spec_version"],
        pack_version=pack_manifest["pack_version"],
        pack_digest=pack_manifest["digest"],
        started_at=utc_now(),
        finished_at=None,
        status="running",
        command=tuple(command),
        selection=Selection(tuple(models or ()), tuple(exporters or ()), precision),
    )
    return {
        "schema_version": SCHEMA_VERSION,
        "run": run.as_dict(),
        "environment": environment(),
        "targets": targets,
        "checks": [],
    }


# Stands in for the checks while the rest of the document is encoded (a NUL never appears in our
# own strings); the line json.dumps(indent=1) gives it at depth 2 is replaced by the checks' text.
_CHECKS_MARK = "\x00checks-" + uuid.uuid4().hex + "\x00"
_CHECKS_LINE = "  " + json.dumps(_CHECKS_MARK)


def encode_check(check: dict[str, Any]) -> str:
    """One check record as it stands in the results file (an item of "checks", depth 2)."""
    return "  " + json.dumps(check, indent=1, allow_nan=False).replace("\n", "\n  ")


class ResultsWriter:
    """Holds the document and writes it to disk after every change (write, rename; fsync at
    the end).

    The file is exactly ``json.dumps(document, indent=1)``; each check record is encoded once
    (records are not changed once added), so a flush costs the size of the run, not the size
    of the run times the number of checks.
    """

    def __init__(self, path: Path, document: dict[str, Any]) -> None:
        self.path = Path(path)
        self.document = document
        self._ids = {check["id"] for check in document["checks"]}
        self._encoded: dict[int, tuple[dict[str, Any], str]] = {}

    def has(self, check_id: str) -> bool:
        return check_id in self._ids

    def add(self, record: CheckRecord) -> None:
        self.document["checks"].append(record.as_dict())
        self._ids.add(record.check_id)
        self.flush()

    def add_benchmark(self, record: dict[str, Any]) -> None:
        """Add a benchmark record (optional "benchmarks" list); one with the same id is replaced."""
        records = [r for r in self.document.get("benchmarks", []) if r["id"] != record["id"]]
        self.document["benchmarks"] = [*records, record]
        self.flush()

    def finish(self, status: str = "complete") -> None:
        self.document["run"]["status"] = status
        self.document["run"]["finished_at"] = utc_now()
        self.flush(durable=True)

    def encoded(self) -> str:
        """The document as the file holds it: json.dumps(document, indent=1), byte for byte."""
        checks = self.document["checks"]
        if not checks:
            return json.dumps(self.document, indent=1, allow_nan=False)
        encoded = {}
        for check in checks:
            known = self._encoded.get(id(check))
            encoded[id(check)] = (
                known if known is not None and known[0] is check else (check, encode_check(check))
            )
        self._encoded = encoded
        rest = json.dumps({**self.document, "checks": [_CHECKS_MARK]}, indent=1, allow_nan=False)
        return rest.replace(_CHECKS_LINE, ",\n".join(encoded[id(c)][1] for c in checks), 1)

    def flush(self, durable: bool = False) -> None:
        """Write the document to a scratch file and rename it over the results file: a crashed
        or killed process loses nothing already added (the rename is atomic, and the page cache
        holds the file). ``durable`` also fsyncs it, at the run's end only: an fsync per record
        cost the default run ~5 s of its ~40 s (1,029 records), and only a power loss, which
        the promise (a crash or Ctrl-C loses nothing) does not cover, needs it sooner."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_suffix(".json.tmp")
        with open(scratch, "w", encoding="utf-8") as handle:
            handle.write(self.encoded())
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(scratch, self.path)


class ResultsFileError(ValueError):
    """A results file that is not a results document (truncated, not JSON, NaN, duplicate keys,
    not an object): the message names the file and what is wrong."""


def load_document(path: Path) -> dict[str, Any]:
    """Read a results file strictly (contract C); OSError when it cannot be read at all."""
    data = Path(path).read_bytes()
    try:
        document = loads_strict_json(data, max_bytes=MAX_RESULTS_BYTES)
    except ValueError as error:
        raise ResultsFileError(f"{path} is not a readable results file: {error}") from error
    if not isinstance(document, dict):
        raise ResultsFileError(f"{path} is not a results document (not a JSON object)")
    return document


def records_of(document: dict[str, Any]) -> list[CheckRecord]:
    return [CheckRecord.from_dict(check) for check in document["checks"]]


def command_line() -> list[str]:
    return [Path(sys.argv[0]).name, *sys.argv[1:]]


def validate_document(document: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError when the document breaks the results schema
    (spec/schemas/results.schema.json)."""
    import jsonschema

    from conformance.spec import SPEC_DIR

    schema = json.loads((SPEC_DIR / "schemas" / "results.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(
        document
    )
