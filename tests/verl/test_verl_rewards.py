"""The verl reward bridge, loaded the way verl loads a custom reward function, on real ToolRL rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("verl.protocol")  # not bare "verl": tests/verl itself would satisfy that
pytestmark = pytest.mark.verl

from hydra import compose, initialize_config_dir  # noqa: E402
from verl.trainer.ppo.reward import get_custom_reward_fn  # noqa: E402

from dipo.engines.verl.rewards import compute_score, load_reward_fn  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
RLLA = REPO.parent / "shared" / "data" / "tool" / "rlla_test.jsonl"


def rlla_rows(n: int = 5) -> list[dict]:
    if not RLLA.exists():
        pytest.skip(f"shared data not found: {RLLA}")
    return [json.loads(line) for line in RLLA.read_text().splitlines()[:n]]


def tool_score_fn():
    with initialize_config_dir(config_dir=str(REPO / "configs" / "verl"), version_base=None):
        cfg = compose(config_name="qwen25_7b_instruct_tool_dipo")
    return get_custom_reward_fn(cfg)  # verl's loader: pkg:// path + reward_kwargs merged in


def test_tool_recipe_reward_scores_real_rows_through_verls_loader():
    score = tool_score_fn()
    for row in rlla_rows():
        gold = row["reward_model"]["ground_truth"]
        right = score(data_source=row["data_source"], solution_str=gold, ground_truth=gold,
                      extra_info=row["extra_info"])
        assert right == {"score": 1.0, "acc": 1.0}
        if "<tool_call>" in gold:
            wrong = gold.replace('"name": "', '"name": "not_')
        else:  # the gold answer calls no tool; calling one is wrong
            wrong = '<tool_call>\n{"name": "lookup", "parameters": {}}\n</tool_call>'
        assert score(data_source="rlla", solution_str=wrong, ground_truth=gold, extra_info=row["extra_info"])["acc"] == 0.0
        if "<tool_call>" in gold:
            assert score(data_source="rlla", solution_str="<tool_call>{oops", ground_truth=gold)["acc"] == 0.0


def failing_reward(completions, **kwargs):
    raise RuntimeError("grader crashed")


def test_a_crashing_reward_scores_zero_and_a_bad_spec_is_named(caplog):
    spec = f"{__name__}:failing_reward"
    assert compute_score("x", "text", "gold", reward_fn=spec) == {"score": 0.0, "acc": 0.0}
    assert "grader crashed" in caplog.text
    with pytest.raises(ValueError, match=r"unknown reward maths \(did you mean math\?\)"):
        load_reward_fn("maths")
    # the engine kit's registry: built-in names and both dotted spellings name the same function
    assert load_reward_fn("math") is load_reward_fn("dipo.rewards.math_reward") is load_reward_fn("dipo.rewards:math_reward")
    with pytest.raises(ValueError, match="no function 'nope'"):
        load_reward_fn("dipo.rewards:nope")
