#!/usr/bin/env bash
# Issue #21's runs, in protocol order (benchmarks/long_horizon.md), resumable and committed as they finish:
# the DAPO/GRPO pilot (fixes the step count), Fig. 5's BRR-only runs, then the long-horizon grid
# (DAPO and DiPO for every seed first, then the dose-response variants). Re-run it to continue.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${JOBS:-2}"
python benchmarks/learning.py --pilot --jobs "$JOBS" --commit
python benchmarks/learning.py --methods brr-reward brr-penalty --no-baseline --seeds 0 1 2 --jobs "$JOBS" \
    --runs-dir runs/mechanism_fig5 --out benchmarks/results/mechanism_fig5 --commit
python benchmarks/learning.py --long --jobs "$JOBS" --commit
# once every alpha has run on every seed, the second pass adds use_psd=false at the best alpha
python benchmarks/learning.py --long --jobs "$JOBS" --commit
python benchmarks/mechanism.py
