"""A minimal onnx.backend Backend for tests/test_plugins.py: ONNX Runtime CPU behind its API."""

from __future__ import annotations

from onnx.backend.base import Backend, BackendRep


class OrtBackendRep(BackendRep):
    def __init__(self, session) -> None:
        self._session = session
        self._input_names = [i.name for i in session.get_inputs()]

    def run(self, inputs, **kwargs):
        return self._session.run(None, dict(zip(self._input_names, inputs)))


class OrtBackend(Backend):
    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"

    @classmethod
    def prepare(cls, model, device: str = "CPU", **kwargs) -> OrtBackendRep:
        import onnxruntime

        super().prepare(model, device, **kwargs)  # onnx.checker
        session = onnxruntime.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        return OrtBackendRep(session)
