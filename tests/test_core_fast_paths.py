"""The core's fast paths give the same results, bit for bit, as the straightforward ones they replaced.

Each reference below is the former implementation (sort everything, lexsort, np.unique), kept here
as an oracle for the O(n) versions in the core (sorted queue, per-group argmax, run-length groups).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dipo.core import DiPO, DiPOConfig, reallocate_rewards, split_perplexity_space
from dipo.core._util import group_index
from dipo.core.psd import _best_threshold_sorted, _middle_of_cuts


def reference_best_threshold_sorted(v, correct_sorted):
    """The former fit: int64 errors, realisable cuts by index arrays (the tie-break rule is shared)."""
    c = correct_sorted.astype(np.int64)
    n = v.size
    correct_before = np.concatenate(([0], np.cumsum(c)))
    errors = (np.arange(n + 1) - correct_before) + (correct_before[-1] - correct_before)
    realisable = np.ones(n + 1, dtype=bool)
    realisable[1:n] = v[1:] > v[:-1]
    errors = np.where(realisable, errors, np.iinfo(np.int64).max)
    best = errors.min()
    optimal = np.flatnonzero(errors == best)
    rank = np.searchsorted(np.flatnonzero(realisable), optimal)
    run_starts = np.flatnonzero(np.diff(np.concatenate(([-2], rank))) != 1)
    run_ends = np.concatenate((run_starts[1:], [optimal.size])) - 1
    mid = run_starts.size // 2
    return _middle_of_cuts(v, optimal[run_starts[mid]], optimal[run_ends[mid]]), float(best) / n


def reference_group_index(ids):
    ids = np.asarray(ids).reshape(-1)
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[inverse.reshape(-1)], int(order.size)


def reference_max_ppl_sample(lp, gidx, n_groups):
    """First index of the max finite log-PPL of each group, by a 3-key lexsort."""
    lp_or_neg = np.where(np.isfinite(lp), lp, -np.inf)
    order = np.lexsort((np.arange(lp.size), -lp_or_neg, gidx))
    first_of_group = np.ones(order.size, dtype=bool)
    first_of_group[1:] = gidx[order][1:] != gidx[order][:-1]
    argmax = np.full(n_groups, -1, dtype=np.int64)
    argmax[gidx[order][first_of_group]] = order[first_of_group]
    return argmax


tied_values = st.sampled_from([0.0, 0.5, 1.0, 2.0]) | st.floats(-3, 3)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(tied_values, st.booleans()), min_size=1, max_size=60))
def test_threshold_matches_reference(samples):
    lp = np.sort(np.array([s[0] for s in samples]), kind="stable")
    ok = np.array([s[1] for s in samples])
    assert _best_threshold_sorted(lp, ok) == reference_best_threshold_sorted(lp, ok)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 6), max_size=40) | st.lists(st.sampled_from(["a_1", "b", "c_2_x"]), max_size=40),
       st.booleans())
def test_group_index_matches_reference(ids, contiguous):
    ids = np.array(sorted(ids) if contiguous else ids)
    got, ref = group_index(ids), reference_group_index(ids)
    assert got[1] == ref[1] and np.array_equal(got[0], ref[0])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from([0.0, 1.0]), tied_values | st.just(math.nan)),
                min_size=1, max_size=40))
def test_max_ppl_sample_matches_lexsort(samples):
    ids = np.array([s[0] for s in samples])
    rewards = torch.tensor([s[1] for s in samples])
    lp = np.array([s[2] for s in samples])
    out = reallocate_rewards(rewards, lp, ids, None, use_psd=False)
    argmax = reference_max_ppl_sample(lp, out.group_index, out.group_kind.size)
    np.testing.assert_array_equal(out.chosen, np.where(out.fired, argmax, -1))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3), st.lists(st.tuples(st.integers(0, 30), st.booleans()), min_size=1, max_size=8),
       st.integers(0, 2**16))
def test_step_split_equals_a_fresh_sort_of_the_queue(queue_batches, rounds, seed):
    rng = np.random.default_rng(seed)
    dipo = DiPO(DiPOConfig(queue_batches=queue_batches))
    for size, new_batch in rounds:
        ids = np.repeat(np.arange(size), 4)
        rewards = torch.tensor((rng.random(ids.size) < 0.5).astype(np.float32))
        logppl = torch.tensor(np.round(rng.normal(size=ids.size), 1))  # rounded: many ties
        out = dipo.step(rewards, logppl, ids, new_batch=new_batch)
        fresh = split_perplexity_space(dipo.queue.logppl, dipo.queue.correct, dipo.config.confidence)
        assert out.split == fresh or (math.isnan(fresh.threshold) and math.isnan(out.split.threshold))
