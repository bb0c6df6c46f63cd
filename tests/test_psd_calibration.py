"""PSD validity: an exact permutation test, calibrated at its nominal confidence."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dipo.core import best_threshold, separation_p_value, split_perplexity_space
from dipo.core.psd import _log_binomial_half_cdf


def _valid_rate(n: int, replicates: int, seed: int, shift: float = 0.0, p_correct: float = 0.5) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(replicates):
        correct = rng.random(n) < p_correct
        logppl = rng.standard_normal(n) + np.where(correct, 0.0, shift)
        hits += split_perplexity_space(logppl, correct, 0.95).valid
    return hits / replicates


@pytest.mark.parametrize("n", [1, 2, 5, 8, 11])
def test_p_value_is_exact_under_coin_flip_labels(n):
    # every label sequence over n distinct log-PPLs is equally likely under fair coin flips
    logppl = np.arange(n, dtype=float)
    saved, cases = [], []
    for bits in itertools.product([False, True], repeat=n):
        correct = np.array(bits)
        k = int(correct.sum())
        errors = round(best_threshold(logppl, correct)[1] * n)
        saved.append(min(k, n - k) - errors)
        cases.append((k, errors))
    saved = np.array(saved)
    for (k, errors), d in zip(cases, saved):
        assert separation_p_value(n, k, errors) == pytest.approx(np.mean(saved >= d), rel=1e-9)


def test_binomial_tail_matches_exact_sums():
    for n in (3, 40, 999, 5000):
        prefix = list(itertools.accumulate(math.comb(n, i) for i in range(n + 1)))  # exact integers
        for k in sorted({0, 1, n // 3, n // 2 - 3, n // 2, n - 2, n}):
            exact = prefix[k] / 2**n if k >= 0 else 0.0
            assert math.exp(_log_binomial_half_cdf(n, k)) == pytest.approx(exact, rel=1e-10, abs=1e-300)


def test_size_is_close_to_one_minus_confidence_on_ppl_independent_labels():
    rate = _valid_rate(n=1024, replicates=2000, seed=11)
    assert 0.03 <= rate <= 0.07, rate


def test_power_at_a_small_separation():
    # half right, wrong answers 0.3 sigma higher in log-PPL: the cross-fitted Wilson test found 65%
    assert _valid_rate(n=1024, replicates=200, seed=12, shift=0.3) >= 0.9


def test_dependence_alone_does_not_make_a_split_valid():
    # below the median log-PPL 45% right, above it always wrong: correctness depends on PPL, but the
    # low-PPL space is mostly wrong (Eq. 6 fails). A permutation test of independence accepts ~57%.
    rng = np.random.default_rng(13)
    valid = 0
    for _ in range(200):
        logppl = rng.standard_normal(1024)
        valid += split_perplexity_space(logppl, (logppl < 0) & (rng.random(1024) < 0.45)).valid
    assert valid / 200 <= 0.03


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
    assert separation_p_value(10, 5, 5) == 1.0      # no better than one class everywhere
    # saving 5 errors of 10 takes 5 right answers below 5 wrong ones: 1 label sequence in 2^10
    assert separation_p_value(10, 5, 0) == pytest.approx(1 / 2**10)
