#!/usr/bin/env bash
# DiPO on a multi-node Ray cluster with verl 0.9 (GPU nodes). See docs/verl.md.
#
#   bash scripts/verl/dipo_ray.sh head                 # on the head node
#   bash scripts/verl/dipo_ray.sh worker HEAD_IP       # on every other node
#   bash scripts/verl/dipo_ray.sh prepare-math         # once: DAPO-Math-17K + AIME 2024 into $DIPO_DATA_DIR
#   bash scripts/verl/dipo_ray.sh prepare-tool         # once: ToolRL rlla_4k into $DIPO_DATA_DIR
#   bash scripts/verl/dipo_ray.sh math [key=value ...] # on the head: submit the paper's maths run
#   bash scripts/verl/dipo_ray.sh tool [key=value ...] # on the head: submit the tool-calling run
#
# Every node needs the same environment: pip install "verl[vllm]==0.9.1" && pip install -e <this repo> --no-deps
# (dipo must be importable on all nodes: verl's reward workers and the plugin import it).
# Environment: NNODES (default 2), GPUS_PER_NODE (8), DIPO_DATA_DIR (/data/dipo), DIPO_MODEL (recipe default),
# RAY_PORT (6379), DASHBOARD_PORT (8265).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
NNODES="${NNODES:-2}"
GPUS_PER_NODE="${GPUS_PER_NODE:-8}"
RAY_PORT="${RAY_PORT:-6379}"
DASHBOARD_PORT="${DASHBOARD_PORT:-8265}"
export DIPO_DATA_DIR="${DIPO_DATA_DIR:-/data/dipo}"

submit() {  # submit(config_name, overrides...): a Ray job running the DiPO launcher on the cluster
    local config="$1"; shift
    local env_json
    env_json=$(python3 -c 'import json, os
env = {"DIPO_DATA_DIR": os.environ["DIPO_DATA_DIR"], "TOKENIZERS_PARALLELISM": "true", "VLLM_LOGGING_LEVEL": "WARN"}
if os.environ.get("DIPO_MODEL"):
    env["DIPO_MODEL"] = os.environ["DIPO_MODEL"]
print(json.dumps({"env_vars": env}))')
    ray job submit --address="http://127.0.0.1:${DASHBOARD_PORT}" --runtime-env-json="$env_json" --no-wait -- \
        python3 -m dipo.engines.verl.main \
        --config-path="$REPO/configs/verl" --config-name="$config" \
        trainer.nnodes="$NNODES" trainer.n_gpus_per_node="$GPUS_PER_NODE" "$@"
}

case "${1:-}" in
    head)
        ray start --head --port="$RAY_PORT" --dashboard-host=0.0.0.0 --dashboard-port="$DASHBOARD_PORT" \
            --num-gpus="$GPUS_PER_NODE" ;;
    worker)
        ray start --address="${2:?usage: dipo_ray.sh worker HEAD_IP}:${RAY_PORT}" --num-gpus="$GPUS_PER_NODE" ;;
    prepare-math)
        # pinned Hub revisions -> $DIPO_DATA_DIR/verl/{dapo_math_17k,aime24}.parquet (verl RL rows, row counts checked)
        dipo data prepare dapo_math_17k aime24 --out "$DIPO_DATA_DIR" ;;
    prepare-tool)
        dipo data prepare rlla_4k --out "$DIPO_DATA_DIR" ;;
    math)
        shift; submit qwen3_8b_base_math_dipo "$@" ;;
    tool)
        shift; submit qwen25_7b_instruct_tool_dipo "$@" ;;
    *)
        sed -n '2,15p' "$0"; exit 2 ;;
esac
