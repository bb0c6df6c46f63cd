"""A new BRR option is a change to `dipo.core` plus one engine-facing line (docs/engines.md, "Where things
go"): every core field reaches each engine's config with the core's default and help, `dipo train`'s
--help and its effective settings, and verl's `dipo:` section, without a list kept by hand anywhere."""

from __future__ import annotations

from dataclasses import fields

import pytest

from dipo.core import DiPOConfig as CoreConfig

ENGINE_LEVEL = ("scale", "reallocate")  # TRL's scale_rewards, and method=dipo, say these
CORE_FIELDS = [f for f in fields(CoreConfig) if f.name not in ENGINE_LEVEL]


@pytest.mark.parametrize("core", CORE_FIELDS, ids=[f.name for f in CORE_FIELDS])
def test_every_core_field_is_a_trl_field_with_the_cores_default_and_help(core):
    from dipo.engines.trl import DiPOConfig

    trl = {f.name: f for f in fields(DiPOConfig)}
    assert core.name in trl, f"add `{core.name}: ... = core_field({core.name!r})` to engines/trl/config.py"
    assert trl[core.name].default == core.default and trl[core.name].metadata["help"] == core.metadata["help"]


def test_every_core_field_shows_in_help_and_effective_settings(tmp_path):
    from dipo.engines.trl.args import build_parser, effective_settings, parse

    help_text = build_parser().format_help()
    script, training, model = parse(["--model_name_or_path", "testbed", "--output_dir", str(tmp_path / "r"),
                                     "--method", "dipo", "--alpha", "0.3"])
    settings = effective_settings(script, training, model)
    for core in CORE_FIELDS:
        assert f"--{core.name} " in help_text, core.name
        assert f"{core.name}={getattr(training.core_config(), core.name)}" in settings, core.name
    assert "alpha=0.3" in settings


def test_every_core_field_is_in_verls_dipo_section():
    from dipo.engines.verl.config import VerlDiPOConfig

    verl = {f.name: f for f in fields(VerlDiPOConfig)}
    for core in CORE_FIELDS:
        assert core.name in verl
        assert verl[core.name].metadata["help"], core.name
