"""PSD validity: an exact permutation test, calibrated at its nominal confidence."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dipo.core import best_threshold, separation_p_value, split_perplexity_space


def _valid_rate(n: int, replicates: int, seed: int, shift: float = 0.0, p_correct: float = 0.5) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(replicates):
        correct = rng.random(n) < p_correct
        logppl = rng.standard_normal(n) + np.where(correct, 0.0, shift)
        hits += split_perplexity_space(logppl, correct, 0.95).valid
    return hits / replicates


@pytest.mark.parametrize("n", [4, 7, 10])
def test_p_value_is_the_exact_permutation_distribution(n):
    # enumerate every arrangement of k correct labels over n distinct log-PPLs
    logppl = np.arange(n, dtype=float)
    for k in range(n + 1):
        errors = []
        for pos in itertools.combinations(range(n), k):
            correct = np.zeros(n, dtype=bool)
            correct[list(pos)] = True
            errors.append(round(best_threshold(logppl, correct)[1] * n))
        errors = np.array(errors)
        for e in range(min(k, n - k)):
            assert separation_p_value(n, k, e) == pytest.approx(np.mean(errors <= e), rel=1e-12)
        assert separation_p_value(n, k, min(k, n - k)) == 1.0


def test_size_is_close_to_one_minus_confidence_on_ppl_independent_labels():
    rate = _valid_rate(n=1024, replicates=2000, seed=11)
    assert 0.03 <= rate <= 0.07, rate


def test_power_at_a_small_separation():
    # half right, wrong answers 0.3 sigma higher in log-PPL: the cross-fitted Wilson test found 65%
    assert _valid_rate(n=1024, replicates=200, seed=12, shift=0.3) >= 0.9


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0]) | st.floats(-2, 2), st.booleans()),
                min_size=1, max_size=40),
       st.sampled_from([0.5, 0.8, 0.95]))
def test_valid_split_holds_both_judgments_in_sample(samples, confidence):
    logppl = np.array([s[0] for s in samples])
    correct = np.array([s[1] for s in samples])
    split = split_perplexity_space(logppl, correct, confidence)
    n_correct = int(correct.sum())
    n_errors = (split.n_low - split.correct_low) + (n_correct - split.correct_low)
    assert n_errors == round(split.error_rate * split.n)
    assert split.valid == (split.p_value <= 1 - confidence)
    if split.valid:
        assert split.correct_low > split.n_low / 2 and split.wrong_high > split.n_high / 2
    presorted = split_perplexity_space(np.sort(logppl, kind="stable"), correct[np.argsort(logppl, kind="stable")],
                                       confidence, presorted=True)
    assert presorted == split


def test_presorted_input_is_checked():
    with pytest.raises(ValueError, match="not ascending"):
        split_perplexity_space([0.2, 0.1], [True, False], presorted=True)


def test_p_value_edge_cases():
    assert separation_p_value(0, 0, 0) == 1.0
    assert separation_p_value(10, 0, 0) == 1.0      # no correct label: nothing to separate
    assert separation_p_value(10, 5, 0) == pytest.approx(1 / math.comb(10, 5))
