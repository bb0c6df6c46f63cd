"""Properties of the DiPO core (paper Eqs. 3-10) over random batches, checked with Hypothesis."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dipo.core import (
    DiPO,
    DiPOConfig,
    best_threshold,
    dapo_token_loss,
    dynamic_sampling_keep,
    group_advantages,
    reallocate_rewards,
    sequence_logppl,
    split_perplexity_space,
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def batches(draw, max_groups=8, max_g=6, nan_prob=0.1):
    """A batch of n_groups x G samples with 0/1 rewards, a mix of easy/normal/hard groups."""
    n_groups = draw(st.integers(1, max_groups))
    g = draw(st.integers(2, max_g))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    p = rng.choice([0.0, 0.5, 1.0], size=n_groups)
    rewards = (rng.random(n_groups * g) < np.repeat(p, g)).astype(np.float32)
    # a few duplicated log-PPL values to exercise ties
    logppl = np.round(rng.normal(0.5, 0.3, n_groups * g), draw(st.sampled_from([1, 2, 6])))
    logppl[rng.random(logppl.size) < nan_prob] = np.nan
    group_ids = np.repeat(rng.permutation(100)[:n_groups], g)
    perm = rng.permutation(group_ids.size)  # groups need not be contiguous
    return rewards[perm], logppl[perm], group_ids[perm]


def _split_for(rewards, logppl, force_valid):
    split = split_perplexity_space(logppl, rewards >= 1, 0.95)
    if force_valid:  # exercise BRR regardless of how separable this random batch happens to be
        split = type(split)(**{**split.__dict__, "valid": True, "reason": ""}) if math.isfinite(split.threshold) else split
    return split


@SETTINGS
@given(batch=batches(), rule=st.sampled_from(["mean", "all", "any"]), use_psd=st.booleans(),
       hard=st.booleans(), easy=st.booleans())
def test_brr_invariants(batch, rule, use_psd, hard, easy):
    rewards, logppl, group_ids = batch
    rewards_before = rewards.copy()
    r_t = torch.tensor(rewards)
    split = _split_for(rewards, logppl, force_valid=True)
    out = reallocate_rewards(r_t, torch.tensor(logppl), group_ids, split, group_rule=rule,
                             hard_groups=hard, easy_groups=easy, use_psd=use_psd)
    # the verifier's rewards are never modified
    np.testing.assert_array_equal(rewards, rewards_before)
    assert torch.equal(r_t, torch.tensor(rewards_before))
    r_r = out.rewards.numpy()
    assert r_r.shape == rewards.shape
    a_r = group_advantages(out.rewards, group_ids).numpy()
    for g in range(out.group_kind.size):
        members = np.flatnonzero(out.group_index == g)
        kind = out.group_kind[g]
        if kind == "normal" or not out.fired[g]:
            # normal (and unfired) groups get zero reallocated reward and advantage
            assert np.all(r_r[members] == 0.0)
            assert np.allclose(a_r[members], 0.0)
            assert out.chosen[g] == -1
            continue
        assert kind in ("hard", "easy")
        assert (kind == "hard" and hard) or (kind == "easy" and easy)
        chosen = out.chosen[g]
        assert chosen in members
        others = members[members != chosen]
        # exactly one sample differs, and it is the group's max-PPL sample (never a NaN one)
        assert np.all(r_r[others] == r_r[others][0])
        assert r_r[chosen] != r_r[others][0]
        assert np.isfinite(logppl[chosen])
        assert logppl[chosen] == np.nanmax(logppl[members])
        if kind == "hard":  # maximum-PPL reward raises it
            assert r_r[chosen] == 1.0 and a_r[chosen] > 0 and np.all(a_r[others] < 0)
        else:  # maximum-PPL penalty lowers it
            assert r_r[chosen] == 0.0 and a_r[chosen] < 0 and np.all(a_r[others] > 0)
        if use_psd and rule == "mean":
            lp = logppl[members]
            mean = np.nanmean(lp)
            assert (mean < split.threshold) if kind == "hard" else (mean >= split.threshold)


@SETTINGS
@given(batch=batches())
def test_invalid_split_fires_nothing(batch):
    rewards, logppl, group_ids = batch
    split = split_perplexity_space(logppl, rewards >= 1)
    split = type(split)(**{**split.__dict__, "valid": False})
    out = reallocate_rewards(rewards, logppl, group_ids, split)
    assert not out.fired.any() and np.all(out.rewards.numpy() == 0)


@SETTINGS
@given(batch=batches(nan_prob=0.0))
def test_without_psd_every_extreme_group_fires(batch):
    rewards, logppl, group_ids = batch
    out = reallocate_rewards(rewards, logppl, group_ids, None, use_psd=False)
    extreme = np.isin(out.group_kind, ["hard", "easy"])
    np.testing.assert_array_equal(out.fired, extreme)


def test_nan_logppl_is_never_chosen_and_all_nan_group_never_fires():
    rewards = np.zeros(6, dtype=np.float32)
    logppl = np.array([np.nan, 0.1, 0.2, np.nan, np.nan, np.nan])
    out = reallocate_rewards(rewards, logppl, [0, 0, 0, 1, 1, 1], None, use_psd=False)
    assert out.fired.tolist() == [True, False]
    assert out.chosen.tolist() == [2, -1]


def _brute_force_error(logppl, correct):
    values = np.unique(logppl)
    candidates = np.concatenate(([values[0] - 1.0], (values[:-1] + values[1:]) / 2, [values[-1] + 1.0]))
    return min(np.mean(np.abs(correct.astype(int) - (logppl < t))) for t in candidates)


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=1, max_size=40))
def test_threshold_matches_brute_force(pairs):
    logppl = np.array([p[0] / 4 for p in pairs], dtype=np.float64)
    correct = np.array([p[1] for p in pairs])
    tau, err = best_threshold(logppl, correct)
    achieved = np.mean(np.abs(correct.astype(int) - (logppl < tau)))
    assert achieved == pytest.approx(err)
    assert err == pytest.approx(_brute_force_error(logppl, correct))


def test_threshold_ties_take_the_middle_of_the_optimal_interval():
    # correct at 1 and 2, wrong at 5 and 6: any tau in (2, 5] is optimal -> middle 3.5
    tau, err = best_threshold(np.array([1.0, 2.0, 5.0, 6.0]), np.array([True, True, False, False]))
    assert err == 0.0 and tau == pytest.approx(3.5)


@pytest.mark.parametrize("p_correct", [0.5, 0.3])
def test_split_is_invalid_when_labels_are_independent_of_ppl(p_correct):
    # large-sample limit: with correctness independent of PPL the split is judged valid in at most
    # ~5% of batches at 95% confidence, however hard tau* overfits (the rate itself is calibrated in
    # tests/test_psd_calibration.py); 0.12 leaves room for the noise of 100 replicates
    rng = np.random.default_rng(1234)
    valid = [
        split_perplexity_space(rng.normal(size=4000), rng.random(4000) < p_correct, 0.95).valid for _ in range(100)
    ]
    assert np.mean(valid) <= 0.12


def test_split_is_valid_when_ppl_separates_correctness():
    rng = np.random.default_rng(0)
    correct = rng.random(512) < 0.5
    logppl = np.where(correct, rng.normal(0.3, 0.1, 512), rng.normal(0.8, 0.1, 512))
    split = split_perplexity_space(logppl, correct)
    assert split.valid and 0.4 < split.threshold < 0.7 and split.error_rate < 0.05
    q = split.quadrants(logppl, correct)
    assert set(q) <= {"CL", "CH", "EL", "EH"} and (q == "CL").sum() > 200


def test_empty_queue_split():
    split = split_perplexity_space([np.nan], [True])
    assert not split.valid and math.isnan(split.threshold) and split.quadrants([0.3], [True]).tolist() == [""]


def _dapo_loss(adv, lp, old, mask):
    return dapo_token_loss(lp, old, adv, mask, 0.2, 0.28)[0]


@SETTINGS
@given(batch=batches(nan_prob=0.0), alpha=st.floats(0.0, 2.0), seed=st.integers(0, 1000))
def test_combined_advantage_loss_equals_sum_of_objectives(batch, alpha, seed):
    rewards, logppl, group_ids = batch
    rewards = torch.tensor(rewards, dtype=torch.float64)  # float64 end to end: exact equality up to 1e-9
    step = DiPO(DiPOConfig(alpha=alpha, use_psd=False)).step(rewards, logppl, group_ids)
    a_r = group_advantages(rewards, group_ids)
    a_rr = group_advantages(step.realloc.rewards, group_ids)
    combined = step.advantages
    # alpha is applied once, in the core: the term an engine adds to its own A(R) is alpha * A(R_r)
    torch.testing.assert_close(step.extra_advantages, alpha * a_rr)
    torch.testing.assert_close(combined, a_r + alpha * a_rr)
    torch.testing.assert_close(combined, step.base_advantages + step.extra_advantages, rtol=0, atol=0)
    gen = torch.Generator().manual_seed(seed)
    n, t = rewards.numel(), 7
    old = -torch.rand(n, t, generator=gen, dtype=torch.float64) * 3
    lp = old + torch.randn(n, t, generator=gen, dtype=torch.float64) * 0.5  # ratios inside and outside the clip
    mask = (torch.rand(n, t, generator=gen) > 0.2).to(torch.float64)
    lhs = _dapo_loss(combined.double(), lp, old, mask)
    rhs = _dapo_loss(a_r.double(), lp, old, mask) + alpha * _dapo_loss(a_rr.double(), lp, old, mask)
    torch.testing.assert_close(lhs, rhs, rtol=1e-9, atol=1e-9)


def test_group_advantages_match_grpo_formula():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.5, 0.0])
    ids = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])
    adv = group_advantages(rewards, ids, "group", eps=1e-4)
    g0 = rewards[:4]
    torch.testing.assert_close(adv[:4], (g0 - g0.mean()) / (g0.std() + 1e-4))
    assert torch.all(adv[4:6] == 0)
    torch.testing.assert_close(group_advantages(rewards, ids, "none")[:4], g0 - g0.mean())
    batch = group_advantages(rewards, ids, "batch")
    torch.testing.assert_close(batch[:4], (g0 - g0.mean()) / (rewards.std() + 1e-4))


def test_sequence_logppl():
    lp = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, float("nan"), 0.0], [-1.0, -1.0, -1.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 0]])
    out = sequence_logppl(lp, mask)
    assert out[0].item() == pytest.approx(1.5) and out[1].item() == pytest.approx(0.5)
    assert math.isnan(out[2].item())
    with pytest.raises(ValueError, match="must both be"):
        sequence_logppl(lp, mask[:, :2])


def test_dipo_step_changes_only_extreme_groups_through_chosen_sample():
    rng = np.random.default_rng(3)
    group_ids = np.repeat(np.arange(32), 8)
    p = np.repeat(rng.choice([0.0, 0.5, 1.0], 32), 8)
    rewards = (rng.random(256) < p).astype(np.float32)
    offset = np.repeat(rng.normal(0, 0.3, 32), 8)
    logppl = offset + np.where(rewards > 0, 0.3, 0.9) + rng.normal(0, 0.05, 256)
    dipo = DiPO(DiPOConfig(alpha=0.1))
    out = dipo.step(rewards, logppl, group_ids)
    changed = (out.advantages - out.base_advantages).abs() > 1e-9
    kinds = out.realloc.sample_kind
    assert not changed[torch.as_tensor(kinds == "normal")].any()
    assert out.split.valid and (out.realloc.fired.sum() > 0)
    rec = out.records()
    assert set(rec) >= {"group_id", "group_kind", "reward", "realloc_reward", "advantage", "logppl", "quadrant",
                        "fired", "chosen"}
    assert all(len(v) == 256 for v in rec.values())
    assert out.metrics["dipo/fired_hard"] + out.metrics["dipo/fired_easy"] == out.realloc.fired.sum()
    assert out.metrics["dipo/accuracy"] == pytest.approx(rewards.mean())
    # reallocate=False monitors (same split and metrics) but changes nothing: the GRPO/DAPO path
    monitor = DiPO(DiPOConfig(reallocate=False)).step(rewards, logppl, group_ids)
    torch.testing.assert_close(monitor.advantages, monitor.base_advantages)
    assert monitor.metrics["dipo/threshold"] == out.metrics["dipo/threshold"]


# -- Eq. 10 under reward shaping (issue #10, point 2) ------------------------------------------------

def _shaped_hard_group_batch():
    """A primed DiPO and one batch: group 0 normal, group 1 all wrong and confidently so (low PPL),
    its max-PPL sample overlong (shaped reward -0.05): BRR fires there."""
    dipo = DiPO(DiPOConfig(alpha=0.1))
    dipo.queue.push(np.r_[np.linspace(0.2, 0.6, 60), np.linspace(1.4, 1.8, 60)], np.r_[np.ones(60), np.zeros(60)])
    verifier = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    logppl = torch.tensor([0.3, 1.5, 0.4, 1.6, 0.30, 0.35, 0.5, 0.4], dtype=torch.float64)
    penalty = torch.tensor([0.0, -0.05, 0.0, 0.0, 0.0, 0.0, -0.05, 0.0], dtype=torch.float64)  # overlong
    return dipo, verifier + penalty, verifier, logppl, torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])


def test_fired_hard_group_with_an_overlong_max_ppl_sample_gets_exactly_alpha_a_rr():
    dipo, shaped, verifier, logppl, ids = _shaped_hard_group_batch()
    out = dipo.step(shaped, logppl, ids, verifier_rewards=verifier)
    assert out.realloc.fired.tolist() == [False, True] and out.realloc.chosen[1] == 6  # max-PPL = overlong one
    a_rr = group_advantages(out.realloc.rewards, ids)
    torch.testing.assert_close(out.advantages[4:], 0.1 * a_rr[4:], rtol=0, atol=1e-12)
    assert out.advantages[6] > 0  # BRR's reward is not swamped by the length penalty
    assert out.verifier_flat.tolist() == [False] * 4 + [True] * 4  # where an engine zeroes its own A(R)
    torch.testing.assert_close(out.extra_advantages, 0.1 * a_rr, rtol=0, atol=0)
    torch.testing.assert_close(out.advantages[:4], group_advantages(shaped, ids)[:4], rtol=0, atol=1e-12)
    # the ablation switch restores the shaped A(R) there: the chosen sample's advantage turns negative
    ablation = DiPO(DiPOConfig(alpha=0.1, shaped_flat_groups=True))
    ablation.queue.load_state_dict(dipo.queue.state_dict())
    old = ablation.step(shaped, logppl, ids, verifier_rewards=verifier, push=False)
    assert old.advantages[6] < -1.0
    assert not old.verifier_flat.any()


@SETTINGS
@given(batch=batches(nan_prob=0.0), alpha=st.floats(0.0, 2.0), seed=st.integers(0, 1000))
def test_combined_loss_equals_sum_of_objectives_with_shaping(batch, alpha, seed):
    """J(A(R) + alpha A(R_r)) = J_DAPO(R) + alpha J_DAPO(R_r) with an overlong penalty in R, where J_DAPO(R)
    is DAPO's loss after dynamic sampling (groups whose verifier rewards do not vary carry no advantage)."""
    verifier, logppl, group_ids = batch
    gen = torch.Generator().manual_seed(seed)
    n, t = verifier.size, 7
    shaped = torch.tensor(verifier, dtype=torch.float64) - 0.05 * (torch.rand(n, generator=gen) < 0.3).double()
    dipo = DiPO(DiPOConfig(alpha=alpha, use_psd=False))
    out = dipo.step(shaped, logppl, group_ids, verifier_rewards=torch.tensor(verifier, dtype=torch.float64))
    kept = dynamic_sampling_keep(verifier, group_ids)  # DAPO's filter on the verifier's rewards
    a_dapo = torch.where(kept, group_advantages(shaped, group_ids), torch.zeros(n, dtype=torch.float64))
    a_rr = group_advantages(out.realloc.rewards.double(), group_ids)
    old = -torch.rand(n, t, generator=gen, dtype=torch.float64) * 3
    lp = old + torch.randn(n, t, generator=gen, dtype=torch.float64) * 0.5
    mask = (torch.rand(n, t, generator=gen) > 0.2).to(torch.float64)
    lhs = _dapo_loss(out.advantages.double(), lp, old, mask)
    rhs = _dapo_loss(a_dapo, lp, old, mask) + alpha * _dapo_loss(a_rr, lp, old, mask)
    torch.testing.assert_close(lhs, rhs, rtol=1e-9, atol=1e-9)


# -- non-finite rewards (issue #14) --------------------------------------------------------------------

@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_rewards_are_refused_with_the_count(bad):
    rewards = torch.tensor([1.0, bad, 0.0, 1.0])
    with pytest.raises(ValueError, match=r"group_advantages: 1 of 4 rewards are not finite"):
        group_advantages(rewards, [0, 0, 1, 1])
    with pytest.raises(ValueError, match=r"DiPO.step: 1 of 4 rewards are not finite"):
        DiPO().step(rewards, [0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1])
    with pytest.raises(ValueError, match=r"DiPO.step: 1 of 4 verifier rewards are not finite"):
        DiPO().step([1.0, 0.0, 0.0, 1.0], [0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1], verifier_rewards=rewards)


def test_verifier_rewards_outside_the_range_are_counted_and_warned_once(caplog):
    dipo = DiPO()
    with caplog.at_level("WARNING", logger="dipo.core.step"):
        first = dipo.step([1.0, -1.0, 1.0, -1.0], [0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1])
        second = dipo.step([1.0, -1.0, 0.0, 1.0], [0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1])
    assert first.metrics["dipo/correctness_out_of_range"] == 2 and second.metrics["dipo/correctness_out_of_range"] == 1
    assert caplog.text.count("outside [r_min=0.0, r_max=1.0]") == 1
    assert first.correct.tolist() == [True, False, True, False]  # compared as they are, not remapped


@SETTINGS
@given(batch=batches(), scale=st.sampled_from(["group", "batch", "none"]))
def test_step_realloc_advantages_equal_full_group_advantages_bit_for_bit(batch, scale):
    rewards, logppl, group_ids = batch
    dipo = DiPO(DiPOConfig(use_psd=False, scale=scale))
    out = dipo.step(rewards, np.nan_to_num(logppl, nan=0.5), group_ids)
    assert torch.equal(out.realloc_advantages, group_advantages(out.realloc.rewards, group_ids, scale, 1e-4))
