"""DiPO's adapter against real verl objects: DataProto and verl's own GRPO advantage code path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("verl.protocol")  # not bare "verl": tests/verl itself would satisfy that
pytestmark = pytest.mark.verl

from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage  # noqa: E402
from verl.trainer.ppo.ray_trainer import compute_advantage  # noqa: E402
from verl_batches import apply_dipo, make_batch, outcome_scores, primed_dipo  # noqa: E402

from dipo.core import DiPO, DiPOConfig  # noqa: E402
from dipo.engines.verl.adapter import parse_key, participating_rows  # noqa: E402

ALPHA = 0.1
GROUPS = [
    ("normal_a", [1.0, 0.0, 1.0, 0.0], [0.3, 1.5, 0.4, 1.6]),
    ("normal_b", [1.0, 1.0, 0.0, 0.0], [0.25, 0.5, 1.45, 1.7]),
    ("hard_low", [0.0, 0.0, 0.0, 0.0], [0.3, 0.5, 0.35, 0.4]),   # confidently wrong: fires
    ("easy_high", [1.0, 1.0, 1.0, 1.0], [1.5, 1.7, 1.9, 1.6]),   # uncertain right: fires
    ("hard_high", [0.0, 0.0, 0.0, 0.0], [1.5, 1.6, 1.7, 1.8]),   # wrong and unsure: untouched
    ("easy_low", [1.0, 1.0, 1.0, 1.0], [0.2, 0.3, 0.25, 0.35]),  # right and sure: untouched
]


def rows_of(uid: str) -> slice:
    start = [g[0] for g in GROUPS].index(uid) * 4
    return slice(start, start + 4)


def verl_grpo(data):
    """verl's own advantage path (the one the V1 trainer calls for adv_estimator=grpo)."""
    return compute_advantage(data, adv_estimator="grpo", norm_adv_by_std_in_grpo=True, config=None)


def per_sequence(adv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The constant per-sequence value of a token-level advantage (checked constant on the mask)."""
    first = adv[torch.arange(adv.shape[0]), mask.argmax(-1)]
    assert torch.allclose(adv, first.unsqueeze(-1) * mask, atol=1e-6)
    return first


def test_normal_groups_untouched_and_extreme_groups_get_alpha_grpo_of_realloc():
    data = verl_grpo(make_batch(GROUPS))
    before = data.batch["advantages"].clone()
    scores_before = data.batch["token_level_scores"].clone()
    result = apply_dipo(data, primed_dipo(alpha=ALPHA))
    after, mask = data.batch["advantages"], data.batch["response_mask"]

    assert result.step.split.valid
    for uid in ("normal_a", "normal_b", "hard_high", "easy_low"):
        assert torch.equal(after[rows_of(uid)], before[rows_of(uid)]), uid
    # fired groups had A(R) = 0 under verl's GRPO; now alpha * A(R_r), R_r from the max-PPL pick
    hard, easy = per_sequence(after, mask)[rows_of("hard_low")], per_sequence(after, mask)[rows_of("easy_high")]
    expected_hard = ALPHA * torch.tensor([-0.5, 1.5, -0.5, -0.5])  # max log-PPL 0.5 (index 1) rewarded
    expected_easy = ALPHA * torch.tensor([0.5, 0.5, -1.5, 0.5])    # max log-PPL 1.9 (index 2) penalised
    torch.testing.assert_close(hard, expected_hard, atol=1e-5, rtol=0)
    torch.testing.assert_close(easy, expected_easy, atol=1e-5, rtol=0)
    # the same numbers from verl's GRPO on R_r (an independent oracle for A(R_r))
    r_r = result.step.realloc.rewards.float()
    oracle, _ = compute_grpo_outcome_advantage(outcome_scores(r_r.tolist(), mask), mask,
                                               data.non_tensor_batch["uid"])
    torch.testing.assert_close(after, before + ALPHA * oracle, atol=1e-6, rtol=0)
    assert torch.equal(data.batch["returns"], after)
    assert torch.all(after[mask == 0] == 0)
    assert torch.equal(data.batch["token_level_scores"], scores_before)  # raw scores kept for logging
    m = result.step.metrics
    assert (m["dipo/fired_hard"], m["dipo/fired_easy"], m["dipo/split_valid"]) == (1.0, 1.0, 1.0)
    assert m["dipo/frac_hard"] == m["dipo/frac_easy"] == pytest.approx(2 / 6)


def test_combined_advantage_matches_core_and_zeroes_verl_a_of_r_in_verifier_flat_groups():
    # all wrong by the verifier (acc = 0) but shaped scores differ (DAPO overlong penalty): verl's A(R)
    # is not zero, but DAPO's filter would drop the group, so Eq. 10 has A(R) = 0 there: only DiPO's term.
    groups = GROUPS[:2] + [("hard_shaped", [0.0, -0.2, 0.0, -0.5], [0.3, 0.5, 0.35, 0.4])]
    acc = np.array([1, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0], dtype=np.float64)
    data = verl_grpo(make_batch(groups))
    before = data.batch["advantages"].clone()
    result = apply_dipo(data, primed_dipo(alpha=ALPHA), verifier_rewards=acc)
    after, mask = data.batch["advantages"], data.batch["response_mask"]

    shaped = slice(8, 12)
    assert result.step.realloc.sample_fired[shaped].all()
    assert per_sequence(before, mask)[shaped].abs().sum() > 0
    torch.testing.assert_close(per_sequence(after, mask)[shaped], ALPHA * torch.tensor([-0.5, 1.5, -0.5, -0.5]),
                               atol=1e-5, rtol=0)
    assert torch.equal(after[:8], before[:8])  # groups whose verifier rewards vary: verl's A(R) bit for bit
    # DiPO's own combined advantage (core, eps = verl's 1e-6) equals what verl will train on
    torch.testing.assert_close(per_sequence(after, mask), result.step.advantages.float(), atol=1e-5, rtol=0)
    assert result.step.metrics["dipo/accuracy"] == pytest.approx(acc.mean())


def test_invalid_split_leaves_verl_advantages_bit_for_bit():
    data = verl_grpo(make_batch(GROUPS))
    before = data.batch["advantages"].clone()
    result = apply_dipo(data, DiPO(DiPOConfig(eps=1e-6)))  # empty queue: 24 samples, no confident split
    assert not result.step.split.valid
    assert torch.equal(data.batch["advantages"], before)
    assert result.step.metrics["dipo/fired_hard"] == result.step.metrics["dipo/fired_easy"] == 0


def test_padding_rows_and_multi_output_sessions():
    groups = GROUPS[2:4] + [("padXYZ", [0.0, 0.0], [0.3, 0.3])]
    data = verl_grpo(make_batch(groups))
    before = data.batch["advantages"].clone()
    # hard_low's session 1 has two outputs; verl scores the last (index 1) and broadcasts it
    keys = ["hard_low_0_0", "hard_low_1_0", "hard_low_1_1", "hard_low_3_0",
            "easy_high_0_0", "easy_high_1_0", "easy_high_2_0", "easy_high_3_0", "padXYZ_0_0", "padXYZ_1_0"]
    is_padding = np.array([False] * 8 + [True] * 2)
    rows, source = participating_rows(keys, is_padding)
    assert rows.tolist() == [0, 2, 3, 4, 5, 6, 7]
    assert source.tolist() == [0, 2, 2, 3, 4, 5, 6, 7, -1, -1]
    result = apply_dipo(data, primed_dipo(alpha=ALPHA), rows=rows, source=source)

    assert len(result.step.logppl) == 7
    assert result.extra.shape == (10,) and result.flat.shape == (10,)
    assert result.step.metrics["dipo/frac_hard"] == pytest.approx(0.5)  # padding is no hard group
    assert torch.equal(data.batch["advantages"][8:], before[8:])
    extra = result.extra
    assert extra[1] == extra[2] != 0  # the earlier output of a session takes its final output's term


def test_missing_field_is_named():
    data = verl_grpo(make_batch(GROUPS))
    with pytest.raises(KeyError, match="old_log_probs"):
        apply_dipo(data, primed_dipo(), logprob_key="old_log_probs")
    with pytest.raises(ValueError, match="not verl's"):
        participating_rows(["no-index"], np.array([False]))


def test_the_term_is_the_cores_alpha_times_a_of_r_r_on_plain_tensors():
    data = verl_grpo(make_batch(GROUPS))
    result = apply_dipo(data, primed_dipo(alpha=ALPHA))
    # alpha is applied once, in the core: the adapter adds step.extra_advantages as it is
    torch.testing.assert_close(result.extra, result.step.extra_advantages.float(), atol=0, rtol=0)
    torch.testing.assert_close(result.step.extra_advantages, ALPHA * result.step.realloc_advantages)
    torch.testing.assert_close(result.step.advantages, result.step.base_advantages + result.step.extra_advantages)


def test_one_key_parser_and_uids_with_underscores():
    assert parse_key("my_uid_2_13") == ("my_uid", "2", 13)
    # two groups whose uids share a prefix before '_' stay apart; session 1 of "a_b" has two outputs
    keys = ["a_b_0_0", "a_b_1_0", "a_b_1_1", "a_0_0", "a_1_0"]
    rows, source = participating_rows(keys, np.zeros(5, dtype=bool))
    assert rows.tolist() == [0, 2, 3, 4] and source.tolist() == [0, 2, 2, 3, 4]
    with pytest.raises(ValueError, match="not verl's"):
        parse_key("uid_0_x")
