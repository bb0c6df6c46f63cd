"""Every TRL recipe in configs/trl runs as shipped: `dipo train --dry_run` builds its trainer with only the
model swapped for a tiny one and the device for CPU (no vLLM, no bf16 autocast). Its data comes from where
the recipe says: short names that `dipo data prepare` fills (here from fixture rows written by the real
conversion into $DIPO_DATA_DIR) or ../shared/data. The verl recipes have their own test in
tests/verl/test_verl_recipes.py (they need the verl environment)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dipo.data import prepare as prep
from dipo.data import read_records
from dipo.engines.trl import cli as train_cli

REPO = Path(__file__).parents[1]
RECIPES = sorted((REPO / "configs" / "trl").glob("*.yaml"))
CPU = ["--use_vllm", "false", "--bf16", "false", "--use_cpu", "true"]
SHARED = REPO.parent / "shared" / "data"
NAME = __import__("re").compile(r"^[a-z0-9]+(_[a-z0-9]+)*_(math|tool|arith|risk)_(grpo|dapo|dipo|cde)\.yaml$")


@pytest.fixture(scope="module")
def prepared_data_dir(tmp_path_factory) -> Path:
    """A data directory as `dipo data prepare dapo_math_17k rlla_4k` writes it, from fixture rows."""
    out = tmp_path_factory.mktemp("data")
    dapo = [{"prompt": [{"role": "user", "content": "... is the answer to the problem.\n\n"
                         f"What is ${i}+{i}$?\n\nRemember to put your answer on its own line after \"Answer:\"."}],
             "reward_model": {"ground_truth": str(2 * i)}} for i in range(40)]
    prep.write_outputs("dapo_math_17k", prep.convert_dapo_math({"dapo.parquet": dapo}), out)
    rlla = read_records(SHARED / "tool" / "rlla_test.jsonl")
    prep.write_outputs("rlla_4k", prep.convert_rlla({"train.parquet": rlla[:64], "test.parquet": rlla[64:]}), out)
    return out


def test_recipes_follow_one_naming_scheme():
    names = [p.name for p in RECIPES] + [p.name for p in (REPO / "configs" / "verl").glob("*.yaml")]
    assert names and not list((REPO / "configs").glob("*.yaml")), "recipes live in configs/trl or configs/verl"
    assert [n for n in names if not NAME.match(n)] == []


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_dry_runs_as_shipped(path, tiny_model_dir, prepared_data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DIPO_DATA_DIR", str(prepared_data_dir))
    monkeypatch.chdir(tmp_path)  # the recipe's own (relative) output_dir would land here: it must not
    built = []
    build = train_cli.build_trainer
    monkeypatch.setattr(train_cli, "build_trainer", lambda *a, **k: built.append(build(*a, **k)) or built[-1])
    code = train_cli.main(["--config", str(path), "--model_name_or_path", str(tiny_model_dir), *CPU, "--dry_run", "true"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "dry run OK" in captured.out
    assert not any(tmp_path.iterdir())  # a dry run writes nothing
    callbacks = {type(c).__name__ for c in built[0].callback_handler.callbacks}
    if "tensorboard" in built[0].args.report_to:  # the recipe's logging back-end is installed and active
        assert "TensorBoardCallback" in callbacks
    assert len(built[0].train_dataset) > 0


def test_paper_recipes_agree_with_the_paper():
    # the recipes write only what differs from the defaults (tests/test_recipes_minimal.py): compare parsed values
    trl = {p.stem: train_cli.parse(["--config", str(p), *CPU]) for p in RECIPES}
    script, math, _ = trl["qwen3_8b_base_math_dipo"]
    assert (script.dataset_name, math.dynamic_sampling, script.reward_funcs) == ("dapo_math_17k", True, ["math"])
    assert (math.num_generations, math.learning_rate, math.epsilon, math.epsilon_high) == (8, 1e-6, 0.2, 0.28)
    assert (math.alpha, math.queue_batches, math.confidence) == (0.1, 2, 0.95)
    assert math.correctness_reward_funcs == ["0"]  # the verifier alone decides group kinds and accuracy
    verl = yaml.safe_load((REPO / "configs" / "verl" / "qwen3_8b_base_math_dipo.yaml").read_text())
    assert verl["data"]["train_files"].endswith("/verl/dapo_math_17k.parquet")  # same prepared data
    assert verl["algorithm"]["filter_groups"]["enable"]  # dynamic sampling in both
    assert verl["reward"]["custom_reward_function"]["reward_kwargs"]["reward_fn"] == "dipo.rewards:math_reward"  # 0/1
    assert verl["reward"]["reward_kwargs"]["overlong_buffer_cfg"]["len"] == math.overlong_buffer_length
    assert verl["data"]["max_response_length"] == math.max_completion_length
    assert verl["actor_rollout_ref"]["rollout"]["n"] == math.num_generations
    for size in ("3b", "7b"):
        script, _, model = trl[f"qwen25_{size}_instruct_tool_dipo"]
        assert model.model_name_or_path == f"Qwen/Qwen2.5-{size.upper()}-Instruct"
        assert (script.dataset_name, script.reward_funcs) == ("rlla_4k", ["tool_call"])
