"""PPL queue, DiPO state round-trips, configs, shaping and dynamic sampling."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dipo.core import (
    DiPO,
    DiPOConfig,
    PerplexityQueue,
    cde_weight,
    dynamic_sampling_keep,
    overlong_penalty,
    perplexity_bonus,
    reallocate_rewards,
)


@settings(max_examples=50, deadline=None)
@given(num_batches=st.integers(1, 4), sizes=st.lists(st.integers(0, 20), min_size=1, max_size=8))
def test_queue_keeps_last_batches_and_round_trips(num_batches, sizes):
    q = PerplexityQueue(num_batches)
    pushed = []
    for i, n in enumerate(sizes):
        lp = np.arange(n, dtype=float) + 100 * i
        ok = (np.arange(n) % 2 == 0)
        q.push(lp, ok)
        pushed.append((lp, ok))
    window = pushed[-num_batches:]
    np.testing.assert_array_equal(q.logppl, np.concatenate([w[0] for w in window]))
    np.testing.assert_array_equal(q.correct, np.concatenate([w[1] for w in window]))
    assert len(q) == sum(w[0].size for w in window)
    state = json.loads(json.dumps(q.state_dict()))  # survives JSON
    q2 = PerplexityQueue(num_batches)
    q2.load_state_dict(state)
    np.testing.assert_array_equal(q2.logppl, q.logppl)
    np.testing.assert_array_equal(q2.correct, q.correct)
    q.push([7.0], [True])
    q2.push([7.0], [True])  # the window keeps sliding identically after a resume
    np.testing.assert_array_equal(q2.logppl, q.logppl)


def test_queue_drops_nan_and_rejects_bad_input():
    q = PerplexityQueue(2)
    q.push(torch.tensor([0.1, float("nan"), 0.3]), torch.tensor([True, False, False]))
    assert len(q) == 2 and q.correct.tolist() == [True, False]
    with pytest.raises(ValueError, match="3 values but correct has 2"):
        q.push([1, 2, 3], [True, False])
    with pytest.raises(ValueError, match="num_batches"):
        PerplexityQueue(0)
    with pytest.raises(ValueError, match="queue_batches"):
        PerplexityQueue(3).load_state_dict(q.state_dict())


def test_dipo_resume_gives_identical_steps():
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(4):
        ids = np.repeat(np.arange(16), 4)
        r = (rng.random(64) < np.repeat(rng.choice([0, 0.5, 1], 16), 4)).astype(np.float32)
        batches.append((r, np.repeat(rng.normal(0, 0.3, 16), 4) + np.where(r > 0, 0.2, 0.8), ids))
    a = DiPO(DiPOConfig())
    outs = [a.step(*b) for b in batches]
    b = DiPO(DiPOConfig())
    for bt in batches[:2]:
        b.step(*bt)
    c = DiPO(DiPOConfig())
    c.load_state_dict(json.loads(json.dumps(b.state_dict())))
    resumed = [c.step(*bt) for bt in batches[2:]]
    for x, y in zip(outs[2:], resumed):
        torch.testing.assert_close(x.advantages, y.advantages)
        assert x.metrics == pytest.approx(y.metrics, nan_ok=True)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"alpha": -0.1}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"confidence": 1.0}, "confidence"),
        ({"confidence": 0.0}, "confidence"),
        ({"queue_batches": 0}, "queue_batches"),
        ({"queue_batches": 1.5}, "queue_batches"),
        ({"group_rule": "median"}, "group_rule"),
        ({"scale": "global"}, "scale"),
        ({"r_min": 1.0, "r_max": 1.0}, "r_max"),
        ({"use_psd": "yes"}, "use_psd"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"DiPOConfig\.{field}="):
        DiPOConfig(**kwargs)


def test_config_fields_have_help():
    from dataclasses import fields

    assert all(f.metadata.get("help") for f in fields(DiPOConfig))


def test_general_reward_range():
    # rewards in [-1, 1]: hard = all at -1, easy = all at +1
    rewards = np.array([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0, -1.0, 1.0])
    out = reallocate_rewards(rewards, [0.1, 0.5, 0.3, 0.2, 0.9, 0.1, 0.4, 0.4], [0, 0, 0, 1, 1, 1, 2, 2], None,
                             use_psd=False, r_min=-1.0, r_max=1.0)
    assert out.group_kind.tolist() == ["hard", "easy", "normal"]
    assert out.rewards.tolist()[:6] == [-1.0, 1.0, -1.0, 1.0, -1.0, 1.0]


def test_overlong_penalty_matches_dapo():
    pen = overlong_penalty([10, 80, 90, 100, 101, 500], max_length=100, buffer_length=20)
    assert pen.tolist() == pytest.approx([0.0, 0.0, -0.5, -1.0, -1.0, -1.0])
    with pytest.raises(ValueError, match="buffer_length"):
        overlong_penalty([1], 10, 0)


def test_perplexity_bonus_is_cdes_on_the_pm1_scale_capped_and_nan_safe():
    # 0/1 rewards map to -1/+1: the bonus min(|r|/kappa, a*logppl) = min(0.5, logppl), wrong answers included,
    # then back to the 0/1 scale (x (r_max - r_min) / 2)
    out = perplexity_bonus([1.0, 1.0, 0.0, 1.0], [0.1, 5.0, 3.0, float("nan")], weight=0.5, kappa=2.0, a=1.0)
    assert out.tolist() == pytest.approx([1.025, 1.125, 0.125, 1.0])
    low, high = perplexity_bonus([0.0, 0.0], [0.05, 0.4], weight=0.5).tolist()
    assert low < high  # a confident error is penalised more than an unsure one (CDE Theorem 3.1)
    # the same on a -1/+1 verifier, and |r| from the verifier when the training reward is shaped
    assert perplexity_bonus([-1.0, 1.0], [3.0, 0.1], 0.5, 2.0, r_min=-1.0).tolist() == pytest.approx([-0.75, 1.05])
    shaped = perplexity_bonus([0.9, 0.1], [3.0, 3.0], 0.5, 2.0, verifier_rewards=[1.0, 0.0])
    assert shaped.tolist() == pytest.approx([1.025, 0.225])


def test_cde_weight_schedules():
    assert [cde_weight(s, 100, 0.2) for s in (0, 49, 50, 99)] == [0.2, 0.2, 0.0, 0.0]  # staircase (default)
    assert cde_weight(25, 100, 0.2, "linear") == pytest.approx(0.15)
    assert cde_weight(50, 100, 0.2, "cosine") == pytest.approx(0.1)
    assert cde_weight(99, 100, 0.2, "constant") == 0.2
    with pytest.raises(ValueError, match="schedule"):
        cde_weight(0, 10, 0.1, "exp")


def test_dynamic_sampling_keep_is_dipo_aware():
    rewards = torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    ids = torch.tensor([0, 0, 1, 1, 2, 2])
    assert dynamic_sampling_keep(rewards, ids).tolist() == [False, False, False, False, True, True]
    realloc = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert dynamic_sampling_keep(rewards, ids, realloc).tolist() == [True, True, False, False, True, True]
