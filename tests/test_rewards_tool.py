"""Function-call decoding, BFCL checks on hand-made cases, and the tool-call training rewards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dipo.rewards import (
    ToolCallParseError,
    bfcl_ast_check,
    make_tool_call_reward,
    parse_function_calls,
    tool_call_reward,
)

DATA = Path(__file__).parents[1].parent / "shared" / "data"

WEATHER = {"name": "get_weather", "parameters": {"type": "dict", "required": ["city"], "properties": {
    "city": {"type": "string"}, "days": {"type": "integer"}, "scale": {"type": "float"},
    "tags": {"type": "array", "items": {"type": "string"}}}}}
ANSWER = [{"get_weather": {"city": ["Paris", "Paris, France"], "days": [3], "scale": ["", 1.0], "tags": [""]}}]


def test_python_and_json_syntax_decode_to_the_same_calls():
    python = "[get_weather(city='Paris', days=3), math.sqrt(x=-2.5)]"
    tagged = ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}\n'
              '{"name": "math.sqrt", "parameters": {"x": -2.5}}\n</tool_call>')
    expected = [{"get_weather": {"city": "Paris", "days": 3}}, {"math.sqrt": {"x": -2.5}}]
    assert parse_function_calls(python) == expected
    assert parse_function_calls(tagged) == expected
    assert parse_function_calls([{"name": "get_weather", "arguments": '{"city": "Paris", "days": 3}'}]) == expected[:1]
    assert parse_function_calls("get_weather(city='Paris')") == [{"get_weather": {"city": "Paris"}}]


def test_decoding_never_executes_model_output(tmp_path):
    marker = tmp_path / "pwned"
    out = parse_function_calls(f"[f(a=__import__('os').system('touch {marker}'))]")
    assert not marker.exists()
    assert isinstance(out[0]["f"]["a"], dict | str)  # kept as data, not run
    assert parse_function_calls("[f(n=2**10, m=-3+1)]") == [{"f": {"n": 1024, "m": -2}}]
    for bad in ["[f(n=9**9**9)]", "[f(a=lambda: 1)]", "[f(x=y+1)]", "not a call at all", "[1, 2]"]:
        with pytest.raises(ToolCallParseError):
            parse_function_calls(bad)


@pytest.mark.parametrize(
    "output, valid, error_type",
    [
        ("[get_weather(city='paris', days=3)]", True, ""),  # strings: case and spaces ignored
        ("[get_weather(city='Paris, France', days=3, scale=1)]", True, ""),  # int accepted for float
        ("[get_weather(city='Paris', days=3, tags=[])]", True, ""),  # BFCL: [] passes an optional list
        ("[get_weather(city='Paris', days='3')]", False, "type_error:simple"),
        ("[get_weather(city='Rome', days=3)]", False, "value_error:string"),
        ("[get_weather(days=3)]", False, "simple_function_checker:missing_required"),
        ("[get_weather(city='Paris')]", False, "simple_function_checker:missing_optional"),
        ("[get_weather(city='Paris', days=3, unit='c')]", False, "simple_function_checker:unexpected_param"),
        ("[get_forecast(city='Paris', days=3)]", False, "simple_function_checker:wrong_func_name"),
        ("[get_weather(city='Paris', days=3), get_weather(city='Paris', days=3)]", False, "wrong_count"),
        ("Sorry, no idea.", False, "ast_decoder:decoder_failed"),
    ],
)
def test_bfcl_simple_rules(output, valid, error_type):
    result = bfcl_ast_check([WEATHER], output, ANSWER, "simple_python")
    assert result.valid is valid
    assert result.error_type == error_type
    assert bool(result.errors) is (not valid)


def test_bfcl_parallel_is_order_free_and_irrelevance_wants_no_call():
    answer = [{"get_weather": {"city": ["Paris"], "days": [1]}}, {"get_weather": {"city": ["Oslo"], "days": [2]}}]
    ok = "[get_weather(city='Oslo', days=2), get_weather(city='Paris', days=1)]"
    assert bfcl_ast_check([WEATHER], ok, answer, "parallel").valid
    assert not bfcl_ast_check([WEATHER], ok, answer[:1], "parallel").valid
    assert bfcl_ast_check([WEATHER], "I can't do that with these tools.", None, "irrelevance").valid
    assert not bfcl_ast_check([WEATHER], "get_weather(city='Paris')", None, "irrelevance").valid


def _rlla_rows(n: int) -> list[dict]:
    with open(DATA / "tool" / "rlla_test.jsonl") as f:
        return [json.loads(line) for line, _ in zip(f, range(n))]


def test_tool_call_reward_on_real_toolrl_rows():
    rows = [r for r in _rlla_rows(40) if "<tool_call>" in r["reward_model"]["ground_truth"]][:10]
    gold = [r["reward_model"]["ground_truth"] for r in rows]
    assert tool_call_reward(gold, answer=gold) == [1.0] * len(gold)  # gold against itself
    wrong_name = [g.replace('"name": "', '"name": "X', 1) for g in gold]
    assert tool_call_reward(wrong_name, answer=gold) == [0.0] * len(gold)
    no_call = ["<think>hmm</think><response>Sure!</response>"] * len(gold)
    assert tool_call_reward(no_call, answer=gold) == [0.0] * len(gold)
    # conversational completions, as TRL passes them
    assert tool_call_reward([[{"role": "assistant", "content": gold[0]}]], answer=[gold[0]]) == [1.0]


def test_tool_call_reward_on_testbed_rows_with_bare_json_gold():
    from dipo.testbed.tasks import make_tool_tasks

    rows = make_tool_tasks(8, seed=0)
    gold = [r["answer"] for r in rows]
    assert tool_call_reward([r["completion"] for r in rows], answer=gold) == [1.0] * len(rows)
    swapped = [rows[(i + 1) % len(rows)]["completion"] for i in range(len(rows))]
    assert tool_call_reward(swapped, answer=gold).count(1.0) < len(rows)


def test_partial_credit_orders_outputs_sensibly():
    reward = make_tool_call_reward(partial_credit=True)
    gold = '<tool_call>\n{"name": "GetNews", "parameters": {"page": "1", "topic": "azure"}}\n</tool_call>'
    outputs = {
        "perfect": "<think>ok</think>\n" + gold,
        "wrong_value": '<think>ok</think>\n<tool_call>\n{"name": "GetNews", "parameters": {"page": "2", "topic": "azure"}}\n</tool_call>',
        "missing_key": '<think>ok</think>\n<tool_call>\n{"name": "GetNews", "parameters": {"page": 1}}\n</tool_call>',
        "no_think": gold,
        "wrong_tool": '<think>ok</think>\n<tool_call>\n{"name": "GetWeather", "parameters": {}}\n</tool_call>',
        "broken_json": "<think>ok</think>\n<tool_call>\n{name: GetNews</tool_call>",
    }
    scores = dict(zip(outputs, reward(list(outputs.values()), answer=[gold] * len(outputs))))
    assert scores["perfect"] == pytest.approx(1.0)
    assert scores["perfect"] > scores["wrong_value"] > scores["missing_key"] > scores["wrong_tool"]
    assert scores["no_think"] == pytest.approx(0.8)
    assert scores["wrong_tool"] == pytest.approx(0.2)  # format only
    assert scores["broken_json"] == 0.0
    with pytest.raises(ValueError, match="format_weight"):
        make_tool_call_reward(partial_credit=True, format_weight=2.0)


def test_tool_call_reward_on_bfcl_rows():
    rewards = tool_call_reward(
        ["[get_weather(city='Paris', days=3)]", "[get_weather(city='Lima', days=3)]"],
        functions=[[WEATHER]] * 2, possible_answer=[ANSWER] * 2, category=["simple_python"] * 2)
    assert rewards == [1.0, 0.0]


_CALLISH = st.one_of(
    st.text(max_size=60),
    st.builds(lambda name, body: f"[{name}({body})]", st.sampled_from(["get_weather", "f", "a.b"]), st.text(max_size=40)),
    st.builds(lambda body: f"<tool_call>{body}</tool_call>", st.text(max_size=60)),
    st.sampled_from(["[f(a=-'x')]", "[f(a={[1]: 2})]", "[f(a='x'**2)]", "[f(a=1e999**2)]", "[get_weather(city=-None)]",
                     "<tool_call>[1, 2]</tool_call>", '<tool_call>{"name": 3}</tool_call>', "[f(*a, **b)]"]),
)


@settings(max_examples=300, deadline=None)
@given(_CALLISH)
def test_arbitrary_model_output_never_raises(text):
    for category in ("simple_python", "parallel_multiple", "irrelevance"):
        answer = None if category == "irrelevance" else ANSWER
        assert isinstance(bfcl_ast_check([WEATHER], text, answer, category).valid, bool)
    assert tool_call_reward([text], answer=['{"name": "f", "arguments": {}}'])[0] in (0.0, 1.0)
    assert 0.0 <= make_tool_call_reward(partial_credit=True)([text], answer=["<tool_call>{}</tool_call>".replace(
        "{}", '{"name": "f", "arguments": {"a": 1}}')])[0] <= 1.0
