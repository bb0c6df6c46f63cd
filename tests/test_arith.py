"""The `arith` task (small-number addition for real small LMs) and its `final_number` verifier."""

from __future__ import annotations

import pytest

from dipo.data.arith import ARITH_INSTRUCTION, make_arith_tasks
from dipo.rewards.final_number import final_number_reward


def test_arith_rows_are_graded_disjoint_and_deterministic():
    train = make_arith_tasks(40, seed=0, levels=(1, 2, 3, 4))
    test = make_arith_tasks(20, seed=0, levels=(1, 2, 3, 4), split="test")
    assert train == make_arith_tasks(40, seed=0, levels=(1, 2, 3, 4))
    assert not {r["prompt"][0]["content"] for r in train} & {r["prompt"][0]["content"] for r in test}
    for row in train:
        question = row["prompt"][0]["content"]
        assert question.endswith(ARITH_INSTRUCTION) and row["prompt"][0]["role"] == "user"
        terms = [int(t) for t in question.removeprefix("What is ").split("?")[0].split(" + ")]
        assert str(sum(terms)) == row["answer"]
        assert len(terms) == (3 if row["difficulty"] == 4 else 2)
    assert [r["difficulty"] for r in train[:4]] == [1, 2, 3, 4]


def test_arith_refuses_impossible_requests():
    with pytest.raises(ValueError, match="only .* distinct train questions"):
        make_arith_tasks(500, levels=(1,))  # 81 one-digit sums, about 3/4 of them train
    with pytest.raises(ValueError, match="levels from"):
        make_arith_tasks(5, levels=(7,))


@pytest.mark.parametrize(("completion", "gold", "reward"), [
    ("12", "12", 1.0),
    ("7 + 5 = 12", "12", 1.0),
    ("The answer is 1,024.", "1024", 1.0),
    ([{"role": "assistant", "content": "It is 9."}], "9", 1.0),
    ("12.0", "12", 1.0),
    ("13", "12", 0.0),
    ("twelve", "12", 0.0),
    ("", "12", 0.0),
    ("12 or maybe 13", "12", 0.0),  # the last number counts
    ("-3", "-3", 1.0),
    (None, "3", 0.0),
])
def test_final_number_reward(completion, gold, reward):
    assert final_number_reward([completion], answer=[gold]) == [reward]


def test_final_number_reward_is_bounded_and_checks_lengths():
    assert final_number_reward(["1" * 100_000 + " 5"], answer="5") == [1.0]
    with pytest.raises(ValueError, match="2 gold answers for 1 completions"):
        final_number_reward(["1"], answer=["1", "2"])
