"""The verl configs compose through Hydra, pass verl's own validation, and DiPO's checks name bad fields."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

pytest.importorskip("verl.protocol")  # not bare "verl": tests/verl itself would satisfy that
pytestmark = pytest.mark.verl

from hydra import compose, initialize_config_dir, initialize_config_module  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from dipo.core import DiPOConfig  # noqa: E402
from dipo.engines.verl.config import VerlDiPOConfig, validate_verl_config  # noqa: E402
from dipo.engines.verl.main import check_config  # noqa: E402

RECIPES = Path(__file__).resolve().parents[2] / "configs" / "verl"


def recipe(name: str, overrides: list[str] | None = None):
    with initialize_config_dir(config_dir=str(RECIPES), version_base=None):
        return compose(config_name=name, overrides=overrides or [])


def base(overrides: list[str] | None = None):
    with initialize_config_module(config_module="dipo.engines.verl.conf", version_base=None):
        return compose(config_name="dipo_trainer", overrides=overrides or [])


def test_paper_maths_recipe_composes_with_the_paper_settings_and_passes_verl_validation():
    cfg = recipe("qwen3_8b_base_math_dipo", ["data.train_files=/d/train.parquet"])
    actor, rollout = cfg.actor_rollout_ref.actor, cfg.actor_rollout_ref.rollout
    assert cfg.actor_rollout_ref.model.path == "Qwen/Qwen3-8B-Base"
    assert rollout.n == 8 and rollout.calculate_log_probs
    assert actor.optim.lr == pytest.approx(1e-6)
    assert (actor.clip_ratio_low, actor.clip_ratio_high) == (0.2, 0.28)
    assert actor.loss_agg_mode == "token-mean"
    assert cfg.reward.reward_manager.name == "dapo"
    assert cfg.reward.reward_kwargs.overlong_buffer_cfg.enable
    assert cfg.reward.reward_kwargs.max_resp_len == cfg.data.max_response_length
    assert cfg.algorithm.adv_estimator == "grpo" and cfg.algorithm.filter_groups.enable  # dynamic sampling
    assert cfg.trainer.v1.trainer_mode == "dipo_sync"
    assert cfg.dipo.alpha == 0.1 and cfg.dipo.correct_key == "acc"
    check_config(cfg)  # verl's validate_config + DiPO's checks
    core = validate_verl_config(cfg, dipo_aware_filter=True)
    assert (core.alpha, core.queue_batches, core.confidence, core.scale) == (0.1, 2, 0.95, "group")


def test_tool_recipe_and_base_config_compose_and_validate():
    tool = recipe("qwen25_7b_instruct_tool_dipo")
    assert tool.reward.custom_reward_function.path == "pkg://dipo.engines.verl.rewards"
    check_config(tool)
    check_config(base(["actor_rollout_ref.rollout.name=vllm", "actor_rollout_ref.rollout.n=8",
                       "actor_rollout_ref.actor.use_dynamic_bsz=true"]))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (["dipo.alpha=-1"], "dipo.alpha"),
        (["dipo.group_rule=median"], "dipo.group_rule"),
        (["dipo.logprob_source=vllm"], "dipo.logprob_source"),
        (["+dipo.alhpa=0.2"], "unknown field"),
        (["algorithm.adv_estimator=gae"], "algorithm.adv_estimator"),
        (["actor_rollout_ref.rollout.calculate_log_probs=false"], "calculate_log_probs"),
        (["trainer.v1.trainer_mode=sync"], "trainer.v1.trainer_mode"),
        (["trainer.use_v1=false"], "trainer.use_v1"),
        (["algorithm.filter_groups.enable=true", "algorithm.filter_groups.metric=acc",
          "+trainer.v1.sampler.custom_sampler.path=pkg://verl.trainer.ppo.v1.replay_buffer",
          "+trainer.v1.sampler.custom_sampler.name=ReplayBuffer"], "algorithm.filter_groups.enable"),
    ],
)
def test_bad_settings_fail_before_anything_starts_naming_the_field(overrides, field):
    cfg = recipe("qwen3_8b_base_math_dipo", overrides)
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        check_config(cfg)


def test_group_filter_is_accepted_when_dipo_aware_and_dr_grpo_maps_to_unscaled_advantages():
    cfg = recipe("qwen3_8b_base_math_dipo", ["algorithm.filter_groups.enable=true", "algorithm.filter_groups.metric=acc",
                                        "algorithm.norm_adv_by_std_in_grpo=false"])
    check_config(cfg)  # no custom sampler: the DiPO trainer installs its DiPO-aware filter
    assert validate_verl_config(cfg, dipo_aware_filter=True).scale == "none"
    with pytest.raises(ValueError, match="filter_groups"):
        validate_verl_config(cfg, dipo_aware_filter=False)


def test_disabled_dipo_skips_the_dipo_checks():
    cfg = recipe("qwen3_8b_base_math_dipo", ["dipo.enable=false", "algorithm.adv_estimator=gae"])
    validate_verl_config(cfg, dipo_aware_filter=False)
    assert VerlDiPOConfig.from_mapping(cfg.dipo).enable is False


def test_the_dipo_section_is_generated_from_the_dataclass_defaults():
    base_yaml = OmegaConf.load(
        Path(__file__).resolve().parents[2] / "src" / "dipo" / "engines" / "verl" / "conf" / "dipo_base.yaml")
    assert "dipo" not in base_yaml  # no hand-written copy: the ConfigStore entry `dipo: defaults` holds it
    defaults = {f.name: f.default for f in fields(VerlDiPOConfig) if f.name != "scale"}
    assert VerlDiPOConfig.defaults() == defaults
    assert base().dipo == defaults  # Hydra composes it from the dataclass


def test_core_settings_are_the_core_fields_with_the_core_help():
    core = {f.name: f for f in fields(DiPOConfig)}
    verl = {f.name: f for f in fields(VerlDiPOConfig)}
    assert set(core) - set(VerlDiPOConfig.keys()) == {"scale"}  # scale follows algorithm.norm_adv_by_std_in_grpo
    for name in set(core) - {"eps"}:  # eps: verl's GRPO epsilon, 1e-6
        assert (verl[name].default, verl[name].metadata["help"]) == (core[name].default, core[name].metadata["help"])
    options = VerlDiPOConfig.from_mapping({"alpha": 0.3}, scale="none")
    assert isinstance(options, DiPOConfig) and (options.alpha, options.scale, options.eps) == (0.3, "none", 1e-6)
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['scale'\]"):
        VerlDiPOConfig.from_mapping({"scale": "batch"})
