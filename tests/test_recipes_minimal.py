"""The TRL recipes in configs/trl say only what differs from what `dipo train` uses anyway (issue #22).

"Default" is judged on the fully parsed configs, as `dipo train --config` builds them: a recipe key is
redundant when the recipe without it (its `base:` resolved) parses to the same DiPOConfig, ModelConfig
and script arguments, with the method preset and every derived default applied. Parsing is done as on a
bf16 GPU machine (the paper recipes say `bf16: true`, which this CPU machine's check would refuse).

A recipe may still write two kinds of default, listed below with the reason:
- `bf16`: its default is machine-dependent (`dipo train` keeps TRL's True on a CUDA machine and turns it
  off on a CPU-only one; transformers' own default is False), so a recipe states the precision it runs in;
- in the paper recipes, the paper's hyperparameters whose defaults are TRL's, not dipo's (G, learning rate,
  clip low, KL beta, sampling temperature and top-p): TRL owns and has changed them (beta 0.04 -> 0.0,
  temperature 0.9 -> 1.0), so the recipe pins the paper's value. dipo's own defaults (alpha, queue,
  confidence, method presets) are the paper's by construction and are tested where they are defined.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
import transformers
import yaml

from dipo._cli_util import UsageError
from dipo.engines.trl import args as train_args
from dipo.engines.trl.config import DiPOConfig

REPO = Path(__file__).parents[1]
RECIPES = sorted((REPO / "configs" / "trl").glob("*.yaml"))
PAPER = [p for p in RECIPES if not p.name.startswith("testbed_")]
MACHINE_DEPENDENT = {"bf16"}
TRL_OWNED_PAPER_VALUES = {"num_generations", "learning_rate", "epsilon", "beta", "temperature", "top_p"}
# what may differ between the two tool recipes (the model and where its run goes)
PER_MODEL = {"model_name_or_path", "output_dir", "run_name", "hub_model_id"}


@pytest.fixture(autouse=True)
def bf16_gpu(monkeypatch):
    """Parse as on a bf16-capable GPU: transformers refuses bf16 on a CPU-only machine unless use_cpu, and
    `dipo train` defaults bf16 off there."""
    monkeypatch.setattr(transformers.training_args, "is_torch_bf16_gpu_available", lambda: True)
    monkeypatch.setattr(train_args, "_cuda", lambda: True, raising=False)


def effective(mapping: dict, tmp_path: Path) -> dict:
    """Every field of the three configs `dipo train --config` builds from this mapping, by name."""
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(mapping))
    return {f"{type(c).__name__}.{f.name}": getattr(c, f.name)
            for c in train_args.parse(["--config", str(path)]) for f in fields(c)}


def redundant_keys(mapping: dict, tmp_path: Path) -> list[str]:
    full = effective(mapping, tmp_path)
    out = []
    for key in mapping:
        try:
            without = effective({k: v for k, v in mapping.items() if k != key}, tmp_path)
        except (UsageError, ValueError):
            continue  # needed: the recipe does not even parse without it (e.g. model_name_or_path)
        if without == full:
            out.append(key)
    return out


def parsed(path: Path):
    return train_args.parse(["--config", str(path)])


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_writes_no_field_at_the_value_dipo_train_uses_anyway(path, tmp_path):
    allowed = MACHINE_DEPENDENT | (TRL_OWNED_PAPER_VALUES if path in PAPER else set())
    repeated = [k for k in redundant_keys(train_args.load_yaml_config(str(path)), tmp_path) if k not in allowed]
    assert repeated == [], f"{path.name}: these keys repeat dipo train's defaults, drop them (a comment may say so)"


def test_the_defaults_recipes_may_pin_belong_to_trl_not_to_dipo():
    own = set(DiPOConfig.__annotations__) | {f.name for f in fields(train_args.TrainScriptArguments)}
    assert not (MACHINE_DEPENDENT | TRL_OWNED_PAPER_VALUES) & own
    names = {f.name for f in fields(DiPOConfig)}
    assert MACHINE_DEPENDENT | TRL_OWNED_PAPER_VALUES <= names


def test_paper_recipes_parse_to_the_papers_settings():
    for path in PAPER:
        script, training, _ = parsed(path)
        assert (training.method, training.alpha, training.queue_batches, training.confidence) == ("dipo", 0.1, 2, 0.95)
        assert (training.loss_type, training.epsilon, training.epsilon_high) == ("dapo", 0.2, 0.28), path.name
        assert training.overlong_shaping and training.dynamic_sampling and training.beta == 0.0
        assert (training.num_generations, training.learning_rate, training.temperature) == (8, 1e-6, 1.0)
        assert training.bf16 and training.use_vllm and training.vllm_mode == "colocate"
        assert training.report_to == ["tensorboard"]
    script, training, model = parsed(REPO / "configs" / "trl" / "qwen3_8b_base_math_dipo.yaml")
    assert (model.model_name_or_path, script.dataset_name, script.reward_funcs) == (
        "Qwen/Qwen3-8B-Base", "dapo_math_17k", ["math"])
    assert training.correctness_reward_funcs == ["0"]  # the verifier (index 0) alone decides group kinds and accuracy
    assert (training.group_rule, training.overlong_penalty_factor, training.top_p, training.heldout_k) == (
        "mean", 1.0, 1.0, 8)
    verl = yaml.safe_load((REPO / "configs" / "verl" / "qwen3_8b_base_math_dipo.yaml").read_text())
    assert verl["reward"]["reward_kwargs"]["overlong_buffer_cfg"]["len"] == training.overlong_buffer_length == 2048
    assert verl["data"]["max_response_length"] == training.max_completion_length == 8192
    assert verl["actor_rollout_ref"]["rollout"]["n"] == training.num_generations


def test_the_3b_tool_recipe_is_the_7b_one_with_another_model(tmp_path, monkeypatch):
    small, large = (REPO / "configs" / "trl" / f"qwen25_{size}_instruct_tool_dipo.yaml" for size in ("3b", "7b"))
    assert set(yaml.safe_load(small.read_text())) == {"base", "model_name_or_path", "output_dir"}
    monkeypatch.chdir(tmp_path)  # `base:` is relative to the including file, not to the working directory
    configs = {}
    for size, path in (("3B", small), ("7B", large)):
        configs[size] = {f"{type(c).__name__}.{f.name}": getattr(c, f.name) for c in parsed(path) for f in fields(c)}
        assert configs[size]["ModelConfig.model_name_or_path"] == f"Qwen/Qwen2.5-{size}-Instruct"
        assert configs[size]["TrainScriptArguments.dataset_name"] == "rlla_4k"
        assert configs[size]["TrainScriptArguments.reward_funcs"] == ["tool_call"]
    differ = {k for k in configs["3B"] if configs["3B"][k] != configs["7B"][k]}
    assert {k.split(".", 1)[1] for k in differ} <= PER_MODEL
    assert configs["3B"]["DiPOConfig.output_dir"] == "runs/qwen25_3b_dipo_tool"
