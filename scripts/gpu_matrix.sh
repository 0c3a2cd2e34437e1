#!/usr/bin/env bash
# Exercise every GPU target available on this machine against the pack and print the matrix.
# Meant for a GPU machine with the project installed (onnxruntime-gpu, openvino, iree, torch
# with CUDA, as available); ort:cpu runs beside them as the baseline. Then the precision classes:
# TF32 on (its own class), the fp16 profile, and bf16 where a GPU target has a bf16 mode.
# Bounded to under 12 minutes. Not yet run on a GPU: no session with this script had a device.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
GPU_TARGETS="ort:cuda ort:tensorrt openvino:gpu iree:cuda torch:cuda tf:gpu"

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not found"
selected=""
for target in $GPU_TARGETS; do
  reason=$("$PY" -c "from conformance.targets import get_target; print(get_target('$target').unavailable_reason() or '')")
  if [ -z "$reason" ]; then selected="$selected --target $target"; else echo "$target: unavailable ($reason)"; fi
done
if [ -z "$selected" ]; then
  echo "no GPU target is available here"
  exit 0
fi
stamp=$(date +%Y%m%d-%H%M%S)
# fp32: strict (ort:cuda runs with TF32 off unless tf32=1), ort:cpu as the baseline.
timeout 290 "$PY" -m conformance run $selected --target ort:cpu --timeout 60 --out "reports/gpu-$stamp"
# TF32 is its own class: the same fp32 artifacts with CUDA's TF32 on, judged under tf32.
if [[ " $selected " == *" --target ort:cuda "* ]]; then
  timeout 120 "$PY" -m conformance run --profile tf32 --target ort:cuda:tf32=1 --timeout 60 --out "reports/gpu-$stamp-tf32"
fi
# fp16: the pack's fp16 artifacts (and digits' accuracy checks) on every GPU target here.
timeout 150 "$PY" -m conformance run --profile fp16 $selected --target ort:cpu --timeout 60 --out "reports/gpu-$stamp-fp16"
# bf16 on the fp32 artifacts, where a GPU target has a bf16 mode (OpenVINO's GPU plugin).
if [[ " $selected " == *" --target openvino:gpu "* ]]; then
  timeout 120 "$PY" -m conformance run --profile bf16 --target openvino:gpu:precision=bf16 --timeout 60 --out "reports/gpu-$stamp-bf16"
fi
