"""Rewards against hostile model output: a number for any string, in bounded time, never an
exception; no score for an empty answer; grading from scripts without a main guard, stdin and exec."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dipo.rewards import (
    bfcl_ast_check,
    extract_boxed,
    make_tool_call_reward,
    math_reward,
    quick_verdict,
    tool_call_reward,
)
from dipo.rewards.grader import CACHE_MAX_BYTES, MathGrader, _ResultCache

ROOT = Path(__file__).parents[1]
DATA = ROOT.parent / "shared" / "data"
partial_reward = make_tool_call_reward(partial_credit=True)

F = {"name": "f", "parameters": {"type": "dict", "required": ["a"], "properties": {"a": {"type": "integer"}}}}
F_ANSWER = [{"f": {"a": [1]}}]
GOLD_CALL = '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>'


@pytest.fixture(scope="module")
def grader():
    with MathGrader(num_workers=1, timeout=4.0) as g:
        yield g


# -- maths --------------------------------------------------------------------------------------
def test_integers_past_the_int_conversion_limit_are_compared_not_refused():
    big = "7" * 5_000  # int() refuses more than 4,300 digits
    assert quick_verdict(big, big) is True
    assert quick_verdict("+" + big, "0" + big) is True
    assert quick_verdict(big, big[:-1] + "8") is False
    assert quick_verdict("1," + "000," * 2_000 + "000", "1" + "000" * 2_001) is True
    assert quick_verdict("-0", "0") is True and quick_verdict("-5", "5") is False


def test_long_digit_strings_are_decided_in_linear_time():
    # A backtracking decimal pattern took 35 s on 100k digits; each call here is milliseconds.
    start = time.perf_counter()
    for tail in ("x", ".", ",5", ". "):
        assert quick_verdict("1" * 100_000 + tail, "5") in (None, False)
    assert time.perf_counter() - start < 2.0


def test_hostile_maths_answers_score_within_the_deadline(grader):
    completions = [rf"\boxed{{{'9' * 5_000}}}", rf"\boxed{{{'1' * 60_000}x}}", r"\boxed{" + "x+" * 500_000 + "1}",
                   r"\boxed{" * 50_000, "\x00" * 1_000, r"\boxed{1\ud800}", r"\boxed{4}"]
    start = time.perf_counter()
    rewards = [1.0 if ok else 0.0 for ok in grader.grade([(extract_boxed(c), "4") for c in completions])]
    assert rewards == [0.0] * 6 + [1.0]
    assert time.perf_counter() - start < grader.timeout
    assert math_reward([rf"\boxed{{{'9' * 5_000}}}"], answer=["9" * 5_000]) == [1.0]  # long, but right


def test_only_the_tail_of_a_completion_is_read():
    assert extract_boxed("blah " * 100_000 + r"\boxed{42}") == "42"
    assert extract_boxed(r"\boxed{" + "1" * 200_000 + "}") is None  # starts before the last 100,000 chars


def test_majority_vote_on_long_integers_does_not_raise(grader):
    from dipo.eval import maj_at_k

    big = "3" * 6_000
    assert maj_at_k([[big, big, "4"]], [[False, False, True]], grader) == 0.0


def test_result_cache_is_bounded_in_bytes():
    cache = _ResultCache(max_entries=1_000, max_bytes=100)
    for i in range(50):
        cache.put((f"{i:040d}", "1"), True)  # 41 characters each
    assert cache.bytes <= 100 and len(cache) == 2
    assert cache.get((f"{49:040d}", "1")) is True and cache.get((f"{0:040d}", "1")) is None
    cache.put(("x" * 200, "1"), True)  # larger than the whole budget: not kept
    assert cache.get(("x" * 200, "1")) is None and cache.bytes <= 100
    assert CACHE_MAX_BYTES <= 64 * 2**20


# -- tool calls -----------------------------------------------------------------------------------
HOSTILE_TOOL_OUTPUTS = {
    "deep_json": "<tool_call>" + "[" * 50_000 + "]" * 50_000 + "</tool_call>",
    "deep_arguments": '<tool_call>{"name": "f", "arguments": {"a": ' + "[" * 5_000 + "]" * 5_000 + "}}</tool_call>",
    "long_json_int": '<tool_call>{"name": "f", "arguments": {"a": ' + "9" * 5_000 + "}}</tool_call>",
    "hex_literal": "[f(a=0x" + "F" * 20_000 + ")]",
    "bin_literal": "[f(a=0b" + "1" * 50_000 + ")]",
    "repeated_tool_call": "<tool_call>" * 9_000,
    "repeated_think": "<think>" * 14_000 + "<tool_call>" * 1_000,
    "huge_arithmetic": "[f(a=" + "*".join(["999999**64"] * 1_000) + ")]",
    "huge_output": '<tool_call>{"name": "f", "arguments": {"a": "' + "x" * 1_000_000 + '"}}</tool_call>',
}


@pytest.mark.parametrize("family", sorted(HOSTILE_TOOL_OUTPUTS))
def test_hostile_tool_outputs_score_zero_quickly_and_never_raise(family):
    text = HOSTILE_TOOL_OUTPUTS[family]
    start = time.perf_counter()
    assert tool_call_reward([text], answer=[GOLD_CALL]) == [0.0]
    assert partial_reward([text], answer=[GOLD_CALL])[0] <= 0.2  # at most the format part
    result = bfcl_ast_check([F], text, F_ANSWER, "simple_python")
    assert not result.valid and result.errors
    assert isinstance(bfcl_ast_check([F], text, None, "irrelevance").valid, bool)
    assert time.perf_counter() - start < 2.0  # repeated <tool_call> took 17-28 s


def test_tool_rewards_run_under_the_grading_deadline(monkeypatch):
    import os
    import signal

    import dipo.rewards.tool as tool

    calls = "\n".join(json.dumps({"name": f"f{i}", "arguments": {"a": i}}) for i in range(400))
    text = f"<tool_call>\n{calls}\n</tool_call>"
    with MathGrader(num_workers=1, timeout=5.0) as grader:
        monkeypatch.setattr(tool, "default_grader", lambda: grader)
        assert tool_call_reward([text], answer=[text]) == [1.0]  # scored in the worker, which is now ready
        # A worker that stops answering (stands in for a slow item, without depending on machine load):
        # the tool reward gives up at the deadline, scores 0 and replaces the worker.
        (worker,) = grader._workers
        os.kill(worker.process.pid, signal.SIGSTOP)
        grader.timeout = 0.3
        assert tool_call_reward([text, "short"], answer=[text, text]) == [0.0, 0.0]
        assert grader.timeouts >= 1
        grader.timeout = 5.0
        assert tool_call_reward([text], answer=[text]) == [1.0]  # the replacement worker answers


def _no_call_golds() -> list[str]:
    with open(DATA / "tool" / "rlla_test.jsonl") as f:
        golds = [json.loads(line)["reward_model"]["ground_truth"] for line in f]
    return [g for g in golds if "<tool_call>" not in g]


@pytest.mark.parametrize("output", ["", "   ", "\x00" * 100, "<tool_call>" * 8_000, "</tool_call>",
                                    "<tool_call></tool_call>", "<think>I will answer.</think>", "<response></response>",
                                    "<think>x</think>\n<response> \x00 </response>"])
def test_no_call_gold_needs_a_real_answer(output):
    golds = _no_call_golds()
    assert len(golds) >= 5
    assert tool_call_reward([output] * len(golds), answer=golds) == [0.0] * len(golds)
    assert partial_reward([output] * len(golds), answer=golds) == [0.0] * len(golds)


def test_no_call_gold_accepts_a_real_answer():
    golds = _no_call_golds()
    answer = "<think> The user only wants advice. </think>\n<response> Try the Berlin office. </response>"
    assert tool_call_reward([answer] * len(golds), answer=golds) == [1.0] * len(golds)
    assert partial_reward([answer] * len(golds), answer=golds) == pytest.approx([1.0] * len(golds))
    assert partial_reward(["<response> Try the Berlin office. </response>"], answer=golds[:1]) == pytest.approx([0.8])
    assert tool_call_reward(["plain text answer"], answer=["I cannot help."]) == [1.0]  # gold without tags
    assert tool_call_reward([GOLD_CALL], answer=golds[:1]) == [0.0]


# -- grading from anywhere --------------------------------------------------------------------------
SCRIPT = textwrap.dedent(r'''
    print("TOP-LEVEL RUN")
    import time
    from dipo.rewards import math_reward, tool_call_reward
    from dipo.rewards.grader import MathGrader
    print("MATH", math_reward([r"\boxed{\frac{1}{2}}", r"\boxed{3}", "none"], answer=["0.5", "4", "1"]))
    print("TOOL", tool_call_reward(['<tool_call>{"name": "f", "arguments": {"a": 1}}</tool_call>'],
                                   answer=['{"name": "f", "arguments": {"a": 1}}']))
    with MathGrader(num_workers=1, timeout=1.5, soft_timeouts=False) as g:
        start = time.monotonic()
        print("HANG", g.grade([(r"(10^{8})!", "7"), (r"\frac{3}{4}", "0.75")]), g.timeouts,
              time.monotonic() - start < 1.5 + 10)
''')


@pytest.mark.parametrize("how", ["script", "stdin", "exec"])
def test_rewards_work_without_a_main_guard(tmp_path, how):
    """A plain script, `python - < script.py`, and code exec()'d by a module run with `-m` (as a
    notebook kernel runs cells): the grading workers must not run the caller's code again."""
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    (tmp_path / "kernel.py").write_text("exec(compile(open('train.py').read(), 'cell', 'exec'))\n")
    command = {"script": [sys.executable, str(script)], "stdin": [sys.executable, "-"],
               "exec": [sys.executable, "-m", "kernel"]}[how]
    done = subprocess.run(command, input=SCRIPT if how == "stdin" else None, capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines.count("TOP-LEVEL RUN") == 1  # no worker re-ran the caller's program
    assert "MATH [1.0, 0.0, 0.0]" in lines and "TOOL [1.0]" in lines
    assert "HANG [False, True] 1 True" in lines  # the hard per-item deadline still holds


# -- the fuzz benchmark, a few hundred outputs ----------------------------------------------------------
def test_fuzz_sample_has_no_crash_and_no_overrun():
    spec = importlib.util.spec_from_file_location("fuzz_rewards", ROOT / "benchmarks" / "fuzz_rewards.py")
    fuzz = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fuzz)
    summary = fuzz.run(per_family=8, seed=1, slow=False, progress=False)
    assert summary["items"] >= 250
    assert set(summary["families"]) >= {"math_long_integer", "math_digit_string", "tool_deep_json",
                                         "tool_long_json_int", "tool_hex_literal", "tool_repeated_tool_call",
                                         "tool_repeated_think", "tool_empty_or_nul", "tool_bare_tags"}
    assert summary["crashes"] == 0, summary["failures"]
    assert summary["over_deadline"] == 0, summary["failures"]
    assert not summary["model_output_executed"]
