#!/usr/bin/env bash
# Exercise every GPU target available on this machine against the pack and print the matrix.
# Meant for a GPU machine with the project installed (onnxruntime-gpu, openvino, iree, torch
# with CUDA, as available); ort:cpu runs beside them as the baseline. Bounded to under 5 minutes.
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
timeout 290 "$PY" -m conformance run $selected --target ort:cpu --timeout 60 --out "reports/gpu-$(date +%Y%m%d-%H%M%S)"
