"""The verl `dipo:` section is generated from `VerlDiPOConfig`, never listed by hand: conf/dipo_base.yaml
names the ConfigStore entry that `dipo.engines.verl.config` stores on import, so a new field of the core
`dipo.core.DiPOConfig` is a `dipo.<field>=value` override without any verl edit. Runs in the main
environment (no verl, no Hydra: Hydra's ConfigStore is faked); the composition with real Hydra is checked
where Hydra is installed (tests/verl/test_verl_config.py composes the real recipes in the verl environment)."""

from __future__ import annotations

import sys
import types
from dataclasses import MISSING, fields
from pathlib import Path

import pytest
import yaml

from dipo.core import DiPOConfig
from dipo.engines.verl import config as verl_config
from dipo.engines.verl.config import VerlDiPOConfig

CONF = Path(verl_config.__file__).parent / "conf"


def test_the_section_is_every_field_but_scale_at_its_dataclass_default():
    section = VerlDiPOConfig.defaults()
    assert tuple(section) == VerlDiPOConfig.keys()
    assert section == {f.name: f.default for f in fields(VerlDiPOConfig) if f.name != "scale"}
    assert all(f.default is not MISSING for f in fields(VerlDiPOConfig))  # every key has a YAML-able default
    # every core field is a key (scale follows algorithm.norm_adv_by_std_in_grpo), with the core's default
    core = {f.name: f.default for f in fields(DiPOConfig) if f.name != "scale"}
    assert {k: section[k] for k in core if k != "eps"} == {k: v for k, v in core.items() if k != "eps"}
    assert section["eps"] == 1e-6  # verl's GRPO epsilon
    assert VerlDiPOConfig.from_mapping(section) == VerlDiPOConfig()  # the composed section parses to the defaults


def test_dipo_base_yaml_lists_no_dipo_key_and_pulls_the_generated_section():
    base = yaml.safe_load((CONF / "dipo_base.yaml").read_text())
    assert "dipo" not in base  # no hand-written copy of the dataclass
    entry = {f"optional {verl_config.HYDRA_GROUP}": verl_config.HYDRA_OPTION}  # `- optional dipo: defaults`
    assert base["defaults"] == ["ppo_trainer", entry, "_self_"]  # after verl's config, before this file's keys
    assert yaml.safe_load((CONF / "dipo_trainer.yaml").read_text())["defaults"] == ["dipo_base", "_self_"]


def test_import_stores_the_section_in_hydras_config_store(monkeypatch):
    stored = []

    class ConfigStore:
        @staticmethod
        def instance():
            return ConfigStore()

        def store(self, **kw):
            stored.append(kw)

    fake = types.ModuleType("hydra.core.config_store")
    fake.ConfigStore = ConfigStore
    monkeypatch.setitem(sys.modules, "hydra.core.config_store", fake)
    assert verl_config.register_hydra_defaults() is True
    assert stored == [{"group": "dipo", "name": "defaults", "node": VerlDiPOConfig.defaults()}]
    monkeypatch.setitem(sys.modules, "hydra.core.config_store", None)  # Hydra not installed: nothing, no error
    assert verl_config.register_hydra_defaults() is False


def test_hydra_composes_the_generated_section_and_its_overrides(tmp_path):
    pytest.importorskip("hydra")
    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException
    from omegaconf import OmegaConf

    verl_config.register_hydra_defaults()
    (tmp_path / "ppo_trainer.yaml").write_text("algorithm:\n  adv_estimator: gae\n")  # stands in for verl's
    (tmp_path / "primary.yaml").write_text(
        "hydra:\n  searchpath:\n    - pkg://dipo.engines.verl.conf\ndefaults:\n  - dipo_base\n  - _self_\n")
    with initialize_config_dir(config_dir=str(tmp_path), version_base=None):
        cfg = compose(config_name="primary", overrides=["dipo.alpha=0.3", "dipo.records_dir=/r"])
        assert OmegaConf.to_container(cfg.dipo) == {**VerlDiPOConfig.defaults(), "alpha": 0.3, "records_dir": "/r"}
        assert cfg.algorithm.adv_estimator == "grpo"  # dipo_base's keys over verl's
        with pytest.raises(ConfigCompositionException):
            compose(config_name="primary", overrides=["dipo.alhpa=0.3"])  # a typo is Hydra's error, as before
