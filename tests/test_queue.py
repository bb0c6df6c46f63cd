"""PPL queue: queue batches spanning several dynamic-sampling rounds, and the sorted history."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dipo.core import PerplexityQueue


def test_rounds_of_one_step_form_one_queue_batch():
    q = PerplexityQueue(2)
    q.push([1.0, 2.0], [True, False])                       # step 1, round 1
    q.push([3.0], [True], new_batch=False)                  # step 1, refill round
    q.push([4.0], [False])                                  # step 2
    q.push([5.0, float("nan")], [True, True], new_batch=False)
    assert q.logppl.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0] and len(q) == 5
    q.push([6.0], [False])                                  # step 3: all of step 1 leaves at once
    assert q.logppl.tolist() == [4.0, 5.0, 6.0]
    assert q.correct.tolist() == [False, True, False]
    assert [len(b["logppl"]) for b in q.state_dict()["batches"]] == [2, 1]


def test_append_to_empty_queue_opens_a_batch():
    q = PerplexityQueue(1)
    q.push([0.5], [True], new_batch=False)
    assert q.logppl.tolist() == [0.5]
    q.push([0.7], [False])
    assert q.logppl.tolist() == [0.7]


def test_dead_arrays_method_is_gone():
    assert not hasattr(PerplexityQueue, "arrays")


values = st.sampled_from([-1.0, 0.0, 0.25, 0.5, 1.0, 2.0, float("nan")]) | st.floats(-3, 3)
rounds = st.lists(st.tuples(st.lists(st.tuples(values, st.booleans()), max_size=12), st.booleans()),
                  min_size=1, max_size=10)


@settings(max_examples=100, deadline=None)
@given(num_batches=st.integers(1, 3), pushes=rounds)
def test_sorted_history_equals_the_sorted_window(num_batches, pushes):
    q = PerplexityQueue(num_batches)
    for samples, new_batch in pushes:
        q.push([s[0] for s in samples], [s[1] for s in samples], new_batch=new_batch)
        lp, ok = q.sorted()
        order = np.argsort(q.logppl, kind="stable")
        np.testing.assert_array_equal(lp, q.logppl[order])
        # labels agree up to the order among equal log-PPLs: same count of correct up to each value
        run_ends = np.flatnonzero(np.diff(lp, append=np.inf) != 0)
        np.testing.assert_array_equal(np.cumsum(ok)[run_ends], np.cumsum(q.correct[order])[run_ends])
        assert len(q) == q.logppl.size == lp.size
    resumed = PerplexityQueue(num_batches)
    resumed.load_state_dict(json.loads(json.dumps(q.state_dict())))
    for a, b in zip((resumed.sorted()[0], resumed.logppl, resumed.correct), (lp, q.logppl, q.correct)):
        np.testing.assert_array_equal(a, b)
