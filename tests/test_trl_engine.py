"""DiPOTrainer on the tiny offline model: training, advantages, log-PPL, resume, failing rewards."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from trl_helpers import forward_pass_logppl, make_trainer, read_metrics, read_rollouts, text_hash_reward

from dipo.core import group_advantages
from dipo.engines.kit import ROLLOUT_COLUMNS


def _weights(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


@pytest.mark.parametrize("method", ["grpo", "dapo", "dipo", "cde"])
def test_each_method_trains_and_changes_weights(tiny_model_dir, tmp_path, method):
    trainer = make_trainer(tiny_model_dir, tmp_path, method=method)
    before = _weights(trainer.model)
    trainer.train()
    after = _weights(trainer.model)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    metrics = read_metrics(tmp_path)
    assert [m["step"] for m in metrics if "loss" in m] == [1, 2]
    for key in ("dipo/frac_easy", "dipo/frac_hard", "dipo/threshold", "dipo/accuracy", "dipo/queue_size",
                "dipo/quadrant_CL", "entropy", "reward"):
        assert key in metrics[0], key
    records = read_rollouts(tmp_path, 2)
    assert set(ROLLOUT_COLUMNS) <= set(records.columns)
    assert len(records) == 8 and (records["step"] == 2).all()


def test_dipo_learns_from_all_wrong_groups_where_dapo_cannot(tiny_model_dir, tmp_path):
    """Every reward is 0: DAPO has no signal (weights fixed); DiPO's maximum-PPL reward moves them."""
    def always_wrong(completions, **kwargs):
        return [0.0] * len(completions)

    common = dict(reward=always_wrong, max_steps=1, use_psd=False, max_refill_rounds=1)
    dapo = make_trainer(tiny_model_dir, tmp_path / "dapo", method="dapo", **common)
    before = _weights(dapo.model)
    dapo.train()
    assert all(torch.equal(before[k], v) for k, v in _weights(dapo.model).items())
    assert read_metrics(tmp_path / "dapo")[0]["dynamic_sampling/filled_groups"] == 2  # nothing kept: filled

    dipo = make_trainer(tiny_model_dir, tmp_path / "dipo", method="dipo", **common)
    dipo.train()
    assert any(not torch.equal(before[k], v) for k, v in _weights(dipo.model).items())
    assert read_metrics(tmp_path / "dipo")[0]["dipo/fired_hard"] == 2


def test_dipo_changes_advantages_only_in_extreme_groups_through_chosen_sample(tiny_model_dir, tmp_path):
    # Prompts alternate: the first of each pair always right (easy group), the second mixed (normal group).
    def reward(completions, id, **kwargs):
        return [1.0 if int(i[-1]) % 2 == 0 else text_hash_reward([c])[0] for c, i in zip(completions, id)]

    trainer = make_trainer(tiny_model_dir, tmp_path, reward=reward, method="dipo", use_psd=False, alpha=0.5,
                           overlong_shaping=False, dynamic_sampling=False, max_steps=1, per_device_train_batch_size=16)
    trainer.train()
    rec = read_rollouts(tmp_path, 1)
    gid = torch.tensor(rec["group_id"].to_numpy())
    base = group_advantages(torch.as_tensor(rec["reward"].to_numpy()), gid).numpy()
    extra = rec["advantage"].to_numpy() - base
    normal = (rec["group_kind"] == "normal").to_numpy()
    assert normal.any() and (~normal).any()
    np.testing.assert_allclose(extra[normal], 0.0, atol=1e-6)          # normal groups untouched
    np.testing.assert_allclose(base[~normal], 0.0, atol=1e-6)          # extreme groups: A(R) = 0
    realloc, reward = rec["realloc_reward"].to_numpy(), rec["reward"].to_numpy()
    assert (realloc[normal] == 0).all()                                # normal groups: R_r = 0, no signal
    changed = realloc[~normal] != reward[~normal]
    assert (changed == rec["chosen"].to_numpy()[~normal]).all()      # extreme groups: R_r differs only at the pick
    for _, group in rec[~normal].groupby("group_id"):
        assert group["fired"].all() and group["chosen"].sum() == 1
        assert group.loc[group["chosen"], "logppl"].item() == group["logppl"].max()   # the max-PPL sample
        assert (np.abs(group["advantage"]) > 0).all()                  # reallocated signal reaches the group


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_recorded_logppl_equals_a_forward_pass(tiny_model_dir, tmp_path, temperature):
    trainer = make_trainer(tiny_model_dir, tmp_path, method="dipo", max_steps=1, learning_rate=0.0,
                           temperature=temperature, dynamic_sampling=False)
    trainer.train()  # learning_rate 0: the model is still the policy that sampled
    rollout, model = trainer._rollout, trainer.model.eval()
    expected = forward_pass_logppl(model, rollout, temperature)
    recorded = read_rollouts(tmp_path, 1)["logppl"].to_numpy()
    np.testing.assert_allclose(recorded, expected, rtol=1e-4, atol=1e-4)


def test_resume_gives_the_same_step_4_metrics(tiny_model_dir, tmp_path):
    keys = ("loss", "reward", "entropy", "dipo/threshold", "dipo/queue_size", "dipo/logppl_correct", "grad_norm")
    # queue_batches=3: step 4 splits on steps 2-4, so the queue saved at step 2 must be restored
    full = make_trainer(tiny_model_dir, tmp_path / "full", method="dipo", max_steps=4, queue_batches=3)
    full.train()
    first = make_trainer(tiny_model_dir, tmp_path / "split", method="dipo", max_steps=2, queue_batches=3,
                         save_strategy="steps", save_steps=2)
    first.train()
    second = make_trainer(tiny_model_dir, tmp_path / "split", method="dipo", max_steps=4, queue_batches=3)
    second.train(resume_from_checkpoint=str(tmp_path / "split" / "checkpoint-2"))
    step4 = {run: [m for m in read_metrics(tmp_path / run) if m["step"] == 4 and "loss" in m][0]
             for run in ("full", "split")}
    for key in keys:
        assert step4["full"][key] == pytest.approx(step4["split"][key], rel=1e-5, abs=1e-7), key
    assert [m["step"] for m in read_metrics(tmp_path / "split") if "loss" in m] == [1, 2, 3, 4]


def test_raising_reward_gives_zero_and_a_counted_warning(tiny_model_dir, tmp_path, caplog):
    def fragile(completions, **kwargs):
        if any(zlib_parity(c) for c in completions) and len(completions) > 1:
            raise RuntimeError("batch failed")
        if zlib_parity(completions[0]):
            raise RuntimeError("cannot grade this one")
        return [1.0] * len(completions)

    def zlib_parity(text):
        return text_hash_reward([text])[0] == 1.0

    trainer = make_trainer(tiny_model_dir, tmp_path, reward=fragile, method="dapo", max_steps=1,
                           dynamic_sampling=False, overlong_shaping=False)
    with caplog.at_level("WARNING"):
        trainer.train()
    rec = read_rollouts(tmp_path, 1)
    failed = (rec["reward"] == 0).to_numpy()
    assert failed.any() and (~failed).any()
    assert read_metrics(tmp_path)[0]["reward_errors/fragile"] == failed.sum()
    assert "cannot grade this one" in caplog.text


def test_dynamic_sampling_refills_with_new_prompts(tiny_model_dir, tmp_path):
    # Even-numbered prompts always right (no signal, dropped); odd ones mixed (kept). Half of each
    # round survives, so a second round of new prompts is needed to fill the batch.
    def reward(completions, id, **kwargs):
        return [1.0 if int(i[-1]) % 2 == 0 else text_hash_reward([c])[0] for c, i in zip(completions, id)]

    trainer = make_trainer(tiny_model_dir, tmp_path, reward=reward, method="dapo", max_steps=1,
                           per_device_train_batch_size=16)
    trainer.train()
    rec = read_rollouts(tmp_path, 1)
    metrics = read_metrics(tmp_path)[0]
    assert rec["round"].max() >= 1 and metrics["dynamic_sampling/rounds"] >= 2
    kept = rec[rec["kept"]]
    assert len(kept) == 16
    flat_groups = (kept.groupby("group_id")["reward"].nunique() == 1).sum()
    assert flat_groups == metrics["dynamic_sampling/filled_groups"]  # kept groups have signal unless filled
    first_round = set(rec.loc[rec["round"] == 0, "prompt_id"])
    assert set(rec.loc[rec["round"] == 1, "prompt_id"]) - first_round  # the refill brought new prompts


def test_heldout_evaluation_is_logged_as_eval_accuracy(tiny_model_dir, tmp_path):
    from trl_helpers import tiny_dataset

    def first_char_is_digit(completions, **kwargs):  # a verifier the random model passes sometimes
        return [float(c[:1].isdigit()) for c in completions]

    trainer = make_trainer(tiny_model_dir, tmp_path, reward=first_char_is_digit, method="dipo", max_steps=2,
                           heldout=tiny_dataset(4), heldout_eval_steps=1, heldout_k=2, heldout_max_problems=3)
    trainer.train()
    evals = [m for m in read_metrics(tmp_path) if "eval/accuracy" in m]
    assert [m["step"] for m in evals] == [0, 1, 2]  # step 0: the policy RL starts from
    assert all("loss" in m and "dipo/threshold" in m for m in evals[1:])  # on the step's own line, nothing lost
    assert all(0.0 <= m["eval/accuracy"] <= m["eval/pass@2"] <= 1.0 for m in evals)
