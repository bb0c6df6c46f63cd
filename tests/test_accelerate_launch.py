"""`dipo train` under `accelerate launch --num_processes 2` on CPU (gloo), as a user launches it (issue #20):
DiPO with dynamic sampling, held-out evaluation every 2 steps and a checkpoint every step.

- The trainer compares a digest of its PPL queue, split and BRR decisions across ranks after every
  generation round and ends the run if they differ (`DiPOTrainer._check_ranks_agree`; that the check
  fires is tested in test_trl_multiprocess.py), so a two-process run that finishes had them identical
  on both ranks at every step; here BRR fires on every extreme group (`use_psd=false`).
- Where it should, the run matches the single-process run with the same global batch: the same prompts
  at every step, the same queue sizes, the same steps logged and held-out evaluations at the same steps.
- Rank 1 killed (SIGKILL) mid-run: the launcher ends the run (no hang), the last published checkpoint is
  complete, and `--resume_from_checkpoint last` on two processes ends bit-identical to the uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from trl_helpers import final_weights, free_port, read_metrics, read_rollouts

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
STEPS = 4
REWARD = '''
import zlib


def reward(completions, id, **kwargs):
    """By prompt: a third always right (easy groups), a third always wrong (hard), a third mixed by a hash."""
    kinds = [int(i.rsplit("-", 1)[-1]) % 3 for i in id]
    return [1.0 if k == 0 else 0.0 if k == 1 else float(zlib.crc32(c.encode()) % 2) for c, k in zip(completions, kinds)]
'''


def _train_args(model_dir: Path, out: Path, per_device_batch: int) -> list[str]:
    return ["train", "--config", str(REPO / "configs/trl/testbed_math_dipo.yaml"), "--model_name_or_path",
            str(model_dir), "--output_dir", str(out), "--reward_funcs", "xreward:reward", "--use_psd", "false",
            "--dynamic_sampling", "true", "--testbed_size", "48", "--testbed_levels", "1",
            "--heldout_dataset", "testbed:math", "--heldout_eval_steps", "2", "--heldout_max_problems", "4",
            "--heldout_k", "2", "--heldout_max_new_tokens", "8", "--max_steps", str(STEPS),
            "--per_device_train_batch_size", str(per_device_batch), "--num_generations", "4",
            "--max_completion_length", "12", "--save_steps", "1", "--save_total_limit", "2", "--disable_tqdm", "true"]


def _launch(model_dir: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--multi_gpu", "--main_process_port", str(free_port()),
            "-m", "dipo.cli", *_train_args(model_dir, out, 8), *extra]


def _env(reward_dir: Path) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
            "PYTHONPATH": os.pathsep.join([str(reward_dir), str(REPO / "src")])}


def _rank_pid(out: Path, rank: int) -> int | None:
    """The pid of the training process of `rank` for the run writing to `out` (found through /proc)."""
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or str(out) not in (proc / "cmdline").read_bytes().decode(errors="ignore"):
                continue
            env = dict(kv.split("=", 1) for kv in (proc / "environ").read_bytes().decode(errors="ignore").split("\0")
                       if "=" in kv)
        except OSError:
            continue
        if env.get("RANK") == str(rank) and "LOCAL_RANK" in env:
            return int(proc.name)
    return None


def _steps(run: Path) -> list[int]:
    return [m["step"] for m in read_metrics(run) if "loss" in m]


def test_accelerate_two_processes_match_one_and_survive_a_killed_rank(tiny_model_dir, tmp_path):
    (tmp_path / "xreward.py").write_text(REWARD)
    env = _env(tmp_path)

    two = tmp_path / "two"
    result = subprocess.run(_launch(tiny_model_dir, two), env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "from scratch, 2 processes; run directory" in result.stderr
    one = tmp_path / "one"
    result = subprocess.run([sys.executable, "-m", "dipo.cli", *_train_args(tiny_model_dir, one, 16)], env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]

    # matches the single-process run where it should: prompts, queue, steps, held-out schedule
    assert _steps(two) == _steps(one) == list(range(1, STEPS + 1))
    fired = 0
    for step in range(1, STEPS + 1):
        rec_two, rec_one = read_rollouts(two, step), read_rollouts(one, step)
        first_two, first_one = rec_two[rec_two["round"] == 0], rec_one[rec_one["round"] == 0]
        assert first_two["prompt_id"].tolist() == first_one["prompt_id"].tolist(), step
        assert rec_two["kept"].sum() == rec_one["kept"].sum() == 16
        assert rec_two.groupby(["round", "group_id"])["kept"].nunique().eq(1).all()  # whole groups only
        fired += int(rec_two.groupby(["round", "group_id"])["fired"].first().sum())
    assert fired > 0  # BRR decisions were made (and agreed on by both ranks, or the run would have stopped)
    metrics_two, metrics_one = read_metrics(two), read_metrics(one)
    assert [m["dipo/queue_size"] for m in metrics_two if "loss" in m] == \
        [m["dipo/queue_size"] for m in metrics_one if "loss" in m]
    assert [m["step"] for m in metrics_two if "eval/accuracy" in m] == \
        [m["step"] for m in metrics_one if "eval/accuracy" in m] == [0, 2, 4]

    # rank 1 killed mid-run: the launcher ends the run, the last published checkpoint resumes bit-exactly
    crashed = tmp_path / "crashed"
    proc = subprocess.Popen(_launch(tiny_model_dir, crashed), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while not (crashed / "checkpoint-2").exists():
        assert proc.poll() is None, "the run ended before a rank could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pid = _rank_pid(crashed, 1)
    assert pid is not None, "rank 1's process not found"
    os.kill(pid, signal.SIGKILL)
    try:
        _, stderr = proc.communicate(timeout=180)  # never hangs on the dead peer
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the launcher hung after rank 1 was killed")
    assert proc.returncode != 0
    assert not (crashed / "final").exists()
    from dipo.engines.trl.checkpoints import resume_gaps

    published = sorted((p for p in crashed.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                       key=lambda p: int(p.name.split("-")[-1]))
    assert published and resume_gaps(published[-1], needs_optimizer=True) == []

    resumed = subprocess.run(_launch(tiny_model_dir, crashed, "--resume_from_checkpoint", "last"), env=env,
                             capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _steps(crashed) == list(range(1, STEPS + 1))  # each step logged once
    want, got = final_weights(two), final_weights(crashed)
    assert want.keys() == got.keys()
    assert all((want[k] == got[k]).all() for k in want), "resumed weights differ from the uninterrupted run"
    assert json.loads((crashed / "metrics.jsonl").read_text().splitlines()[-1])["step"] == STEPS


def test_accelerate_cpu_flag_starts_one_process_and_dipo_says_so(tiny_model_dir, tmp_path):
    """accelerate 1.16's `--cpu` takes its one-process launcher whatever `--num_processes` says."""
    (tmp_path / "xreward.py").write_text(REWARD)
    out = tmp_path / "run"
    cmd = _launch(tiny_model_dir, out, "--max_steps", "1", "--heldout_dataset", "none", "--save_strategy", "no")
    cmd[cmd.index("--multi_gpu")] = "--cpu"
    result = subprocess.run(cmd, env=_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "dipo train: warning: accelerate launch --cpu started 1 process" in result.stderr
    assert "2 processes" not in result.stderr
