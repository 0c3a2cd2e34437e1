"""IREE: import ONNX to MLIR, compile ahead of time for a backend, run on the matching driver.

Each load imports and compiles one model (about a second on CPU) into a temporary directory
that the session's close() removes, through the content-addressed compile cache
(``compile_cache``: a model compiled before with the same compiler and flags is not compiled
again; ``load_facts()`` says which); when the compiler fails, its input (``model.mlir``) is kept
in ``artifacts_dir()`` and the message names that copy. ``threads=N`` (llvm-cpu) caps the task
system's workers (``--task_topology_max_group_count``); IREE's flags are process-wide, so one
process holds one thread count (the suite runs each target in its own child process).
``target=`` overrides the code generation target: the CPU model for llvm-cpu (default
``host``), the SM architecture for cuda (default: the compiler's own, which embeds PTX that
newer GPUs JIT-compile).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from conformance.targets import compile_cache
from conformance.targets.interface import (
    InvalidTargetError,
    Option,
    Outputs,
    Session,
    Target,
    TargetError,
    TargetInfo,
    artifacts_dir,
)

# device (second part of the name) -> (compiler target backend, runtime driver)
BACKENDS = {"llvm-cpu": ("llvm-cpu", "local-task"), "cuda": ("cuda", "cuda")}
CODEGEN_TARGET = r"[A-Za-z0-9_.+\-]+"
COMPILER = "iree-compile"
IMPORTER = "iree.compiler.extras.onnx_importer (as iree-import-onnx, data_prop=True)"
MLIR_PLACEHOLDER = "<model.mlir>"  # the compiler input's path in a recorded failure
THREADS_FLAG = "--task_topology_max_group_count"  # IREE's recommended worker-count cap
MAX_THREADS = 64  # the task system's most workers per executor
SYNC_DRIVER = "local-sync"  # runs each call on the calling thread: no task system, no workers
HOST_DRIVERS = ("local-task", SYNC_DRIVER)  # the host is their device
# driver name -> the thread count its process-wide driver was created with (0: IREE's own)
_DRIVERS_MADE: dict[str, int] = {}


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def first_diagnostic(message: str) -> str:
    """The first ``error:`` line of a compiler message, without its location and op dump, and
    with the ONNX operator it is about (``torch.operator`` wraps ``onnx.<Op>``)."""
    line = next((line for line in message.splitlines() if "error: " in line), "")
    if not line:
        return message.splitlines()[0] if message else "no diagnostic"
    reason = line.split("error: ", 1)[1].split(": %", 1)[0].strip()
    operator = re.search(r'name = "(onnx\.[A-Za-z0-9_]+)"', line)
    return f"{reason} (operator {operator[1]})" if operator else reason


class IreeSession(Session):
    def __init__(
        self,
        function,
        input_names: list[str],
        output_names: list[str],
        workdir: Path,
        loaded: LoadedModule,
    ) -> None:
        super().__init__(input_names)
        self._function = function
        self._output_names = output_names
        self._workdir = workdir
        self._loaded = loaded

    # Read-only handles for the benchmarks' bound loops and IREE's own tool (contract P7).
    @property
    def native(self):
        """The ``iree.runtime.FunctionInvoker`` of the entry function."""
        return self._function

    @property
    def device(self):
        """The ``iree.runtime.HalDevice`` the module runs on."""
        return self._loaded.device

    @property
    def vm_context(self):
        """The ``iree.runtime.VmContext`` the module is loaded in."""
        return self._loaded.context.vm_context

    @property
    def vm_function(self):
        """The entry's ``iree.runtime.VmFunction`` (for ``VmContext.invoke``)."""
        return self._function.vm_function

    @property
    def output_names(self) -> list[str]:
        return list(self._output_names)

    @property
    def vmfb_path(self) -> Path:
        """The compiled module this session runs (a compile-cache entry, or its own copy)."""
        return self._loaded.vmfb

    @property
    def entry_function(self) -> str:
        return self._loaded.entry

    def load_facts(self) -> dict[str, Any]:
        return {"compile_cache": self._loaded.cache}

    def _run(self, inputs: dict[str, np.ndarray]) -> Outputs:
        result = self._function(
            *(np.require(inputs[name], requirements="C") for name in self.input_names)
        )
        results = result if isinstance(result, (tuple, list)) else (result,)
        if len(results) != len(self._output_names):
            raise TargetError(
                f"IREE returned {len(results)} outputs, "
                f"the graph declares {len(self._output_names)}"
            )
        # Copy off the device buffers (to_host may map them) so results outlive the call.
        return [
            (name, np.array(value.to_host() if hasattr(value, "to_host") else value, copy=True))
            for name, value in zip(self._output_names, results)
        ]

    def close(self) -> None:
        self._function = None
        shutil.rmtree(self._workdir, ignore_errors=True)


class CompilerFailed(Exception):
    """iree-compile refused a module: its message and the input it was given."""

    def __init__(self, message: str, mlir: Path) -> None:
        super().__init__(message)
        self.message = message
        self.mlir = mlir

    @property
    def deterministic(self) -> bool:
        """A diagnostic about the input (the same input fails the same way), not a compiler
        killed or out of memory, which another try may pass."""
        lowered = self.message.lower()
        return "error: " in self.message and not any(
            word in lowered for word in ("out of memory", "killed", "signal", "timed out")
        )


@dataclass(frozen=True)
class LoadedModule:
    vmfb: Path
    entry: str
    cache: str  # compile_cache.HIT, MISS or OFF
    device: Any  # iree.runtime.HalDevice
    context: Any  # iree.runtime.SystemContext


def _driver(name: str, threads: int):
    """IREE's process-wide driver, created with ``threads`` (0: IREE's own count) the first
    time; TargetError when this process made it with another count already."""
    import iree.runtime

    made = _DRIVERS_MADE.get(name)
    if made is None:
        if threads:
            iree.runtime.flags.parse_flags(f"{THREADS_FLAG}={threads}")
        _DRIVERS_MADE[name] = threads
    elif made != threads:
        raise TargetError(
            f"IREE's {name} driver was created in this process with threads={made}; IREE's "
            f"flags are process-wide, so threads={threads} needs its own process"
        )
    return iree.runtime.get_driver(name)


class IreeTarget(Target):
    """IREE on one backend; a subclass names the device and the ``target`` option's default."""

    device = ""  # "llvm-cpu" or "cuda"

    def __init__(self, name: str, options: Mapping[str, str] | None = None) -> None:
        super().__init__(name, options)
        self.backend, self.driver = BACKENDS[self.device]
        self.driver = self.options.get("driver") or self.driver
        if self.driver == SYNC_DRIVER and self.options.get("threads"):
            raise InvalidTargetError(
                f"target {name!r}: threads= sets local-task's workers; driver={SYNC_DRIVER} "
                "runs every call on the caller's thread (drop threads=)"
            )

    def _extra_args(self) -> list[str]:
        target = self.options["target"]
        if target is None:
            return []
        flag = "--iree-llvmcpu-target-cpu" if self.device == "llvm-cpu" else "--iree-cuda-target"
        return [f"{flag}={target}"]

    def unavailable_reason(self) -> str | None:
        try:
            import iree.compiler
            import iree.runtime
        except ImportError:
            return "IREE is not installed: pip install iree-base-compiler iree-base-runtime"
        if self.backend not in iree.compiler.query_available_targets():
            return f"this IREE compiler has no {self.backend} target backend"
        if self.driver not in iree.runtime.query_available_drivers():
            return f"this IREE runtime has no {self.driver} driver"
        if self.driver in HOST_DRIVERS:
            return None  # the host is its device; creating the driver now would fix its threads
        try:
            devices = _driver(self.driver, 0).query_available_devices()
        except (RuntimeError, ValueError) as error:
            return f"IREE's {self.driver} driver is not available: {str(error).splitlines()[0]}"
        if not devices:
            return f"IREE's {self.driver} driver finds no device"
        return None

    def describe(self) -> TargetInfo:
        options: dict[str, Any] = {
            "target_backend": self.backend,
            "driver": self.driver,
            ("target_cpu" if self.device == "llvm-cpu" else "cuda_target"): self.options["target"]
            or "compiler default",
            "compile_args": self._extra_args(),
            "importer": IMPORTER,
            "runtime_version": _package_version("iree-base-runtime"),
            "compile_cache": "on" if compile_cache.enabled() else "off",
        }
        if self.device == "llvm-cpu":
            threads = self.options["threads"]
            if self.driver == SYNC_DRIVER:
                options["threads"] = "none: every call runs on the caller's thread (local-sync)"
            else:
                options["threads"] = threads or "runtime default (one worker per physical core)"
            options["runtime_flags"] = [f"{THREADS_FLAG}={threads}"] if threads else []
        return TargetInfo(
            self.name,
            "iree",
            _package_version("iree-base-compiler"),
            "cpu" if self.device == "llvm-cpu" else "cuda",
            options,
        )

    @cached_property
    def _config(self):
        import iree.runtime

        return iree.runtime.Config(
            device=_driver(self.driver, self.options.get("threads") or 0).create_default_device()
        )

    def _compile_failure(
        self, message: str, mlir: Path, model_path: Path, recorded: bool = False
    ) -> TargetError:
        """The compiler's message, led by its first diagnostic (the operator's name where it has
        one), naming a copy of its input that outlives the load's temporary folder."""
        model_path = Path(model_path)
        try:
            # <pack>/<model>/<exporter>/model.onnx -> <artifacts>/iree/<device>/<model>/<exporter>/
            folder = artifacts_dir(
                "iree", self.device, model_path.parent.parent.name, model_path.parent.name
            )
            kept: Path | None = folder / mlir.name
            shutil.copyfile(mlir, folder / mlir.name)
            where = f"its input is kept at {kept}"
            message = message.replace(str(mlir), str(kept))
        except OSError as copy_error:
            kept, where = None, f"its input could not be kept: {copy_error}"
        # The note goes last: the first line stays the one a fresh compile gives, so the summary
        # groups an artifact's data sets (one compile, then recorded failures) into one line.
        note = "\n(as the compile cache recorded it: --no-compile-cache compiles again)"
        return TargetError(
            f"iree-compile failed: {first_diagnostic(message)}; {where}\n{message}"
            + (note if recorded else "")
        )

    def _load(self, model_path: Path) -> Session:
        workdir = Path(tempfile.mkdtemp(prefix="conformance-iree-"))
        try:
            return self._compile_and_load(model_path, workdir)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise

    def _compile_flags(self) -> list[str]:
        """Everything besides the artifact that changes what the compiler writes."""
        import onnx

        return [
            f"--iree-hal-target-backends={self.backend}",
            *self._extra_args(),
            f"importer={IMPORTER}",
            f"onnx={onnx.__version__}",
        ]

    def _compile(self, model_path: Path, workdir: Path, vmfb: Path) -> None:
        import iree.compiler
        import onnx
        from iree.compiler.extras import onnx_importer
        from iree.compiler.ir import Context

        # What iree-import-onnx does, minus its fallback that writes next to the model.
        model = onnx.shape_inference.infer_shapes(onnx.load(str(model_path)), data_prop=True)
        info = onnx_importer.ModelInfo(model)
        module = info.create_module(context=Context()).operation
        onnx_importer.NodeImporter.define_function(info.main_graph, module).import_all()
        module.verify()
        mlir = workdir / "model.mlir"
        mlir.write_text(module.get_asm(assume_verified=True), encoding="utf-8")
        try:
            iree.compiler.compile_file(
                str(mlir),
                output_file=str(vmfb),
                target_backends=[self.backend],
                extra_args=self._extra_args(),
            )
        except Exception as error:
            raise CompilerFailed(f"{type(error).__name__}: {error}", mlir) from error

    def _compile_and_load(self, model_path: Path, workdir: Path) -> Session:
        import iree.runtime
        import onnx

        version = _package_version("iree-base-compiler")
        flags = self._compile_flags()
        key = compile_cache.cache_key(
            compile_cache.artifact_digest(model_path), COMPILER, version, flags
        )
        cache = compile_cache.CompileCache("iree")
        about: dict[str, object] = {"compiler": COMPILER, "version": version, "flags": flags}
        known = cache.failure(key) if compile_cache.enabled() else None
        if known is not None:  # these bytes, this compiler and flags: it fails, as it said
            mlir = workdir / "model.mlir"
            mlir.write_text(str(known.get("input", "")), encoding="utf-8")
            message = str(known["message"]).replace(MLIR_PLACEHOLDER, str(mlir))
            raise self._compile_failure(message, mlir, model_path, recorded=True)
        try:
            compiled = cache.compiled(
                key,
                lambda vmfb: self._compile(model_path, workdir, vmfb),
                workdir,
                "model.vmfb",
                about,
            )
        except CompilerFailed as failed:
            if compile_cache.enabled() and failed.deterministic:
                text = failed.mlir.read_text(encoding="utf-8")
                message = failed.message.replace(str(failed.mlir), MLIR_PLACEHOLDER)
                cache.put_failure(key, {**about, "message": message, "input": text})
            raise self._compile_failure(failed.message, failed.mlir, model_path) from failed

        vm_module = iree.runtime.VmModule.mmap(self._config.vm_instance, str(compiled.path))
        context = iree.runtime.SystemContext(config=self._config)
        context.add_vm_module(vm_module)
        # The importer names the function after the graph ("main_graph" from torch, "tf2onnx").
        public = [f for f in vm_module.function_names if not f.startswith("__") and "$" not in f]
        graph = onnx.load(str(model_path), load_external_data=False).graph
        entry = graph.name if graph.name in public else (public[0] if len(public) == 1 else None)
        if entry is None:
            raise TargetError(f"cannot tell the entry point among {public} (graph {graph.name!r})")
        function = context.modules[vm_module.name][entry]

        initializers = {t.name for t in graph.initializer}
        input_names = [i.name for i in graph.input if i.name not in initializers]
        loaded = LoadedModule(compiled.path, entry, compiled.cache, self._config.device, context)
        return IreeSession(function, input_names, [o.name for o in graph.output], workdir, loaded)


class IreeCpuTarget(IreeTarget):
    device = "llvm-cpu"
    OPTIONS = (
        Option(
            "target",
            str,
            "host",
            "the CPU model to generate code for (--iree-llvmcpu-target-cpu)",
            pattern=CODEGEN_TARGET,
        ),
        Option(
            "threads",
            int,
            0,
            f"task-system worker threads ({THREADS_FLAG}; at most one per physical core); "
            "0: IREE's own choice",
            minimum=0,
            maximum=MAX_THREADS,
        ),
        Option(
            "driver",
            str,
            "local-task",
            "IREE's runtime driver: local-task (a task system with worker threads) or "
            "local-sync (every call on the caller's thread: one thread, no hand-off)",
            choices=HOST_DRIVERS,
        ),
    )


class IreeCudaTarget(IreeTarget):
    device = "cuda"
    OPTIONS = (
        Option(
            "target",
            str,
            None,
            "the SM architecture (--iree-cuda-target); default: the compiler's own, "
            "which embeds PTX that newer GPUs JIT-compile",
            pattern=CODEGEN_TARGET,
        ),
    )
