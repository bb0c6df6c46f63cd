"""DiPOConfig presets and validation, the YAML recipes, and `dipo train` end to end on the tiny model."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from dipo.engines.trl import DiPOConfig
from dipo.engines.trl import cli as train_cli

CONFIGS = sorted((Path(__file__).parents[1] / "configs" / "trl").glob("*.yaml"))
CPU = ["--use_vllm", "false", "--bf16", "false", "--use_cpu", "true"]
SHARED_DATA = Path(__file__).parents[1].parent / "shared" / "data"


def _config(**kw) -> DiPOConfig:
    return DiPOConfig(output_dir="/tmp/unused", use_cpu=True, bf16=False, **kw)


@pytest.mark.parametrize(("method", "loss", "eps_high", "shaping", "dynamic"), [
    ("grpo", "grpo", None, False, False),
    ("dapo", "dapo", 0.28, True, True),
    ("dipo", "dapo", 0.28, True, True),
    ("cde", "dapo", 0.28, True, True),
])
def test_method_presets(method, loss, eps_high, shaping, dynamic):
    cfg = _config(method=method)
    assert (cfg.loss_type, cfg.epsilon_high, cfg.overlong_shaping, cfg.dynamic_sampling) == (
        loss, eps_high, shaping, dynamic)
    assert cfg.epsilon == 0.2
    assert cfg.core_config().reallocate == (method == "dipo")


def test_explicit_values_beat_presets():
    cfg = _config(method="dapo", epsilon_high=0.2, dynamic_sampling=False, loss_type="bnpo")
    assert (cfg.epsilon_high, cfg.dynamic_sampling, cfg.loss_type) == (0.2, False, "bnpo")


def test_core_config_carries_the_dipo_fields():
    core = _config(method="dipo", alpha=0.3, queue_batches=4, group_rule="all", use_psd=False,
                   scale_rewards="none").core_config()
    assert (core.alpha, core.queue_batches, core.group_rule, core.use_psd, core.scale) == (0.3, 4, "all", False, "none")


@pytest.mark.parametrize(("kw", "field"), [
    ({"method": "ppo"}, "method"),
    ({"num_generations": 1}, "num_generations"),
    ({"alpha": -0.1}, "alpha"),
    ({"confidence": 1.5}, "confidence"),
    ({"group_rule": "median"}, "group_rule"),
    ({"method": "dipo", "hard_groups": False, "easy_groups": False}, "hard_groups"),
    ({"overlong_buffer_length": 600, "max_completion_length": 512}, "overlong_buffer_length"),
    ({"use_transformers_continuous_batching": True}, "use_transformers_continuous_batching"),
    ({"multi_objective_aggregation": "sum_then_average"}, "multi_objective_aggregation"),
])
def test_invalid_values_name_the_field(kw, field):
    with pytest.raises(ValueError, match=rf"DiPOConfig\.{field}="):
        _config(**kw)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_recipe_parses(path):
    script, training, model = train_cli.parse(["--config", str(path), *CPU])
    assert training.method in ("grpo", "dapo", "dipo", "cde")
    assert training.num_generations >= 2 and training.loss_type and model.model_name_or_path
    assert set(script.rewards) <= set(train_cli.REWARD_NAMES)


def test_paper_math_recipe_values():
    _, training, model = train_cli.parse(["--config", "configs/trl/qwen3_8b_base_math_dipo.yaml", *CPU])
    assert model.model_name_or_path == "Qwen/Qwen3-8B-Base"
    assert (training.num_generations, training.learning_rate, training.epsilon, training.epsilon_high) == (
        8, 1e-6, 0.2, 0.28)
    assert (training.alpha, training.heldout_k, training.method) == (0.1, 8, "dipo")


@pytest.mark.parametrize("path", [p for p in CONFIGS if not p.name.startswith("testbed")], ids=lambda p: p.name)
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_gpu_recipes_dry_run_on_the_tiny_model(tiny_model_dir, tmp_path, path, lora):
    """The paper recipes build a trainer (LoRA too) with their own settings; only the model, the
    training file (real rows from ../shared/data), device and vLLM are swapped for what this machine has."""
    script, _, _ = train_cli.parse(["--config", str(path), *CPU])
    if script.rewards == ["tool_call"]:
        data = ["--dataset", str(SHARED_DATA / "tool" / "rlla_test.jsonl")]
    elif script.reward_funcs == ["label"]:
        data = []  # the risk recipe ships with the offline testbed:risk cases
    else:
        data = ["--dataset", str(SHARED_DATA / "math" / "deepmath_train.jsonl"), "--problem_field", "problem",
                "--answer_field", "answer"]
    code = train_cli.main([
        "--config", str(path), *CPU, "--model_name_or_path", str(tiny_model_dir), "--dtype", "float32",
        *data, "--max_train_examples", "32", "--heldout_dataset", "none",
        "--output_dir", str(tmp_path), "--report_to", "none", "--use_peft", str(lora).lower(), "--dry_run", "true",
    ])
    assert code == 0
    assert not any(tmp_path.iterdir())  # a dry run writes nothing


def test_cli_rejects_bad_values_before_loading(tmp_path, capsys):
    code = train_cli.main(["--config", "configs/trl/testbed_math_dipo.yaml", "--method", "ppo", "--output_dir", str(tmp_path)])
    assert code == 2 and "DiPOConfig.method='ppo'" in capsys.readouterr().err
    code = train_cli.main(["--config", "configs/trl/testbed_math_dipo.yaml", "--rewards", "bleu", "--output_dir", str(tmp_path)])
    assert code == 2 and "rewards" in capsys.readouterr().err


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path, capsys):
    code = train_cli.main(["--config", "configs/trl/testbed_math_dipo.yaml", "--resume", "last", "--output_dir", str(tmp_path / "x")])
    assert code == 2 and "no checkpoint found" in capsys.readouterr().err


def test_cli_rejects_rows_without_the_answer_field(tiny_model_dir, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"problem": "1+1?", "solution": "2"}) + "\n")
    code = train_cli.main(["--config", "configs/trl/testbed_math_dipo.yaml", "--model_name_or_path", str(tiny_model_dir),
                           "--dataset", str(bad), "--output_dir", str(tmp_path / "run"), "--dry_run", "true"])
    assert code == 2 and "missing field 'answer'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # failed before anything was written


def test_resolved_config_round_trips(tmp_path):
    script, training, model = train_cli.parse(["--config", "configs/trl/testbed_math_dipo.yaml", "--method", "cde",
                                               "--alpha", "0.3", "--output_dir", str(tmp_path)])
    train_cli.save_resolved_config(tmp_path / "config.yaml", script, training, model)
    script2, training2, model2 = train_cli.parse(["--config", str(tmp_path / "config.yaml")])
    assert (training2.method, training2.alpha, training2.epsilon_high, training2.num_generations) == (
        "cde", 0.3, 0.28, training.num_generations)
    assert script2 == script and model2.model_name_or_path == model.model_name_or_path


def test_ctrl_c_saves_a_checkpoint_and_resume_finishes(tiny_model_dir, tmp_path, monkeypatch):
    def interrupt_during_first_step(self, args, state, control, **kwargs):
        if state.global_step == 0:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends

    monkeypatch.setattr(train_cli.GracefulInterrupt, "on_step_begin", interrupt_during_first_step, raising=False)
    argv = ["--config", "configs/trl/testbed_math_dipo.yaml", "--model_name_or_path", str(tiny_model_dir),
            "--output_dir", str(tmp_path), "--heldout_dataset", "none", "--testbed_size", "16",
            "--max_steps", "2", "--per_device_train_batch_size", "8", "--num_generations", "4",
            "--max_completion_length", "12", "--save_strategy", "no", "--disable_tqdm", "true"]
    assert train_cli.main(argv) == 130
    assert (tmp_path / "checkpoint-1" / "dipo_state.pt").exists()
    assert train_cli.main([*argv, "--resume", "last"]) == 0
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines if "loss" in m] == [1, 2]  # one training line per step, none lost
    assert (tmp_path / "final" / "config.json").exists() and (tmp_path / "rollouts" / "step-000002.parquet").exists()
