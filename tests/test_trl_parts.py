"""Small parts of the TRL engine: the reward guard and batch regrouping for dynamic sampling."""

from __future__ import annotations

import math

import numpy as np
import torch

from dipo.engines.kit.reward_guard import guard_reward
from dipo.engines.trl.batch_ops import concat_batches, select_rows


def _call(func, completions, **kw):
    logged = {}
    out = func(prompts=["p"] * len(completions), completions=completions,
               log_metric=lambda k, v: logged.__setitem__(k, v), **kw)
    return out, logged


def test_guard_passes_good_rewards_through_and_counts_zero():
    def exact(completions, answer, **kwargs):
        return [float(c == a) for c, a in zip(completions, answer)]

    guarded = guard_reward(exact)
    assert guarded.__name__ == "exact"
    out, logged = _call(guarded, ["1", "2"], answer=["1", "1"])
    assert out == [1.0, 0.0] and logged == {"reward_errors/exact": 0.0}


def test_guard_zeroes_only_failing_samples():
    def picky(completions, answer, **kwargs):
        if any(c == "boom" for c in completions):
            raise ZeroDivisionError("boom")
        return [1.0] * len(completions)

    out, logged = _call(guard_reward(picky), ["ok", "boom", "ok"], answer=["a", "b", "c"])
    assert out == [1.0, 0.0, 1.0] and logged["reward_errors/picky"] == 1.0


def test_guard_replaces_bad_values_and_keeps_none():
    def messy(completions, **kwargs):
        return [math.nan, "1", None, np.float32(0.5), True]

    out, logged = _call(guard_reward(messy, fallback=-1.0), list("abcde"))
    assert out == [-1.0, -1.0, None, 0.5, 1.0] and logged["reward_errors/messy"] == 2.0


def test_guard_survives_wrong_length_and_leaves_models_alone():
    def short(completions, **kwargs):
        return [1.0]

    out, logged = _call(guard_reward(short), ["a", "b"])
    assert out == [1.0, 1.0] and logged["reward_errors/short"] == 0.0  # per-sample retry succeeds
    module = torch.nn.Linear(1, 1)
    assert guard_reward(module) is module and guard_reward("some/reward-model") == "some/reward-model"


def test_select_and_concat_repad_prompts_left_and_completions_right():
    a = {"prompt_ids": torch.tensor([[0, 5], [6, 7]]), "prompt_mask": torch.tensor([[0, 1], [1, 1]]),
         "completion_ids": torch.tensor([[1, 2, 3], [4, 0, 0]]), "completion_mask": torch.tensor([[1, 1, 1], [1, 0, 0]]),
         "advantages": torch.tensor([0.5, -0.5]), "num_items_in_batch": torch.tensor(4)}
    b = {"prompt_ids": torch.tensor([[1, 2, 3]]), "prompt_mask": torch.tensor([[1, 1, 1]]),
         "completion_ids": torch.tensor([[9]]), "completion_mask": torch.tensor([[1]]),
         "advantages": torch.tensor([1.0]), "num_items_in_batch": torch.tensor(1)}
    out = concat_batches([select_rows(a, torch.tensor([1])), b], pad_token_id=0)
    assert out["prompt_ids"].tolist() == [[0, 6, 7], [1, 2, 3]]
    assert out["prompt_mask"].tolist() == [[0, 1, 1], [1, 1, 1]]
    assert out["completion_ids"].tolist() == [[4, 0, 0], [9, 0, 0]]
    assert out["completion_mask"].tolist() == [[1, 0, 0], [1, 0, 0]]
    assert out["advantages"].tolist() == [-0.5, 1.0] and "num_items_in_batch" not in out


def test_regrouping_refuses_unknown_fields():
    import pytest

    with pytest.raises(NotImplementedError, match="pixel_values"):
        select_rows({"pixel_values": torch.zeros(2, 3)}, torch.tensor([0]))
