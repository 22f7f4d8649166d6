#!/usr/bin/env bash
# The GPU check in one go (docs/PERFORMANCE.md, "GPU check"): on a machine with an NVIDIA GPU,
# installs onnxruntime-gpu (+ CUDA 12, cuDNN, TensorRT libraries) beside the project's CPU
# onnxruntime, runs every zoo model on the CUDA and TensorRT providers (fp16 where accuracy
# holds) and the steel-strip pipeline at 30 fps for 60 s, and writes the JSON report into
# docs/perf/gpu/ to commit. Without a GPU it says so and exits 0 (add --strict for exit 3).
#   deploy/gpu_check.sh [--out DIR] [--wheels DIR] [--max-minutes 10] [--strict]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
exec "$PY" -m deploy.cli bench gpu "$@"
