"""A content-addressed cache of compiled models, so a second run does not wait on compilers.

An entry is keyed by sha256 over the artifact's bytes (the ONNX file and any external-data file
it names), the compiler's name and version and every flag that changes its output
(``cache_key``). It lives in ``<root>/compile/<compiler>/<key[:2]>/<key>.bin`` beside a
``<key>.json`` that records the payload's own sha256 and size (a compile that fails with a
compiler diagnostic is recorded as ``<key>.failed.json``: the same bytes fail the same way);
``<root>`` is ``$CONFORMANCE_CACHE_DIR``, else ``$XDG_CACHE_HOME/ml-conformance``, else
``~/.cache/ml-conformance``. OpenVINO's own model cache (its ``CACHE_DIR``) is
``<root>/openvino`` (``runtime_cache_dir``).

Writes are atomic (a temporary file in the same folder, then ``os.replace``; the payload first,
its record last), so a reader sees a whole entry or none. An entry whose payload does not match
its record (truncated, corrupted, half-deleted) is a miss: it is removed and compiled again.
The cache is bounded (``$CONFORMANCE_CACHE_MAX_MB``, default ``DEFAULT_MAX_MB``): after each
write the least recently used entries go until the rest fit.

``CONFORMANCE_NO_COMPILE_CACHE=1`` (set by ``--no-compile-cache``; the isolated children inherit
it) bypasses the cache: every load compiles into its own temporary folder, nothing is read or
written here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from conformance.untrusted import printable

CACHE_ENV = "CONFORMANCE_CACHE_DIR"
NO_CACHE_ENV = "CONFORMANCE_NO_COMPILE_CACHE"
MAX_MB_ENV = "CONFORMANCE_CACHE_MAX_MB"
DEFAULT_MAX_MB = 2048
COMPILE = "compile"
FAILED = ".failed"  # <key>.failed.json: a compile of <key> that fails, and what it said
CHUNK = 1 << 20

# What a load says about its compile (Session.load_facts()["compile_cache"]).
HIT, MISS, OFF = "hit", "miss", "off"


def cache_root() -> Path:
    """Where every cache of the suite lives (compiled modules, OpenVINO's model cache)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "ml-conformance"


def enabled() -> bool:
    """False when the user asked to bypass the compile caches (``--no-compile-cache``)."""
    return os.environ.get(NO_CACHE_ENV, "").strip().lower() not in ("1", "true", "yes", "on")


def runtime_cache_dir(runtime: str) -> Path | None:
    """The folder a runtime's own model cache uses (e.g. OpenVINO's CACHE_DIR), or None when
    the caches are bypassed."""
    return cache_root() / runtime if enabled() else None


def max_bytes() -> int:
    raw = os.environ.get(MAX_MB_ENV, "")
    try:
        megabytes = int(raw) if raw.strip() else DEFAULT_MAX_MB
    except ValueError:
        # refused at the command line (settings_problem); a child must not fail a load on it
        megabytes = DEFAULT_MAX_MB
    return max(megabytes, 0) * 1024 * 1024


def settings_problem() -> str | None:
    """What is wrong with the cache's settings in the environment, or None: said once, before
    anything runs, instead of a default quietly taking over."""
    raw = os.environ.get(MAX_MB_ENV, "").strip()
    if raw and not raw.isdigit():
        return f"{MAX_MB_ENV} must be a whole number of megabytes, not {printable(raw, 40)}"
    return None


def unwritable_reason() -> str | None:
    """Why the cache folder cannot be written, or None. Loads still work without it (each
    compiles afresh), so this is a warning, never a reason to stop."""
    if not enabled():
        return None
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".probe-"):
            pass
    except OSError as error:
        why = error.strerror or type(error).__name__
        return (
            f"the compile cache folder {printable(str(root), 300)} cannot be written ({why}): "
            "every model is compiled afresh"
        )
    return None


def _sha256_file(path: Path, digest: hashlib._Hash | None = None) -> hashlib._Hash:
    digest = digest or hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest


def _tensors(graph) -> Iterable:
    """Every tensor of a graph: initializers and attribute tensors, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            for subgraph in [attribute.g] if attribute.HasField("g") else []:
                yield from _tensors(subgraph)
            for subgraph in attribute.graphs:
                yield from _tensors(subgraph)


def external_data_files(model_path: Path) -> list[Path]:
    """The external-data files an ONNX model names (sorted, each once)."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    names: set[str] = set()
    for tensor in _tensors(model.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            names.update(e.value for e in tensor.external_data if e.key == "location")
    return [model_path.parent / name for name in sorted(names)]


def artifact_digest(model_path: Path) -> str:
    """sha256 over an ONNX file's bytes and those of the external-data files it names."""
    digest = _sha256_file(Path(model_path))
    for extra in external_data_files(Path(model_path)):
        digest.update(b"\0external:" + extra.name.encode("utf-8") + b"\0")
        if extra.is_file():
            _sha256_file(extra, digest)
    return digest.hexdigest()


def cache_key(artifact_sha256: str, compiler: str, version: str, flags: Sequence[str]) -> str:
    """The entry's name: sha256 over the artifact's digest, the compiler, its version, flags."""
    fields = {"artifact": artifact_sha256, "compiler": compiler, "version": version}
    text = json.dumps({**fields, "flags": list(flags)}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Compiled:
    """A compiled module: where its bytes are, and whether they came from the cache."""

    path: Path
    cache: str  # HIT, MISS or OFF


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class CompileCache:
    """One compiler's entries under ``<root>/compile/<compiler>``."""

    def __init__(self, compiler: str, root: Path | None = None) -> None:
        self.compiler = compiler
        self.root = (root or cache_root()) / COMPILE
        self.folder = self.root / compiler

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.folder / key[:2]
        return folder / f"{key}.bin", folder / f"{key}.json"

    def get(self, key: str) -> Path | None:
        """The payload of a whole entry, or None (a damaged entry is removed: a miss)."""
        payload, record = self._paths(key)
        try:
            expected = json.loads(record.read_text(encoding="utf-8"))
            size = payload.stat().st_size
            whole = (
                isinstance(expected, dict)
                and expected.get("size") == size
                and expected.get("sha256") == _sha256_file(payload).hexdigest()
            )
        except (OSError, ValueError):
            whole = False
        if not whole:
            self.remove(key)
            return None
        with contextlib.suppress(OSError):
            os.utime(record)  # least recently used goes first
        return payload

    def put(self, key: str, source: Path, about: dict[str, object] | None = None) -> Path:
        """Copy a compiled file in as the entry ``key`` (atomically); returns the payload."""
        payload, record = self._paths(key)
        digest = _sha256_file(source).hexdigest()
        size = source.stat().st_size

        def copy(tmp: Path) -> None:
            with open(source, "rb") as reader, open(tmp, "wb") as writer:
                for chunk in iter(lambda: reader.read(CHUNK), b""):
                    writer.write(chunk)

        _atomic_write(payload, copy)
        text = json.dumps({"sha256": digest, "size": size, **(about or {})}, sort_keys=True)

        def write_record(tmp: Path) -> None:
            tmp.write_text(text, encoding="utf-8")

        _atomic_write(record, write_record)
        self.evict(max_bytes(), keep=key)
        return payload

    def failure(self, key: str) -> dict[str, object] | None:
        """The recorded failure of compiling ``key`` (a deterministic compiler diagnostic), or
        None; a damaged record is removed."""
        record = self._failure_path(key)
        try:
            found = json.loads(record.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            found = None
        if not isinstance(found, dict) or not isinstance(found.get("message"), str):
            with contextlib.suppress(OSError):
                record.unlink()
            return None
        with contextlib.suppress(OSError):
            os.utime(record)
        return found

    def put_failure(self, key: str, failure: dict[str, object]) -> None:
        """Record that compiling ``key`` fails (``failure["message"]``: what the compiler said),
        atomically; a second compile of the same bytes, compiler and flags fails the same way."""
        text = json.dumps(failure, sort_keys=True)

        def write(tmp: Path) -> None:
            tmp.write_text(text, encoding="utf-8")

        with contextlib.suppress(OSError):  # a read-only cache must not change the finding
            _atomic_write(self._failure_path(key), write)
            self.evict(max_bytes(), keep=key)

    def _failure_path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}{FAILED}.json"

    def remove(self, key: str) -> None:
        for path in self._paths(key):
            with contextlib.suppress(OSError):
                path.unlink()

    def entries(self) -> Iterable[tuple[str, float, int]]:
        """(key, last use, bytes) of every entry of every compiler under the root."""
        for record in self.root.glob("*/*/*.json"):
            failed = record.name.endswith(f"{FAILED}.json")
            payload = record if failed else record.with_suffix(".bin")
            try:
                used, size = record.stat().st_mtime, payload.stat().st_size
            except OSError:
                continue
            yield str(record.relative_to(self.root).with_suffix("")), used, size

    def evict(self, limit_bytes: int, keep: str = "") -> None:
        """Remove least recently used entries (any compiler's) until the rest fit the limit."""
        rows = sorted(self.entries(), key=lambda row: row[1])
        total = sum(size for _, _, size in rows)
        for name, _, size in rows:
            if total <= limit_bytes:
                return
            if name.endswith(keep) and keep:
                continue
            for suffix in (".bin", ".json"):
                with contextlib.suppress(OSError):
                    (self.root / f"{name}{suffix}").unlink()
            total -= size

    def compiled(
        self,
        key: str,
        compile_to: Callable[[Path], object],
        workdir: Path,
        name: str = "module.bin",
        about: dict[str, object] | None = None,
    ) -> Compiled:
        """The entry ``key``; on a miss ``compile_to(path)`` writes it (in ``workdir``) and it
        is stored. With the cache bypassed, always compiled into ``workdir``."""
        if not enabled():
            target = workdir / name
            compile_to(target)
            return Compiled(target, OFF)
        found = self.get(key)
        if found is not None:
            return Compiled(found, HIT)
        target = workdir / name
        compile_to(target)
        try:
            return Compiled(self.put(key, target, about), MISS)
        except OSError:  # a read-only or full cache folder must not fail the load
            return Compiled(target, MISS)
