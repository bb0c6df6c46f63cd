"""verl engine keeps DiPO's contract (issue #10): Eq. 10 under an overlong-shaped score, and the PPL queue
sees every finished group of a step, kept or evicted by the DAPO filter, as one queue batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("verl.protocol")  # not bare "verl": tests/verl itself would satisfy that
pytestmark = pytest.mark.verl

from test_verl_trainer import FILTER_ON, GROUPS, bare_trainer, config, fake_tq  # noqa: E402,F401,F811
from verl.trainer.ppo.ray_trainer import compute_advantage  # noqa: E402
from verl_batches import PRIOR_CORRECT, PRIOR_LOGPPL, apply_dipo, make_batch, primed_dipo, trajectory_rows  # noqa: E402

from dipo.core import DiPO, DiPOConfig  # noqa: E402

ALPHA = 0.1


def test_overlong_shaped_score_does_not_leak_into_a_fired_hard_group():
    """An all-wrong, confidently wrong group whose max-PPL sample is also overlong (score -0.05): verl's GRPO
    blows the penalty up to -1.5; after DiPO the group's advantage is exactly alpha * A(R_r) (+0.15 there)."""
    groups = [("normal", [1.0, 0.0, 1.0, 0.0], [0.3, 1.5, 0.4, 1.6]),
              ("hard_low", [0.0, -0.05, 0.0, 0.0], [0.3, 0.5, 0.35, 0.4])]
    data = compute_advantage(make_batch(groups), adv_estimator="grpo", norm_adv_by_std_in_grpo=True, config=None)
    mask = data.batch["response_mask"]
    before = data.batch["advantages"].clone()
    verifier = np.array([1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert before[5][mask[5].bool()][0] < -1.0  # verl's A(R) from the shaped score
    result = apply_dipo(data, primed_dipo(alpha=ALPHA), verifier_rewards=verifier)
    after = data.batch["advantages"]
    assert result.step.realloc.fired.tolist() == [False, True] and result.flat.tolist() == [False] * 4 + [True] * 4
    expected = ALPHA * torch.tensor([-0.5, 1.5, -0.5, -0.5])  # the max-PPL (overlong) sample rewarded
    torch.testing.assert_close(after[4:], expected.unsqueeze(-1) * mask[4:], atol=1e-5, rtol=0)
    assert torch.equal(after[:4], before[:4])  # verifier-varying group: verl's A(R) bit for bit
    # the ablation keeps the shaped A(R): the chosen sample's advantage stays negative
    ablation = compute_advantage(make_batch(groups), adv_estimator="grpo", norm_adv_by_std_in_grpo=True, config=None)
    apply_dipo(ablation, primed_dipo(alpha=ALPHA, shaped_flat_groups=True), verifier_rewards=verifier)
    assert ablation.batch["advantages"][5][mask[5].bool()][0] < -1.0


def test_queue_sees_evicted_groups_in_the_same_queue_batch_as_the_step(fake_tq):  # noqa: F811
    """Step 1 samples GROUPS[:4]; the DiPO-aware filter evicts 'hardhigh' (BRR would not fire there) and the
    advantage pass sees the three others. The trainer's queue equals the core's fed all 16 rows as one batch."""
    trainer = bare_trainer(config(FILTER_ON))
    trainer.dipo.queue.push(PRIOR_LOGPPL, PRIOR_CORRECT)
    buffer = trainer.replay_buffer = trainer._build_replay_buffer()
    keys, rows, tags = trajectory_rows(GROUPS[:4])
    fake_tq.add("train", keys, rows, tags)
    buffer.partitions["train"] = {key: {} for key in keys}
    buffer.finished_keys["train"] = {g[0] for g in GROUPS[:4]}
    reasons = buffer._terminal_eviction_reasons(1, "train")
    assert reasons[1] == {"hardhigh"}
    buffer._evict_terminal_groups(1, "train", reasons)
    kept = [k for k in keys if not k.startswith("hardhigh")]
    batch = fake_tq.add("train", kept, [r for k, r in zip(keys, rows) if k in kept],
                        [t for k, t in zip(keys, tags) if k in kept])
    metrics: dict = {}
    trainer._compute_advantage(batch, metrics)
    assert metrics["dipo/queued_unkept"] == 4 and metrics["dipo/queue_size"] == len(PRIOR_LOGPPL) + 16

    core = DiPO(DiPOConfig())
    core.queue.push(PRIOR_LOGPPL, PRIOR_CORRECT)
    core.queue.push(np.concatenate([g[2] for g in GROUPS[:4]]), np.concatenate([g[1] for g in GROUPS[:4]]) > 0)
    engine = np.c_[trainer.dipo.queue.logppl.round(5), trainer.dipo.queue.correct]  # float32 log-PPLs
    expected = np.c_[core.queue.logppl.round(5), core.queue.correct]
    np.testing.assert_array_equal(engine[np.lexsort(engine.T[::-1])], expected[np.lexsort(expected.T[::-1])])
    assert len(trainer.dipo.queue._batches) == 2  # the prior batch + this step, not three


def test_dynamic_sampling_must_judge_groups_by_the_verifier():
    from dipo.engines.verl.config import validate_verl_config

    validate_verl_config(config(FILTER_ON), dipo_aware_filter=True)
    with pytest.raises(ValueError, match=r"algorithm.filter_groups.metric='score' but dipo.correct_key='acc'"):
        validate_verl_config(config(["algorithm.filter_groups.enable=true", "algorithm.filter_groups.metric=score"]),
                             dipo_aware_filter=True)


def test_filter_and_adapter_score_the_final_output_of_each_session(fake_tq):  # noqa: F811
    """An agent loop writes two outputs for session 0 of group 'hardlow' (keys ..._0_0 and ..._0_1); verl's GRPO and
    the adapter score the last one, and so must the filter's judgement and the queue."""
    trainer = bare_trainer(config(FILTER_ON))
    buffer = trainer._build_replay_buffer()
    keys, rows, tags = trajectory_rows(GROUPS[1:2])
    extra = dict(rows[0], rollout_log_probs=torch.full((3,), -9.0), response_mask=torch.ones(3, dtype=torch.int64))
    keys, rows, tags = ["hardlow_0_1", *keys], [extra, *rows], [dict(tags[0]), *tags]
    fake_tq.add("train", keys, rows, tags)
    buffer.partitions["train"] = {key: {} for key in keys}
    group_ids, logppl, correct = buffer._final_outputs("train", {"hardlow"}, with_correct=True)
    assert list(group_ids) == ["hardlow"] * 4 and not correct.any()
    np.testing.assert_allclose(sorted(logppl), [0.35, 0.4, 0.5, 9.0], atol=1e-6)  # session 0: its last output (9.0)


def test_resume_without_the_dipo_state_is_refused_unless_accepted(tmp_path):
    from test_verl_trainer import checkpointable

    from dipo.engines.kit import STATE_FILE

    overrides = [f"trainer.default_local_dir={tmp_path}", "trainer.resume_mode=auto"]
    trainer = checkpointable(config(overrides))
    trainer.dipo.queue.push(PRIOR_LOGPPL, PRIOR_CORRECT)
    trainer.global_steps = 3
    trainer._save_checkpoint()
    (tmp_path / "global_step_3" / STATE_FILE).unlink()
    with pytest.raises(ValueError, match=r"dipo_state.pt not found, so the PPL queue cannot be restored"):
        checkpointable(config(overrides))._load_checkpoint()
    accepted = checkpointable(config([*overrides, "dipo.allow_inexact_resume=true"]))
    accepted._load_checkpoint()
    assert accepted.global_steps == 3 and len(accepted.dipo.queue) == 0


def test_a_non_finite_verifier_value_is_r_min_not_a_dead_run(fake_tq):  # noqa: F811
    trainer = bare_trainer(config())
    keys, rows, tags = trajectory_rows(GROUPS[:2])
    rows[0]["extra_fields"] = {"reward_extra_info": {"acc": float("nan")}}
    metrics: dict = {}
    trainer._compute_advantage(fake_tq.add("train", keys, rows, tags), metrics)
    assert metrics["dipo/accuracy"] == pytest.approx(1 / 8)  # row 0 (right by its score) counted wrong
