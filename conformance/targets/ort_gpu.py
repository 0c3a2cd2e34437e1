"""ONNX Runtime on an NVIDIA GPU: the CUDA execution provider, and TensorRT with CUDA fallback.

CUDA's TF32 tensor-core mode changes float32 matmul/conv numerics (about 1e-3 relative) and is
on by default in ORT; the target runs strict fp32 unless ``tf32=1``, and describe() records it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conformance.targets.interface import Option, Session, TargetError
from conformance.targets.ort import OrtSession, OrtTarget


class OrtCudaTarget(OrtTarget):
    device = "cuda"
    # Strict fp32 by default, as fp32 conformance requires (ORT's own default enables TF32);
    # tf32=1 measures what ORT users get out of the box.
    OPTIONS = (
        *OrtTarget.OPTIONS,
        Option("tf32", str, "0", "CUDA TF32 tensor-core math (1: on)", choices=("0", "1")),
    )

    def _cuda(self) -> tuple[str, dict[str, str]]:
        return ("CUDAExecutionProvider", {"use_tf32": self.options["tf32"]})

    def providers(self) -> list[tuple[str, dict[str, str]]]:
        return [self._cuda(), ("CPUExecutionProvider", {})]

    def provider_info(self) -> dict[str, Any]:
        return {"cuda_use_tf32": int(self.options["tf32"])}

    def _load(self, model_path: Path) -> Session:
        session = super()._load(model_path)
        assert isinstance(session, OrtSession)
        # Read back what the provider really uses; refuse a silent disagreement.
        in_force = session.provider_options().get("CUDAExecutionProvider", {})
        if "use_tf32" in in_force and in_force["use_tf32"] != self.options["tf32"]:
            raise TargetError(
                f"asked for use_tf32={self.options['tf32']} but the CUDA provider "
                f"reports use_tf32={in_force['use_tf32']}"
            )
        return session


class OrtTensorrtTarget(OrtCudaTarget):
    """TensorRT for what it supports, CUDA (then CPU) for the rest; fp16/int8 stay off."""

    def providers(self) -> list[tuple[str, dict[str, str]]]:
        return [("TensorrtExecutionProvider", {}), self._cuda(), ("CPUExecutionProvider", {})]

    needs = "onnxruntime-gpu, TensorRT and a CUDA device"

    def unavailable_reason(self) -> str | None:
        reason = super().unavailable_reason()
        if reason:
            return reason
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            return (
                "CUDAExecutionProvider is not available (needs onnxruntime-gpu and a CUDA device)"
            )
        return None

    def provider_info(self) -> dict[str, Any]:
        return {**super().provider_info(), "trt_fp16_enable": False, "trt_int8_enable": False}

    def _load(self, model_path: Path) -> Session:
        session = super()._load(model_path)
        assert isinstance(session, OrtSession)
        in_force = session.provider_options().get("TensorrtExecutionProvider", {})
        for key in ("trt_fp16_enable", "trt_int8_enable"):
            if in_force.get(key, "0").lower() not in ("0", "false"):
                raise TargetError(
                    f"TensorRT reports {key}={in_force[key]}; this target runs float32"
                )
        return session
