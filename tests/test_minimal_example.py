"""examples/minimal_dipo.py: the framework-free loop computes TRL's DAPO loss and trains."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dipo.core import DiPO, DiPOConfig, dapo_token_loss, sequence_logppl

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "minimal_dipo.py"


def load_example():
    if "minimal_dipo" not in sys.modules:
        spec = importlib.util.spec_from_file_location("minimal_dipo", EXAMPLE)
        module = importlib.util.module_from_spec(spec)
        sys.modules["minimal_dipo"] = module  # dataclasses look their module up while the file runs
        spec.loader.exec_module(module)
    return sys.modules["minimal_dipo"]


def parity_reward(completions, answer, **kwargs):
    """Deterministic 0/1 rewards that vary within groups (the tiny random model never answers right)."""
    return [float(len(c) % 2) for c in completions]


@pytest.fixture(scope="module")
def policy(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)


def test_loss_equals_the_trl_engine_loss_on_the_same_batch(tiny_model_dir, policy, tmp_path):
    from trl_helpers import make_trainer

    from dipo.testbed import make_math_tasks

    example = load_example()
    model, tokenizer = policy
    torch.manual_seed(0)
    rows = make_math_tasks(3, seed=0, levels=(1, 2, 3))
    rollout = example.sample(model, tokenizer, [r["prompt"] for r in rows], 4, 12, 0.7)
    ragged = rollout.completion_mask.clone()
    ragged[4, 5:] = ragged[9, 8:] = 0  # completions that ended early (the random model rarely stops)
    rollout = dataclasses.replace(rollout, completion_mask=ragged)
    rewards = torch.tensor(parity_reward(rollout.texts, None))
    with torch.no_grad():
        logppl = sequence_logppl(example.completion_logprobs(model, rollout, 0.7), rollout.completion_mask)
    advantages = DiPO(DiPOConfig(use_psd=False)).step(rewards, logppl, rollout.group_ids).advantages
    assert advantages.abs().sum() > 0
    # behaviour log-probs off the current policy by up to +-0.5 nats, so both clip sides are exercised
    old = (example.completion_logprobs(model, rollout, 0.7).detach()
           + torch.empty(rollout.completion_ids.shape).uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(1)))
    mask = rollout.completion_mask.clone()
    mask[:2] = 0  # a group dropped by dynamic sampling

    # what the example's train() computes, with behaviour log-probs that differ from the current ones
    ours, stats = dapo_token_loss(example.completion_logprobs(model, rollout, 0.7), old, advantages, mask, 0.2, 0.28)
    assert stats["clip_frac_low"] > 0 and stats["clip_frac_high"] > 0

    trainer = make_trainer(tiny_model_dir, tmp_path, method="dipo", temperature=0.7, num_generations=4,
                           per_device_train_batch_size=12, max_completion_length=12)
    assert trainer.loss_type == "dapo" and (trainer.epsilon_low, trainer.epsilon_high) == (0.2, 0.28)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    inputs = {"prompt_ids": rollout.prompt_ids, "prompt_mask": rollout.prompt_mask,
              "completion_ids": rollout.completion_ids, "completion_mask": mask,
              "advantages": advantages, "old_per_token_logps": old, "num_items_in_batch": mask.sum()}
    theirs = trainer._compute_loss(trainer.model, inputs)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_a_few_steps_move_the_weights(policy):
    from dipo.testbed import make_math_tasks

    example = load_example()
    model, tokenizer = policy
    before = [p.detach().clone() for p in model.parameters()]
    torch.manual_seed(0)
    history = example.train(model, tokenizer, make_math_tasks(4, seed=0), steps=2, prompts_per_step=2,
                            group_size=4, max_new_tokens=10, lr=1e-3, reward_fn=parity_reward, log=lambda _: None)
    assert len(history) == 2 and all(torch.isfinite(torch.tensor(h["loss"])) for h in history)
    moved = sum(float((p.detach() - b).abs().max()) > 0 for p, b in zip(model.parameters(), before))
    assert moved >= len(before) // 2


@pytest.mark.slow
def test_script_runs_on_the_testbed():
    from dipo.testbed.build import TestbedConfig, cache_root

    if not (cache_root() / TestbedConfig().cache_key() / "testbed.json").exists():
        pytest.skip("testbed model not built (dipo testbed)")
    done = subprocess.run([sys.executable, str(EXAMPLE), "--steps", "2", "--prompts", "4"], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("step ") == 2 and "BRR fired" in done.stdout
