"""Maths reward: boxed extraction, math-verify judging on real gold answers, hard deadlines."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dipo.rewards import completion_text, extract_boxed, math_reward, quick_verdict
from dipo.rewards.grader import MathGrader

DATA = Path(__file__).parents[1].parent / "shared" / "data" / "math"


@pytest.fixture(scope="module")
def grader():
    with MathGrader(num_workers=2, timeout=4.0) as g:
        yield g


def _golds(name: str) -> list[str]:
    with open(DATA / f"{name}.jsonl") as f:
        return [json.loads(line)["answer"] for line in f]


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so the answer is $\boxed{\frac{1}{2}}$.", r"\frac{1}{2}"),
        (r"\boxed{1} then corrected: \boxed{\sqrt{x^{2}+1}}", r"\sqrt{x^{2}+1}"),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
        (r"\boxed{\left\{ \frac{a}{b} \right\}}", r"\left\{ \frac{a}{b} \right\}"),
        (r"The answer is \boxed 42.", "42"),
        (r"$\boxed 7$", "7"),
        (r"\fbox{x+1}", "x+1"),
        (r"\boxed {5}", "5"),
        (r"final: \boxed{3", None),  # truncated completion
        (r"\boxed{}", None),
        ("no answer here", None),
        (r"\boxedx", None),
        ("", None),
        (None, None),
    ],
)
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


def test_completion_text_accepts_trl_formats():
    assert completion_text("plain") == "plain"
    assert completion_text([{"role": "assistant", "content": "A"}]) == "A"
    parts = [{"role": "assistant", "content": [{"type": "text", "text": "B"}]}]
    assert completion_text(parts) == "B"
    assert completion_text(42) == ""


def test_quick_verdict_decides_cheap_cases_only():
    assert quick_verdict("1,000", "1000") is True
    assert quick_verdict("17", "18") is False
    assert quick_verdict("0.50", ".5") is True
    assert quick_verdict(r"\dfrac{1}{2}", r"\frac{1}{2}") is True
    assert quick_verdict(r"\frac{1}{2}", "0.5") is None  # needs math-verify
    assert quick_verdict("", "3") is False


def test_real_integer_golds_equivalent_and_wrong_forms(grader):
    golds = [g for g in _golds("aime24") + _golds("amc23") if re.fullmatch(r"\d+", g)][:40]
    assert len(golds) >= 30
    equivalent = [(rf"\frac{{{2 * int(g)}}}{{2}}", g) for g in golds]  # goes through math-verify
    wrong = [(rf"\frac{{{2 * int(g) + 1}}}{{2}}", g) for g in golds]
    assert grader.grade(equivalent) == [True] * len(golds)
    assert grader.grade(wrong) == [False] * len(golds)


def test_real_fraction_golds_in_other_forms(grader):
    fractions = [g for g in _golds("math500") if re.fullmatch(r"\\frac\{\d+\}\{\d+\}", g)]
    assert len(fractions) >= 10
    pairs, expected = [], []
    for gold in fractions:
        num, den = map(int, re.findall(r"\d+", gold))
        pairs += [(f"{num}/{den}", gold), (rf"\dfrac{{{3 * num}}}{{{3 * den}}}", gold),
                  (f"{num + den}/{den}", gold)]
        expected += [True, True, False]
    assert grader.grade(pairs) == expected


def test_latex_variants_from_math500(grader):
    # (prediction, gold as in math500.jsonl, expected)
    cases = [
        (r"(3, \pi/2)", r"\left( 3, \frac{\pi}{2} \right)", True),
        (r"(3, \pi)", r"\left( 3, \frac{\pi}{2} \right)", False),
        ("-q + p", "p - q", True),
        ("q - p", "p - q", False),
        (r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}", True),
        (r"[0, \infty)", r"[0,\infty)", True),
        (r"(0, \infty)", r"[0,\infty)", False),
        (r"\{2, 1\}", r"\{1,2\}", True),
        ("garbage )(", "5", False),
    ]
    got = grader.grade([(p, g) for p, g, _ in cases])
    assert got == [e for _, _, e in cases]


def test_math_reward_trl_signature_plain_and_conversational():
    completions = [r"2+2 is \boxed{4}.", r"\boxed{5}", "I don't know", [{"role": "assistant", "content": r"\boxed{4.0}"}]]
    rewards = math_reward(completions=completions, answer=["4"] * 4, prompts=["q"] * 4, completion_ids=None)
    assert rewards == [1.0, 0.0, 0.0, 1.0]
    assert math_reward([r"\boxed{4}"], answer="4") == [1.0]
    with pytest.raises(ValueError, match="answer"):
        math_reward(["a", "b"], answer=["1"])


def test_grader_settings_are_validated():
    with pytest.raises(ValueError, match="timeout"):
        MathGrader(timeout=0)
    with pytest.raises(ValueError, match="num_workers"):
        MathGrader(num_workers=0)


def test_hang_inducing_answer_scores_zero_within_deadline():
    # (10^8)! makes sympy grind for minutes; math-verify's own alarm is switched off here so
    # only the parent's hard deadline can stop it: the worker is killed and replaced.
    with MathGrader(num_workers=1, timeout=1.5, soft_timeouts=False) as g:
        assert g.grade([(r"\frac{2}{4}", "0.5")]) == [True]  # worker is up
        start = time.monotonic()
        verdicts = g.grade([(r"(10^{8})!", "7"), (r"\frac{3}{4}", "0.75")])
        elapsed = time.monotonic() - start
        assert verdicts == [False, True]  # the replacement worker grades the next item
        assert g.timeouts == 1
        assert elapsed < 1.5 + 5.0  # the deadline, plus a replacement worker's start-up


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80), st.sampled_from(["", r"\boxed{", r"\boxed ", r"\fbox{", "}", "{", "\\"]))
def test_extract_boxed_never_raises_and_returns_balanced_content(text, marker):
    content = extract_boxed(marker + text)
    assert content is None or (content.strip() == content and content)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.sampled_from(list("0123456789+-*/{}()[]\\,. xfracsqrt")), max_size=30))
def test_garbage_answers_score_zero_or_one_never_raise(grader, text):
    verdict = grader.grade([(text, "7")])
    assert verdict in ([True], [False])
