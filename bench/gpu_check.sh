#!/usr/bin/env bash
# The prepared GPU check (docs/real-size.md): Qwen2.5-VL-3B and -7B, random weights, bf16, SDPA, one GPU.
# Serving throughput (16 frames at 448x448, batch 1 and 8, one-pass against five forwards), LoRA SFT/ASO
# and full FSDP2 SFT step time and peak memory, the planner's prediction beside each; writes
# bench/out/gpu_check/gpu_check.md. Under 10 minutes on one H100 is the target.
#   bench/gpu_check.sh                      # on a GPU machine, after the GPU install (README)
#   bench/gpu_check.sh --tiny --device cpu  # the same script on tiny models, on CPU (CI runs this)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
exec "$PYTHON" bench/gpu_check.py "$@"
