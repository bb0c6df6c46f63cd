"""The TRL engine keeps DiPO's contract (issue #10): correctness from the verifier alone, Eq. 10 under
shaping, one PPL-queue batch per training step (every dynamic-sampling round)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from trl_helpers import make_trainer, read_metrics, read_rollouts, text_hash_reward

from dipo.core import DiPO, DiPOConfig
from dipo.engines.kit.correctness import resolve_correctness_funcs, verifier_rewards


def accuracy(completions, **kwargs):  # a verifier the tiny model always fails
    return [0.0] * len(completions)


def format_ok(completions, **kwargs):  # every completion "well formatted"
    return [1.0] * len(completions)


def test_resolve_correctness_funcs_by_name_index_and_default():
    names = ["accuracy", "format_ok", "length"]
    assert resolve_correctness_funcs(None, names) == [0]
    assert resolve_correctness_funcs(["format_ok"], names) == [1]
    assert resolve_correctness_funcs(["2", 0, "accuracy"], names) == [2, 0]
    for bad in (["acc"], ["3"], []):
        with pytest.raises(ValueError, match="correctness_reward_funcs"):
            resolve_correctness_funcs(bad, names)


def test_verifier_rewards_sum_raw_correctness_columns_and_skip_functions_that_do_not_apply():
    nan = float("nan")
    per_func = torch.tensor([[1.0, 1.0, 0.5], [0.0, 1.0, 0.5], [nan, 1.0, 0.5], [nan, 1.0, nan]])
    torch.testing.assert_close(verifier_rewards(per_func, [0], 0.0), torch.tensor([1.0, 0.0, 0.0, 0.0]))
    torch.testing.assert_close(verifier_rewards(per_func, [0, 2], -1.0), torch.tensor([1.5, 0.5, 0.5, -1.0]))


def test_all_wrong_well_formatted_group_is_hard(tiny_model_dir, tmp_path):
    """accuracy + format: every group is all wrong with perfect format. Correctness is the verifier's: the
    groups are hard, accuracy is 0, and BRR (no PSD) fires its maximum-PPL *reward* in each of them."""
    trainer = make_trainer(tiny_model_dir, tmp_path, reward=[accuracy, format_ok], method="dipo", max_steps=1,
                           use_psd=False, dynamic_sampling=False, overlong_shaping=False)
    trainer.train()
    rec = read_rollouts(tmp_path, 1)
    metrics = read_metrics(tmp_path)[0]
    assert (rec["group_kind"] == "hard").all() and (rec["reward"] == 0).all()
    assert (rec["shaped_reward"] == 1).all()  # the training reward still includes the format reward
    assert metrics["dipo/frac_hard"] == 1 and metrics["dipo/accuracy"] == 0 and metrics["dipo/fired_easy"] == 0
    assert metrics["dipo/fired_hard"] == 2
    assert (rec.loc[rec["chosen"], "realloc_reward"] == 1).all()  # a reward, not easy-group's penalty


def test_correctness_reward_funcs_selects_the_verifier(tiny_model_dir, tmp_path):
    trainer = make_trainer(tiny_model_dir, tmp_path, reward=[accuracy, format_ok], method="dapo", max_steps=1,
                           dynamic_sampling=False, correctness_reward_funcs=["format_ok"])
    assert trainer.correctness_funcs == [1]
    trainer.train()
    assert (read_rollouts(tmp_path, 1)["group_kind"] == "easy").all()
    with pytest.raises(ValueError, match=r"correctness_reward_funcs=\['acc'\]"):
        make_trainer(tiny_model_dir, tmp_path / "bad", reward=[accuracy, format_ok], correctness_reward_funcs=["acc"])


def test_shaping_does_not_leak_into_flat_verifier_groups(tiny_model_dir, tmp_path):
    """accuracy (always 0) + a 0.05-weighted shaping reward that varies inside every group: A(R) must be 0 in
    these verifier-flat groups (DAPO would drop them), so the advantage is exactly alpha * A(R_r)."""
    trainer = make_trainer(tiny_model_dir, tmp_path, reward=[accuracy, text_hash_reward], reward_weights=[1.0, 0.05],
                           method="dipo", max_steps=1, use_psd=False, dynamic_sampling=False, alpha=0.1)
    trainer.train()
    rec = read_rollouts(tmp_path, 1)
    assert rec.groupby("group_id")["shaped_reward"].nunique().max() > 1  # shaping varies inside a flat group
    for _, group in rec.groupby("group_id"):
        r_r = torch.tensor(group["realloc_reward"].to_numpy())
        expected = 0.1 * (r_r - r_r.mean()) / (r_r.std() + 1e-4)
        np.testing.assert_allclose(group["advantage"].to_numpy(), expected.numpy(), atol=1e-5)


def test_queue_holds_every_round_of_a_step_as_one_batch(tiny_model_dir, tmp_path):
    """Dynamic sampling refills each step; the trainer's queue equals the core fed one batch per step with
    every sampled row (kept or not), i.e. the rollout records of the last `queue_batches` steps."""
    def reward(completions, id, **kwargs):  # even prompts always right (dropped), odd ones mixed (kept)
        return [1.0 if int(i[-1]) % 2 == 0 else text_hash_reward([c])[0] for c, i in zip(completions, id)]

    trainer = make_trainer(tiny_model_dir, tmp_path, reward=reward, method="dipo", max_steps=3, queue_batches=2,
                           per_device_train_batch_size=16)
    trainer.train()
    core = DiPO(DiPOConfig(queue_batches=2))
    for step in (1, 2, 3):
        rec = read_rollouts(tmp_path, step)
        assert rec["round"].max() >= 1  # a refill round happened
        core.queue.push(rec["logppl"].to_numpy(), rec["reward"].to_numpy() >= 1.0)
    engine = np.c_[trainer.dipo.queue.logppl.round(5), trainer.dipo.queue.correct]
    expected = np.c_[core.queue.logppl.round(5), core.queue.correct]
    np.testing.assert_array_equal(engine[np.lexsort(engine.T[::-1])], expected[np.lexsort(expected.T[::-1])])
    last = [m for m in read_metrics(tmp_path) if "loss" in m][-1]  # per-step metrics: the step's whole queue batch
    assert last["dipo/queue_size"] == len(trainer.dipo.queue)
    fired = read_rollouts(tmp_path, 3).groupby(["round", "group_id"])["fired"].first()
    assert last["dipo/fired_hard"] + last["dipo/fired_easy"] == fired.sum()  # summed over the step's rounds


def test_vllm_server_with_raw_logprobs_or_a_cpu_trainer_is_a_config_error(monkeypatch):
    """Checked before TRL connects (a real server: tests/vllm_engine/test_vllm_server.py)."""
    import trl.generation.vllm_client as vllm_client

    from dipo.engines.trl import DiPOConfig
    from dipo.engines.trl.config import check_vllm_server, check_vllm_server_logprobs

    check_vllm_server_logprobs("processed_logprobs")
    for mode in ("raw_logprobs", "raw_logits", None):
        with pytest.raises(ValueError, match="--logprobs-mode processed_logprobs"):
            check_vllm_server_logprobs(mode)

    seen = {}

    class FakeClient:
        def __init__(self, base_url, connection_timeout):
            seen.update(url=base_url, timeout=connection_timeout)

        def get_server_info(self):
            return {"model_config": {"logprobs_mode": seen["mode"]}}

    monkeypatch.setattr(vllm_client, "VLLMClient", FakeClient)
    args = DiPOConfig(output_dir="unused", use_vllm=True, vllm_mode="server", vllm_server_port=8123,
                      vllm_server_timeout=5, use_cpu=True, report_to=[])
    seen["mode"] = "raw_logprobs"
    with pytest.raises(ValueError, match="raw_logprobs"):
        check_vllm_server(args)
    assert seen["url"].endswith(":8123") and seen["timeout"] == 5
    seen["mode"] = "processed_logprobs"
    with pytest.raises(ValueError, match="needs a CUDA trainer"):
        check_vllm_server(args)


def test_cde_bonus_ranks_an_all_wrong_group_by_perplexity(tiny_model_dir, tmp_path):
    """CDE on +-1 rewards: wrong answers get the bonus too, so inside an all-wrong group the higher-PPL samples
    get the higher training reward and a positive advantage (CDE keeps its signal in verifier-flat groups)."""
    trainer = make_trainer(tiny_model_dir, tmp_path, reward=accuracy, method="cde", max_steps=2, dynamic_sampling=False,
                           overlong_shaping=False, cde_weight=0.5, cde_kappa=1.0, cde_a=0.01,
                           cde_weight_schedule="staircase", cde_decay_fraction=0.5)
    trainer.train()
    rec = read_rollouts(tmp_path, 1)
    np.testing.assert_allclose(rec["shaped_reward"], 0.5 * 0.5 * 0.01 * rec["logppl"], rtol=1e-5)
    for _, group in rec.groupby("group_id"):
        top = group["logppl"].idxmax()
        assert group.loc[top, "advantage"] > 0 and group["advantage"].abs().max() > 0
    weights = [m["cde/weight"] for m in read_metrics(tmp_path) if "cde/weight" in m]
    assert weights == [0.5, 0.0]  # staircase: full weight for the first half of training, then none
    assert (read_rollouts(tmp_path, 2)["shaped_reward"] == 0).all()


# -- checkpoints (issue #14): written atomically, resumed exactly or refused -------------------------

def test_a_save_killed_midway_leaves_the_previous_checkpoint_complete(tiny_model_dir, tmp_path, monkeypatch):
    import dipo.engines.trl.trainer as trainer_module

    trainer = make_trainer(tiny_model_dir, tmp_path, method="dipo", max_steps=2, save_strategy="steps",
                           save_steps=1, save_total_limit=1)
    real_save_state, calls = trainer_module.save_state, []

    def dies_on_second_save(path, dipo, **extras):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed during the save")
        real_save_state(path, dipo, **extras)

    monkeypatch.setattr(trainer_module, "save_state", dies_on_second_save)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-1"]  # not rotated away
    assert (tmp_path / "checkpoint-1" / "dipo_state.pt").is_file()
    assert ".staging-checkpoint-2" in calls[1].parts[-3]  # the half-written one never got its public name


def test_checkpoints_are_published_whole_and_rotated(tiny_model_dir, tmp_path):
    make_trainer(tiny_model_dir, tmp_path, method="dipo", max_steps=3, save_strategy="steps", save_steps=1,
                 save_total_limit=2).train()
    assert sorted(p.name for p in tmp_path.iterdir() if "checkpoint" in p.name) == ["checkpoint-2", "checkpoint-3"]
    for name in ("dipo_state.pt", "trainer_state.json", "optimizer.pt", "scheduler.pt", "model.safetensors"):
        assert (tmp_path / "checkpoint-3" / name).is_file(), name


@pytest.mark.parametrize("damage", ["dipo_state.pt", "empty dipo_state.pt", "optimizer.pt", "rng_state.pth"])
def test_resume_from_an_incomplete_checkpoint_is_refused_in_one_line(tiny_model_dir, tmp_path, damage):
    make_trainer(tiny_model_dir, tmp_path, method="dipo", max_steps=1, save_strategy="steps", save_steps=1).train()
    target = tmp_path / "checkpoint-1" / damage.split()[-1]
    if damage.startswith("empty"):
        target.write_bytes(b"")
    else:
        target.unlink()
    resumed = make_trainer(tiny_model_dir, tmp_path, method="dipo", max_steps=2)
    with pytest.raises(ValueError, match=rf"checkpoint-1: cannot resume exactly, missing {damage.split()[-1]}"):
        resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-1"))
    accepted = make_trainer(tiny_model_dir, tmp_path, method="dipo", max_steps=2, allow_inexact_resume=True)
    accepted.train(resume_from_checkpoint=str(tmp_path / "checkpoint-1"))
    assert accepted.state.global_step == 2


def test_a_foreign_dipo_state_file_is_one_clear_error(tiny_model_dir, tmp_path):
    make_trainer(tiny_model_dir, tmp_path, method="dipo", max_steps=1, save_strategy="steps", save_steps=1).train()
    (tmp_path / "checkpoint-1" / "dipo_state.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"dipo_state.pt: cannot restore the DiPO state"):
        make_trainer(tiny_model_dir, tmp_path, method="dipo", max_steps=2).train(
            resume_from_checkpoint=str(tmp_path / "checkpoint-1"))


def test_heldout_accuracy_counts_the_verifier_only(tiny_model_dir, tmp_path):
    from trl_helpers import tiny_dataset

    trainer = make_trainer(tiny_model_dir, tmp_path, reward=[accuracy, format_ok], method="dipo", max_steps=1,
                           dynamic_sampling=False, heldout=tiny_dataset(2), heldout_eval_steps=1, heldout_k=2)
    trainer.train()
    evals = [m for m in read_metrics(tmp_path) if "eval/accuracy" in m]
    assert [m["eval/accuracy"] for m in evals] == [0.0, 0.0]  # format 1 + accuracy 0 is wrong


def test_an_infinite_reward_from_an_unguarded_reward_model_does_not_stop_the_run(tiny_model_dir, tmp_path, caplog):
    trainer = make_trainer(tiny_model_dir, tmp_path, method="dipo", max_steps=1, dynamic_sampling=False)
    real = trainer._calculate_rewards

    def with_inf(*args, **kwargs):  # what a reward model (nn.Module, not wrapped by the guard) could return
        out = real(*args, **kwargs)
        out[0, 0] = float("inf")
        trainer._gathered_rewards = out
        return out

    trainer._calculate_rewards = with_inf
    with caplog.at_level("WARNING"):
        trainer.train()
    assert read_rollouts(tmp_path, 1)["reward"].iloc[0] == 0.0 and "1 infinite reward(s)" in caplog.text
