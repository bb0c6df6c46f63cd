"""Synthetic testbed tasks: deterministic, disjoint splits, graded levels, targets the real verifiers accept."""

from __future__ import annotations

import json
import re

import pytest

from dipo.rewards import extract_boxed, tool_call_reward
from dipo.testbed.tasks import LEVELS, make_math_tasks, make_tool_tasks


@pytest.mark.parametrize("make", [make_math_tasks, make_tool_tasks])
def test_deterministic_disjoint_and_levels_in_equal_shares(make):
    a, b = make(60, seed=3), make(60, seed=3)
    assert a == b
    assert make(60, seed=4) != a
    test = make(30, seed=3, split="test")
    assert not {r["prompt"] for r in a} & {r["prompt"] for r in test}
    assert len({r["prompt"] for r in a}) == 60
    assert [sum(r["difficulty"] == lvl for r in a) for lvl in LEVELS] == [12] * 5
    assert all(r["prompt"].startswith("<|im_start|>user\n") and r["prompt"].endswith("<|im_start|>assistant\n")
               for r in a)


def test_math_targets_are_correct_chains_of_thought():
    rows = make_math_tasks(50, seed=0)
    for row in rows:
        steps = re.findall(r"(\d+)([-+*])(\d+)=(\d+)\.", row["completion"])
        # every step's arithmetic holds, each step starts from the previous result
        prev = None
        for x, op, k, n in steps:
            x, k, n = int(x), int(k), int(n)
            assert {"+": x + k, "-": x - k, "*": x * k}[op] == n >= 0
            assert prev is None or x == prev
            prev = n
        assert extract_boxed(row["completion"]) == row["answer"] == str(prev)
        assert len(steps) == {1: 1, 2: 2, 3: 2, 4: 3, 5: 4}[row["difficulty"]]
    # the phrasing varies between problems (so a correct answer has a perplexity of its own) ...
    styles = {re.sub(r"\d+", "N", row["completion"]) for row in rows if row["difficulty"] == 1}
    assert len(styles) >= 6
    # ... but is a function of the problem text: the same problem always gets the same target
    assert [r["completion"] for r in make_math_tasks(50, seed=0)] == [r["completion"] for r in rows]


def test_tool_targets_pass_the_function_call_checker():
    rows = make_tool_tasks(40, seed=0)
    assert tool_call_reward([r["completion"] for r in rows], answer=[r["answer"] for r in rows]) == [1.0] * 40
    wrong = [r["completion"].replace('"arguments": {', '"arguments": {"bogus": 1, ') for r in rows]
    assert tool_call_reward(wrong, answer=[r["answer"] for r in rows]) == [0.0] * 40
    for row in rows:
        call = json.loads(row["answer"])
        offered = [t["name"] for t in json.loads(row["tools"])]
        assert call["name"] in offered and len(offered) == {1: 1, 2: 1, 3: 2, 4: 3, 5: 3}[row["difficulty"]]


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="levels"):
        make_math_tasks(3, levels=(0,))
    with pytest.raises(ValueError, match="split"):
        make_tool_tasks(3, split="dev")
    with pytest.raises(ValueError, match="cannot draw"):
        make_tool_tasks(500, levels=(1,), split="test")
    with pytest.raises(ValueError, match="twists"):
        make_tool_tasks(3, levels=(1, 6))


def test_question_twists_ask_for_a_given_number_and_are_opt_in():
    from dipo.testbed.tasks import TWIST_LEVEL

    assert all(r["difficulty"] != TWIST_LEVEL for r in make_math_tasks(60))
    rows = make_math_tasks(30, levels=(TWIST_LEVEL,))
    for row in rows:
        question = row["prompt"].split("\n")[1]
        story, ask = question.rsplit(". ", 1)
        assert ask.startswith("How many") and ("did" in ask) and f" {row['answer']}" in story
        assert extract_boxed(row["completion"]) == row["answer"]
    # the same story's usual question ("have now") would have a different answer in most rows
    assert sum(" have now" in r["prompt"] for r in rows) == 0


def test_a_guess_boxes_the_storys_last_number_without_working():
    from dipo.rewards import math_reward
    from dipo.testbed.tasks import guess_completion

    rows = make_math_tasks(60, seed=0, levels=(2, 3))
    guesses = [guess_completion(r["prompt"]) for r in rows]
    assert all("=" not in g and extract_boxed(g) == re.findall(r"[0-9]+", r["prompt"])[-1] for g, r in zip(guesses, rows))
    rewards = math_reward(prompts=[r["prompt"] for r in rows], completions=guesses, answer=[r["answer"] for r in rows])
    assert sum(rewards) == sum(extract_boxed(g) == r["answer"] for g, r in zip(guesses, rows)) <= 15  # by coincidence
    assert len({g.replace(extract_boxed(g), "k") for g in guesses}) > 1  # written in the varied answer styles
