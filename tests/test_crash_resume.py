"""A real crash: `dipo train` killed with SIGKILL (no handler can run) while it trains and saves, then
`--resume_from_checkpoint last`. The resumed run must end bit-identical to an uninterrupted one, with
one metrics line per step (issue #14)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from trl_helpers import final_weights

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
STEPS = 6


def _argv(model_dir: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "dipo.cli", "train", "--config", str(REPO / "configs/trl/testbed_math_dipo.yaml"),
            "--model_name_or_path", str(model_dir), "--output_dir", str(out), "--heldout_dataset", "none",
            "--testbed_size", "16", "--max_steps", str(STEPS), "--per_device_train_batch_size", "8",
            "--num_generations", "4", "--max_completion_length", "12", "--save_strategy", "steps",
            "--save_steps", "1", "--save_total_limit", "2", "--disable_tqdm", "true"]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}


def test_sigkill_mid_run_then_resume_last_is_bit_identical(tiny_model_dir, tmp_path):
    reference = tmp_path / "reference"
    subprocess.run(_argv(tiny_model_dir, reference), check=True, env=_env(), capture_output=True, timeout=900)

    crashed = tmp_path / "crashed"
    proc = subprocess.Popen(_argv(tiny_model_dir, crashed), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not (crashed / "checkpoint-3").exists():  # killed after some saves, possibly inside the next one
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (crashed / "final").exists()

    # the lock of the killed run is stale (its process is gone): resuming must not be refused for it
    resumed = subprocess.run([*_argv(tiny_model_dir, crashed), "--resume_from_checkpoint", "last"], env=_env(),
                             capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    steps = [json.loads(line)["step"] for line in (crashed / "metrics.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == list(range(1, STEPS + 1))  # each step logged once: the rerun steps replaced the lost ones
    want, got = final_weights(reference), final_weights(crashed)
    assert want.keys() == got.keys()
    assert all((want[k] == got[k]).all() for k in want), "resumed weights differ from the uninterrupted run"

