"""The competence / perplexity-regime probe: what BRR would fire on, and the group mix of a random model."""

from __future__ import annotations

import numpy as np
import pytest

from dipo.testbed.competence import group_kind_mix, perplexity_regime


def test_regime_counts_the_groups_brr_would_fire_on():
    rng = np.random.default_rng(0)
    # 40 normal groups that make a clean split: correct samples at log-PPL ~0.1, wrong ones at ~1.0
    lp = [np.r_[rng.uniform(0.05, 0.15, 4), rng.uniform(0.9, 1.1, 4)] for _ in range(40)]
    ok = [np.r_[np.ones(4), np.zeros(4)] for _ in range(40)]
    # 2 confidently wrong hard groups (low PPL), 2 uncertain hard groups, 1 uncertain easy group
    lp += [rng.uniform(0.05, 0.15, 8)] * 2 + [rng.uniform(0.9, 1.1, 8)] * 2 + [rng.uniform(0.9, 1.1, 8)]
    ok += [np.zeros(8)] * 4 + [np.ones(8)]
    logppl, correct = np.concatenate(lp), np.concatenate(ok).astype(bool)
    groups = np.repeat(np.arange(len(lp)), 8)
    regime = perplexity_regime(logppl, correct, groups)
    assert regime["split_valid"] and 0.15 < regime["threshold"] < 0.9
    assert regime["brr_hard_fired"] == 0.5 and regime["brr_easy_fired"] == 1.0
    assert regime["logppl_correct_median"] < 0.2 < 0.9 < regime["logppl_wrong_median"]
    assert regime["wrong_below_threshold"] == pytest.approx(16 / 192)  # the two confidently wrong groups' samples


def test_group_kind_mix_on_a_random_model(tiny_model_dir):
    """An untrained model is wrong everywhere: all groups hard, and no valid split to act on."""
    from dipo.testbed.tasks import RL_LEVELS

    mix = group_kind_mix(tiny_model_dir, n_prompts=6, group_size=2, max_new_tokens=8)
    assert mix["frac_hard"] == 1.0 and mix["accuracy"] == 0.0
    assert tuple(sorted(mix["accuracy_by_level"])) == RL_LEVELS  # by default the levels `dipo demo` trains on
    assert not mix["regime"]["split_valid"] and mix["regime"]["brr_hard_fired"] == 0.0
