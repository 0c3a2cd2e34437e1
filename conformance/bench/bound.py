"""Runtime latency: the runtime's own call with its inputs bound before the clock starts.

A target's ``session.run(feeds)`` is what a user calls: numpy in, numpy out, the binding's
conversions and copies inside the clock (*end-to-end* latency). What a runtime's own benchmark
tool times is narrower: inputs already in the runtime's buffers, outputs left where the runtime
wrote them. ``bind`` prepares that call for the sessions of the runtimes that have such an API:

- ONNX Runtime: one IO binding per input, inputs as OrtValues, outputs allocated by ORT;
  the timed call is ``InferenceSession.run_with_iobinding``.
- OpenVINO: one InferRequest whose own input tensors get the input before each call, outside
  the clock;
  the timed call is ``InferRequest.infer(share_outputs=True)``: no output copy.
- IREE: the inputs as device buffer views in a prepared argument list; the timed call is
  ``VmContext.invoke`` of the entry function, the results left on the device.

Each returns a ``BoundCalls``: the call, one prepared item per input of the rotation (so the
rotation is the same as end-to-end) and a sentence saying what is bound. Any other session
(tract, the reference evaluator, controls, plug-ins) has no bound path: ``bind`` returns None and
the record says runtime latency was not measured.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conformance.bench.inputs import Feeds
from conformance.targets.interface import Session

END_TO_END = (
    "end-to-end: session.run(feeds) through the target's Python API as a user calls it "
    "(numpy inputs converted and outputs copied inside the clock)"
)


@dataclass(frozen=True)
class BoundCalls:
    """The runtime's call with prepared inputs: ``call(items[i])`` runs input i of the rotation."""

    call: Callable[[Any], Any]
    items: list[Any]
    binding: str  # what is bound before the clock, what is not copied inside it
    read: Callable[[Any, Any], list[np.ndarray]]  # (item, call's result) -> outputs on the host
    keep: tuple[Any, ...] = field(default=())  # buffers the prepared items point at
    prepare: Callable[[Any], None] | None = None  # before each call, outside the clock

    def outputs(self, index: int) -> list[np.ndarray]:
        """Run prepared input ``index`` once and bring its outputs to the host (untimed)."""
        item = self.items[index]
        if self.prepare is not None:
            self.prepare(item)
        return self.read(item, self.call(item))


def _handle(session: Session, public: str, private: str) -> Any:
    """A public handle of the adapter's session where it has one (contract P7), else the
    private attribute the adapter keeps it in."""
    value = getattr(session, public, None)
    return value if value is not None else getattr(session, private)


def _output_names(session: Session) -> list[str]:
    return list(_handle(session, "output_names", "_output_names"))


def _ort(session: Session, feeds: Sequence[Feeds]) -> BoundCalls:
    import onnxruntime

    native = _handle(session, "native", "_session")
    bindings, keep = [], []
    for feed in feeds:
        binding = native.io_binding()
        for name in session.input_names:
            value = onnxruntime.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(feed[name]))
            keep.append(value)
            binding.bind_ortvalue_input(name, value)
        for name in _output_names(session):
            binding.bind_output(name)  # ORT allocates the outputs on the CPU device
        bindings.append(binding)
    return BoundCalls(
        native.run_with_iobinding,
        bindings,
        "runtime: onnxruntime IO binding (inputs bound as OrtValues before the clock, outputs "
        "left in ORT-allocated OrtValues); timed call InferenceSession.run_with_iobinding",
        lambda binding, _: list(binding.copy_outputs_to_cpu()),
        tuple(keep),
    )


def _openvino(session: Session, feeds: Sequence[Feeds]) -> BoundCalls:
    compiled = _handle(session, "native", "_compiled")
    # One request, as benchmark_app -api sync has; before each call (untimed) the input is
    # copied into the request's own input tensors. Setting tensors instead was unsafe on
    # OpenVINO 2026.4's CPU plugin with dynamic shapes: sharing the arrays' memory, it wrote the
    # next input's values into the previous one's memory; with a fresh Tensor per call the
    # process died (segmentation fault, or malloc's "invalid chunk size") a few calls later.
    request = compiled.create_infer_request()
    items = [
        tuple(np.array(feed[name], order="C", copy=True) for name in session.input_names)
        for feed in feeds
    ]

    def copy_inputs(arrays: tuple[np.ndarray, ...]) -> None:
        for index, array in enumerate(arrays):
            tensor = request.get_input_tensor(index)
            if tuple(tensor.shape) != array.shape:
                tensor.shape = array.shape
            tensor.data[...] = array

    def infer(arrays: tuple[np.ndarray, ...]) -> Any:
        # the public call: the binding's own infer({}) skips ~1 us of dispatch, but on cnn it
        # gave (0, 10) outputs for cnn (caught by ``checked``; the cause not looked into)
        return request.infer(share_outputs=True)

    return BoundCalls(
        infer,
        items,
        "runtime: OpenVINO InferRequest with the input copied into its own tensors before the "
        "clock; timed call InferRequest.infer(share_outputs=True): outputs not copied",
        lambda arrays, _: [np.array(t.data, copy=True) for t in request.output_tensors],
        prepare=copy_inputs,
    )


def _iree(session: Session, feeds: Sequence[Feeds]) -> BoundCalls:
    import iree.runtime as rt
    from iree.runtime.array_interop import map_dtype_to_element_type

    invoker = _handle(session, "native", "_function")
    context = getattr(session, "vm_context", None) or invoker._vm_context
    function = getattr(session, "vm_function", None) or invoker.vm_function
    device = getattr(session, "device", None) or invoker._device
    outputs = len(_output_names(session))
    arguments, keep = [], []
    for feed in feeds:
        views = []
        for name in session.input_names:
            array = np.ascontiguousarray(feed[name])
            views.append(
                device.allocator.allocate_buffer_copy(
                    memory_type=rt.MemoryType.DEVICE_LOCAL,
                    allowed_usage=rt.BufferUsage.DEFAULT,
                    device=device,
                    buffer=array,
                    element_type=map_dtype_to_element_type(array.dtype),
                )
            )
        args = rt.VmVariantList(len(views))
        for view in views:
            args.push_ref(view)
        keep.extend(views)
        arguments.append(args)

    def invoke(args: Any) -> Any:
        results = rt.VmVariantList(outputs)
        context.invoke(function, args, results)
        return results

    def read(args: Any, results: Any) -> list[np.ndarray]:
        views = [results.get_as_object(i, rt.HalBufferView) for i in range(outputs)]
        return [np.array(rt.DeviceArray(device, view).to_host(), copy=True) for view in views]

    return BoundCalls(
        invoke,
        arguments,
        "runtime: IREE VmContext.invoke of the entry function on device buffer views prepared "
        "before the clock; results left on the device",
        read,
        tuple(keep),
    )


def _binders() -> list[tuple[type, Callable[[Session, Sequence[Feeds]], BoundCalls]]]:
    # the adapters' modules import their runtimes lazily: importing them here is cheap
    from conformance.targets.iree import IreeSession
    from conformance.targets.openvino import OpenVinoSession
    from conformance.targets.ort import OrtSession

    return [(OrtSession, _ort), (OpenVinoSession, _openvino), (IreeSession, _iree)]


def bind(session: Session, feeds: Sequence[Feeds]) -> BoundCalls | None:
    """The session's runtime call with ``feeds`` prepared; None for a session without one."""
    for kind, binder in _binders():
        if type(session) is kind:  # a subclass (a control wrapping a runtime) may change run()
            return binder(session, feeds)
    return None


class BindingMismatch(RuntimeError):
    """The bound call did not compute what session.run returns: its timing would be of
    something else."""


def checked(calls: BoundCalls, session: Session, feeds: Sequence[Feeds]) -> BoundCalls:
    """``calls``, once its first input gave the same outputs as ``session.run`` (same shapes,
    values within float32 rounding noise); BindingMismatch otherwise."""
    expected = [array for _, array in session.run(feeds[0])]
    got = calls.outputs(0)
    if len(got) != len(expected):
        raise BindingMismatch(f"the bound call gave {len(got)} outputs, run() {len(expected)}")
    for index, (a, b) in enumerate(zip(got, expected)):
        if a.shape != b.shape or not np.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True):
            raise BindingMismatch(
                f"output {index}: the bound call gave shape {a.shape}, run() {b.shape}, "
                f"or different values"
            )
    return calls


def not_bound(session: Session) -> str:
    name = f"{type(session).__module__}.{type(session).__qualname__}"
    return f"runtime: not measured ({name} has no bound call: its run() is the only path)"
