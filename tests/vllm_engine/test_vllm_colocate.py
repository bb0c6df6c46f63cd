"""`DiPOTrainer` with `use_vllm=True, vllm_mode="colocate"` on vLLM's CPU build (issue #20), end to end:
at every generation the engine holds the trainer's current weights, the recorded log-PPL is the
policy's at the sampling temperature, dynamic sampling's refill rounds and held-out evaluation run
through vLLM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from trl_helpers import forward_pass_logppl, read_metrics, read_rollouts, text_hash_reward, tiny_dataset

pytest.importorskip("vllm")  # the main environment has no vLLM: .ci/vllm-env.sh runs these
pytestmark = pytest.mark.vllm

# vLLM's dtype "auto" (TRL passes no dtype) downcasts a float32 model to bfloat16, on CPU as on GPUs, so
# the engine samples with the trainer's weights rounded to bfloat16: its weights must equal exactly that,
# and its log-probs are the bfloat16 sampler's. Per-sequence log-PPL against a float32 forward pass of the
# trainer's policy at the sampling temperature agrees to this much (measured: see docs/trl.md)
ENGINE_DTYPE = torch.bfloat16
LOGPPL_TOLERANCE = 2e-3  # measured: at most 4.9e-4 over 7 generations (DAPO run)


def half_flat_reward(completions, id, **kwargs):
    """Prompts with an even id are always right (an easy group: dropped by DAPO's filter, and by DiPO's when
    BRR is off on easy groups, so refills run), the others vary within the group."""
    return [1.0 if int(i[-1]) % 2 == 0 else r for i, r in zip(id, text_hash_reward(completions))]


def _vllm_weights(trainer) -> dict[str, torch.Tensor]:
    return trainer.vllm_generation.llm.apply_model(
        lambda model: {n: p.detach().float().clone() for n, p in model.named_parameters()})[0]


def _expected_vllm_weights(model) -> dict[str, torch.Tensor]:
    """The trainer's weights under vLLM's names (q/k/v and gate/up are fused there)."""
    hf = {n.removeprefix("base_model.model."): p.detach().float() for n, p in model.named_parameters()}
    out = {}
    for name, value in hf.items():
        if ".q_proj." in name:
            stem = name.replace(".q_proj.", ".qkv_proj.")
            out[stem] = torch.cat([value, hf[name.replace("q_proj", "k_proj")], hf[name.replace("q_proj", "v_proj")]])
        elif ".gate_proj." in name:
            out[name.replace(".gate_proj.", ".gate_up_proj.")] = torch.cat([value, hf[name.replace("gate_proj", "up_proj")]])
        elif not any(k in name for k in (".k_proj.", ".v_proj.", ".up_proj.")):
            out[name] = value
    return out


def train_and_check(model_dir: str, out_dir: str, method: str) -> None:
    """One colocate run with every check; run in its own process (a second vLLM engine in one process
    finds the first one's memory still taken)."""
    from pathlib import Path

    from dipo.engines.trl import DiPOConfig, DiPOTrainer

    tmp_path, vllm_model_dir = Path(out_dir), Path(model_dir)

    heldout = tiny_dataset(4)
    args = DiPOConfig(
        output_dir=str(tmp_path), use_cpu=True, bf16=False, seed=0, method=method, per_device_train_batch_size=8,
        num_generations=4, max_completion_length=12, max_steps=3, learning_rate=1e-2, lr_scheduler_type="constant",
        logging_steps=1, report_to=[], save_strategy="no", disable_tqdm=True, use_vllm=True, vllm_mode="colocate",
        vllm_gpu_memory_utilization=0.1, vllm_max_model_length=256, max_refill_rounds=2, heldout_eval_steps=3,
        heldout_k=2, heldout_max_new_tokens=8, heldout_temperature=0.5, use_psd=False,
        **({"easy_groups": False} if method == "dipo" else {}))
    trainer = DiPOTrainer(model=str(vllm_model_dir), reward_funcs=half_flat_reward, args=args,
                          train_dataset=tiny_dataset(32), heldout_dataset=heldout)
    checks = {"synced": 0, "logppl_gap": []}
    sync = trainer.vllm_generation.sync_weights

    def checked_sync():
        sync()
        want, got = _expected_vllm_weights(trainer.model), _vllm_weights(trainer)
        assert set(want) <= set(got), sorted(set(want) - set(got))[:5]
        for name, value in want.items():
            engine = got[name][: value.shape[0]]  # vLLM pads the vocabulary rows of the embedding
            torch.testing.assert_close(engine, value.to(ENGINE_DTYPE).float(), rtol=0, atol=0,
                                       msg=lambda m, name=name: f"vLLM's {name} is not the trainer's: {m}")
        checks["synced"] += 1

    trainer.vllm_generation.sync_weights = checked_sync
    generate = trainer._generate

    def checked_generate(prompts):
        out = generate(prompts)
        rollout = trainer._rollout
        recorded = [float(-np.mean(lp)) for lp in rollout.logprobs]
        expected = forward_pass_logppl(trainer.model, rollout, trainer.temperature)
        checks["logppl_gap"].append(float(np.max(np.abs(np.array(recorded) - np.array(expected)))))
        return out

    trainer._generate = checked_generate
    initial = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()

    assert checks["synced"] >= 2, "the engine was never re-synced after an optimizer step"
    assert checks["logppl_gap"] and max(checks["logppl_gap"]) < LOGPPL_TOLERANCE, checks["logppl_gap"]
    assert any(not torch.equal(initial[n], p) for n, p in trainer.model.named_parameters())
    metrics = read_metrics(tmp_path)
    train = [m for m in metrics if "loss" in m]
    assert [m["step"] for m in train] == [1, 2, 3]
    assert any(m["dynamic_sampling/rounds"] > 1 for m in train), "no refill round ran through vLLM"
    assert [m["step"] for m in metrics if "eval/accuracy" in m] == [0, 3]  # held-out evaluation through vLLM
    records = read_rollouts(tmp_path, 1)
    assert np.isfinite(records["logppl"]).all()
    print(f"\n{method}: max |recorded - forward-pass log-PPL| per generation: {checks['logppl_gap']}")


if __name__ == "__main__":
    import sys

    train_and_check(*sys.argv[1:4])


@pytest.mark.parametrize("method", ["dapo", "dipo"])
def test_colocate_training_is_the_policys_own(vllm_model_dir, tmp_path, method):
    import os
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).resolve()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(here.parents[1]), str(here.parents[2] / "src")])}
    done = subprocess.run([sys.executable, str(here), str(vllm_model_dir), str(tmp_path), method], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    print(done.stdout.strip().splitlines()[-1])
