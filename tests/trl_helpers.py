"""Shared setup for the TRL engine tests: a small trainer on the tiny offline model."""

from __future__ import annotations

import json
import socket
import zlib
from pathlib import Path

import pyarrow.parquet as pq
import torch


def tiny_dataset(n: int = 16):
    from datasets import Dataset

    from dipo.testbed.tasks import make_math_tasks

    rows = make_math_tasks(n, seed=0, levels=(1,))
    return Dataset.from_list([{"id": r["id"], "prompt": r["prompt"], "answer": r["answer"]} for r in rows])


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a launcher's rendezvous or a test server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def text_hash_reward(completions, **kwargs):
    """A deterministic 0/1 'verifier' that varies within groups: parity of a hash of the completion."""
    return [float(zlib.crc32(c.encode()) % 2) for c in completions]


def make_trainer(model_dir, out_dir, reward=text_hash_reward, dataset=None, heldout=None, **overrides):
    from dipo.engines.trl import DiPOConfig, DiPOTrainer

    torch.set_num_threads(1)
    settings = dict(
        output_dir=str(out_dir), use_cpu=True, bf16=False, seed=0, per_device_train_batch_size=8,
        num_generations=4, max_completion_length=12, max_steps=2, learning_rate=1e-3,
        lr_scheduler_type="constant", logging_steps=1, report_to=[], save_strategy="no", disable_tqdm=True,
    )
    settings.update(overrides)
    return DiPOTrainer(model=str(model_dir), reward_funcs=reward, args=DiPOConfig(**settings),
                       train_dataset=dataset if dataset is not None else tiny_dataset(), heldout_dataset=heldout)


def read_metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def read_rollouts(run_dir, step: int):
    return pq.read_table(Path(run_dir) / "rollouts" / f"step-{step:06d}.parquet").to_pandas()


def final_weights(run_dir) -> dict:
    """The tensors `dipo train` saved in `run_dir/final` (for bit-exact comparisons of whole runs)."""
    from safetensors.torch import load_file

    return load_file(str(Path(run_dir) / "final" / "model.safetensors"))


def forward_pass_logppl(model, rollout, temperature: float) -> list[float]:
    """Each rolled-out completion's log-PPL by one forward pass over prompt + completion at the sampling
    temperature: what the trainer must have recorded from the rollout's own log-probs."""
    from dipo.core import sequence_logppl

    expected = []
    for prompt, completion in zip(rollout.prompt_ids, rollout.completion_ids):
        ids = torch.tensor([prompt + completion])
        with torch.no_grad():
            logits = model(ids).logits[0, len(prompt) - 1:-1].float() / temperature
        logps = torch.log_softmax(logits, -1).gather(1, torch.tensor(completion)[:, None]).T
        expected.append(sequence_logppl(logps, torch.ones_like(logps)).item())
    return expected
