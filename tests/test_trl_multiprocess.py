"""Two training processes (torch.distributed on CPU, gloo): every rank holds the same PPL queue,
dynamic sampling fills each rank's batch from whole groups, and checkpoints are published whole."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from trl_helpers import free_port, read_metrics, read_rollouts

CHILD = textwrap.dedent('''
    import sys, zlib
    import numpy as np
    sys.path.insert(0, sys.argv[3])
    from trl_helpers import make_trainer

    def reward(completions, id, **kwargs):  # even prompt ids always right: DAPO drops them, refills
        return [1.0 if int(i[-1]) % 2 == 0 else float(zlib.crc32(c.encode()) % 2) for c, i in zip(completions, id)]

    trainer = make_trainer(sys.argv[1], sys.argv[2], reward=reward, method="dapo", max_steps=2,
                           save_strategy="steps", save_steps=1, save_total_limit=1)
    if sys.argv[4] == "diverge" and trainer.accelerator.process_index == 1:
        trainer.dipo.queue.push([1.0], [True])  # rank 1's queue no longer matches rank 0's
    trainer.train()
    rank = trainer.accelerator.process_index
    assert trainer.accelerator.num_processes == 2
    np.savez(f"{sys.argv[2]}/queue-rank{rank}.npz", logppl=trainer.dipo.queue.logppl, correct=trainer.dipo.queue.correct)
''')


@pytest.mark.slow
def _run_two_ranks(tiny_model_dir, tmp_path, mode: str) -> tuple[Path, subprocess.CompletedProcess]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           str(script), str(tiny_model_dir), str(out), str(Path(__file__).parent), mode]
    return out, subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_two_processes_share_one_queue(tiny_model_dir, tmp_path):
    out, result = _run_two_ranks(tiny_model_dir, tmp_path, "same")
    assert result.returncode == 0, result.stderr[-3000:]

    queues = [np.load(out / f"queue-rank{r}.npz") for r in (0, 1)]
    np.testing.assert_array_equal(queues[0]["logppl"], queues[1]["logppl"])
    np.testing.assert_array_equal(queues[0]["correct"], queues[1]["correct"])
    for step in (1, 2):
        rec = read_rollouts(out, step)
        assert len(rec) % 16 == 0 and rec["kept"].sum() == 16  # 2 ranks x 8 completions kept
        assert rec.groupby("group_id")["kept"].nunique().eq(1).all()  # whole groups only
    assert any(read_rollouts(out, step)["round"].max() >= 1 for step in (1, 2))  # a refill happened
    # checkpoints staged and published once by the main process, then rotated (every rank took part)
    assert sorted(p.name for p in out.iterdir() if "checkpoint" in p.name) == ["checkpoint-2"]
    assert (out / "checkpoint-2" / "dipo_state.pt").is_file()
    metrics = [m for m in read_metrics(out) if "loss" in m]
    assert [m["step"] for m in metrics] == [1, 2]
    assert metrics[-1]["dipo/queue_size"] == len(queues[0]["logppl"])


@pytest.mark.slow
def test_ranks_whose_queues_differ_stop_at_the_first_step(tiny_model_dir, tmp_path):
    out, result = _run_two_ranks(tiny_model_dir, tmp_path, "diverge")
    assert result.returncode != 0
    assert "DiPO: ranks disagree on the PPL queue / BRR decisions at step 1 round 0" in result.stderr
    assert not (out / "checkpoint-1").exists()
