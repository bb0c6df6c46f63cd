#!/usr/bin/env bash
# Builds the verl environment (.venv-verl; verl 0.9 needs transformers < 5.11, so it cannot share
# .venv) and runs tests/verl in it, slow tests included. CPU only: no GPU package is installed.
# Usage: bash .ci/verl-env.sh            (VENV=/path/to/venv to build elsewhere)
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export RAY_USAGE_STATS_ENABLED=0 PYTHONWARNINGS=ignore
VENV="${VENV:-.venv-verl}"

python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
# The CPU build of torch first: verl's base requirements need torch only through accelerate/peft/
# torchdata, which then accept it (a bare `torch` would pull a multi-GB CUDA build).
"$PY" -m pip install -q torch==2.13.0
# verl's base install pulls no GPU package (vllm/sglang/flash-attn are extras). Its V1 trainer also
# imports TransferQueue, cachetools, fastapi, uvicorn, pyzmq and msgspec (verl's [verl-core] extra,
# of which we take only these: the rest, e.g. torchcodec and nvtx, is for GPU runs).
"$PY" -m pip install -q "verl==0.9.1" "transformers>=5.5.3,<5.11" "TransferQueue==0.1.11" \
    cachetools fastapi uvicorn pyzmq msgspec pyyaml pytest hypothesis
"$PY" -m pip install -q -e . --no-deps

"$PY" -m pytest tests/verl -m "slow or not slow" -p no:cacheprovider
