"""One error path for every `dipo` subcommand, TRL's names, both flag spellings, run-directory rules.

The table drives `dipo.cli.main` with each kind of bad input and expects exactly one error line on
stderr naming the problem, no traceback, and exit code 2.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from dipo.cli import main as dipo

RECIPE = "configs/trl/testbed_math_dipo.yaml"


@pytest.fixture()
def files(tmp_path):
    """Bad inputs of every kind, written once per test."""
    (tmp_path / "bad.yaml").write_text("model_name_or_path: testbed\nalpha: [1\nbeta: 2\n")
    (tmp_path / "typo.yaml").write_text("model_name_or_path: testbed\nlerning_rate: 0.1\n")
    (tmp_path / "wrongtype.yaml").write_text("model_name_or_path: testbed\nlearning_rate: fast\n")
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "not_a_model").mkdir()
    run = tmp_path / "old_run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "reward": 0.5}\n')
    (run / "config.yaml").write_text("method: dipo\n")
    results = tmp_path / "eval_out"
    results.mkdir()
    (results / "results.json").write_text("{}")
    (tmp_path / "demo_out").mkdir()
    (tmp_path / "demo_out" / "report.html").write_text("<html></html>")
    return tmp_path


def T(*argv):  # noqa: N802 - a row of the table
    return list(argv)


# (id, argv with {tmp} for the fixture folder, text the error line must contain)
CASES = [
    ("train-missing-config", T("train", "--config", "{tmp}/nope.yaml"), "nope.yaml: No such file"),
    ("train-config-is-dir", T("train", "--config", "{tmp}"), "is a directory"),
    ("train-bad-yaml", T("train", "--config", "{tmp}/bad.yaml"), "line 3, column"),
    ("train-unknown-key", T("train", "--config", "{tmp}/typo.yaml"), "lerning_rate (did you mean learning_rate?)"),
    ("train-yaml-wrong-type", T("train", "--config", "{tmp}/wrongtype.yaml"), "invalid float value: 'fast'"),
    ("train-flag-wrong-type", T("train", "--model_name_or_path", "testbed", "--alpha", "x"), "invalid float value"),
    ("train-unknown-flag", T("train", "--model_name_or_path", "testbed", "--lerning-rate", "3"),
     "did you mean --learning-rate?"),
    ("train-bad-method", T("train", "--model_name_or_path", "testbed", "--method", "ppo"), "DiPOConfig.method='ppo'"),
    ("train-no-arguments", T("train"), "no model: pass --model_name_or_path"),
    ("train-model-not-a-model", T("train", "--model_name_or_path", "{tmp}/not_a_model", "--output_dir", "{tmp}/r"),
     "not a model directory (no config.json)"),
    ("train-model-missing", T("train", "--model_name_or_path", "{tmp}/gone/model", "--output_dir", "{tmp}/r"),
     "no such model directory"),
    ("train-model-is-file", T("train", "--model_name_or_path", "{tmp}/a_file", "--output_dir", "{tmp}/r"),
     "is a file, not a model directory"),
    ("train-unknown-testbed-task", T("train", "--config", RECIPE, "--dataset_name", "testbed:chess",
                                     "--output_dir", "{tmp}/r"), "unknown testbed task 'testbed:chess'"),
    ("train-missing-dataset-file", T("train", "--config", RECIPE, "--dataset_name", "{tmp}/none.jsonl",
                                     "--output_dir", "{tmp}/r"), "none.jsonl"),
    ("train-unknown-reward", T("train", "--config", RECIPE, "--reward_funcs", "maths"), "maths (did you mean math?)"),
    ("train-reward-bad-import", T("train", "--config", RECIPE, "--reward_funcs", "no_such_pkg.rewards:fn",
                                  "--output_dir", "{tmp}/r"), "cannot import 'no_such_pkg.rewards'"),
    ("train-reward-no-function", T("train", "--config", RECIPE, "--reward_funcs", "dipo.rewards:no_fn",
                                   "--output_dir", "{tmp}/r"), "dipo.rewards has no function 'no_fn'"),
    ("train-output-dir-is-file", T("train", "--config", RECIPE, "--output_dir", "{tmp}/a_file"), "is a file"),
    ("train-existing-run", T("train", "--config", RECIPE, "--output_dir", "{tmp}/old_run"),
     "already holds a run (config.yaml, metrics.jsonl)"),
    ("train-resume-nothing", T("train", "--config", RECIPE, "--output_dir", "{tmp}/old_run",
                               "--resume_from_checkpoint", "last"), "no checkpoint found"),
    ("train-resume-bad-path", T("train", "--config", RECIPE, "--resume_from_checkpoint", "{tmp}/no-ckpt"),
     "no such checkpoint directory"),
    ("eval-model-missing", T("eval", "--model", "{tmp}/gone/model", "--benchmarks", "aime24", "--output", "{tmp}/e"),
     "no such model directory"),
    ("eval-model-not-a-model", T("eval", "--model", "{tmp}/not_a_model", "--benchmarks", "aime24",
                                 "--output", "{tmp}/e"), "not a model directory"),
    ("eval-unknown-benchmark", T("eval", "--model", "x", "--benchmarks", "aime99", "--output", "{tmp}/e"), "aime99"),
    ("eval-bad-k", T("eval", "--model", "x", "--k", "0", "--output", "{tmp}/e"), "--k must be >= 1"),
    ("eval-wrong-type-underscore", T("eval", "--model", "x", "--max_new_tokens", "many"), "invalid int value"),
    ("eval-results-exist", T("eval", "--model", "x", "--output", "{tmp}/eval_out"), "already holds results"),
    ("eval-no-model", T("eval", "--benchmarks", "aime24"), "--model is required"),
    ("analyze-not-a-run", T("analyze", "{tmp}"), "not a run directory (no metrics.jsonl)"),
    ("analyze-steps-without-records", T("analyze", "{tmp}/old_run", "--steps", "999"),
     "--steps 999: run"),
    ("analyze-unknown-flag", T("analyze", "{tmp}/old_run", "--step", "1", "--titel", "x"), "did you mean --title?"),
    ("testbed-wrong-type", T("testbed", "--hidden_size", "big"), "invalid int value: 'big'"),
    ("testbed-no-check-prompts", T("testbed", "--check", "--check-prompts", "0"), "--check-prompts 0: must be >= 1"),
    ("demo-negative-jobs", T("demo", "--jobs", "-2", "--out", "{tmp}/d"), "--jobs -2: must be >= 0"),
    ("demo-unknown-method", T("demo", "--methods", "dapo,ppo", "--out", "{tmp}/d"), "--methods dapo,ppo"),
    ("demo-twice-into-one-folder", T("demo", "--out", "{tmp}/demo_out"), "not empty (a previous demo?)"),
    ("unknown-command", T("trian"), "unknown command trian (did you mean train?)"),
]


@pytest.mark.parametrize("name,argv,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_on_stderr_and_exit_2(files, capsys, monkeypatch, name, argv, expected):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # the recipes' relative paths
    code = dipo([a.replace("{tmp}", str(files)) for a in argv])
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.strip() and ": warning:" not in line]
    assert code == 2, captured.err
    assert len(errors) == 1 and errors[0].startswith("dipo") and "error" in errors[0], captured.err
    assert expected in errors[0]
    assert "Traceback" not in captured.err and "bf16" not in captured.err
    assert not (files / "r").exists() and not (files / "e").exists() and not (files / "d").exists()


def test_debug_shows_the_traceback(tmp_path, capsys):
    assert dipo(["train", "--config", str(tmp_path / "nope.yaml"), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("dipo train: error:")


# -- TRL's names, both spellings ----------------------------------------------------------------------


def test_trl_names_and_deprecated_aliases(capsys):
    from dipo.engines.trl.cli import parse

    script, training, _ = parse(["--config", RECIPE, "--dataset-name", "math500", "--reward-funcs", "math",
                                 "--dataset_test_split", "valid", "--resume_from_checkpoint", "last"])
    assert (script.dataset_name, script.reward_funcs, script.dataset_test_split) == ("math500", ["math"], "valid")
    assert training.resume_from_checkpoint == "last"
    capsys.readouterr()
    old, _, _ = parse(["--config", RECIPE, "--dataset", "aime24", "--rewards", "tool_call", "--heldout_split", "x",
                       "--dataset-split", "y"])
    assert (old.dataset_name, old.reward_funcs, old.dataset_test_split, old.dataset_train_split) == (
        "aime24", ["tool_call"], "x", "y")
    err = capsys.readouterr().err
    for name, new in (("--dataset", "--dataset_name"), ("--rewards", "--reward_funcs"), ("--heldout_split",
                                                                                       "--dataset_test_split")):
        assert f"'{name}' is deprecated, use '{new}'" in err


def test_deprecated_yaml_keys_still_load(tmp_path, capsys):
    from dipo.engines.trl.cli import parse

    (tmp_path / "old.yaml").write_text("model_name_or_path: testbed\ndataset: aime24\nrewards: [math]\nresume: last\n")
    script, training, _ = parse(["--config", str(tmp_path / "old.yaml")])
    assert (script.dataset_name, script.reward_funcs, training.resume_from_checkpoint) == ("aime24", ["math"], "last")
    assert "'resume' is deprecated, use 'resume_from_checkpoint'" in capsys.readouterr().err


def test_reward_funcs_take_dotted_paths(tmp_path, monkeypatch):
    from dipo.engines.trl.data import reward_functions
    from dipo.rewards import math_reward

    (tmp_path / "my_rewards.py").write_text("def brevity(completions, **kw):\n    return [1.0] * len(completions)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    funcs = reward_functions(["math", "my_rewards:brevity", "my_rewards.brevity", "dipo.rewards.math_reward"])
    assert funcs[0] is math_reward and funcs[1] is funcs[2] and funcs[1].__name__ == "brevity"
    assert funcs[3] is math_reward


@pytest.mark.parametrize("module,argv,dest,value", [
    ("dipo.eval.cli", ["--max_new_tokens", "7", "--top_p", "0.5"], "max_new_tokens", 7),
    ("dipo.eval.cli", ["--max-new-tokens", "7"], "max_new_tokens", 7),
    ("dipo.testbed.cli", ["--hidden_size", "24"], "hidden_size", 24),
    ("dipo.testbed.cli", ["--check_prompts", "5"], "check_prompts", 5),
])
def test_every_subcommand_takes_both_spellings(module, argv, dest, value):
    import importlib

    mod = importlib.import_module(module)
    parser = mod.build_parser() if hasattr(mod, "build_parser") else mod._parser()
    assert getattr(parser.parse_args(argv), dest) == value


def test_dispatcher_accepts_both_spellings_for_any_parser(capsys):
    assert dipo(["core-example", "--group_size", "4", "--prompts", "8", "--steps", "1"]) == 0
    assert "step 1:" in capsys.readouterr().out


def test_train_help_shows_dipo_first():
    from dipo.engines.trl.cli import build_parser

    text = build_parser().format_help()
    head = "\n".join(text.splitlines()[:60])
    assert text.startswith("usage: dipo train --config FILE")
    for needed in ("--config FILE", "--method {grpo,dapo,dipo,cde}", "--alpha FLOAT", "--group_rule {mean,all,any}",
                   "--queue_batches INT", "--dataset_name", "--reward_funcs", "--resume_from_checkpoint"):
        assert needed in head, needed
    assert text.index("--alpha") < text.index("--dataset_name STR") < text.index("--learning_rate FLOAT")
    assert len(text.splitlines()) < 700  # was 1,412 lines


# -- run directory ---------------------------------------------------------------------------------------


def test_dry_run_prints_the_preset_and_writes_nothing(tiny_model_dir, tmp_path, capsys):
    from dipo.engines.trl import cli

    out = tmp_path / "run"
    code = cli.main(["--config", RECIPE, "--model_name_or_path", str(tiny_model_dir), "--method", "dapo",
                     "--output_dir", str(out), "--dry_run", "--testbed_size", "16", "--heldout_dataset", "none"])
    assert code == 0 and not out.exists()
    text = capsys.readouterr().out
    assert "method dapo" in text and "loss_type=dapo" in text and "epsilon_high=0.28" in text
    assert "dynamic_sampling=True" in text and "DiPO BRR: off" in text


class _FakeTrainer:
    """Records what `dipo train` passes to `train()`; writes a checkpoint like the real one."""

    def __init__(self, run_dir):
        from types import SimpleNamespace

        self.run_dir, self.resumed_from = run_dir, "not called"
        self.accelerator = SimpleNamespace(is_main_process=True)
        self.state = SimpleNamespace(global_step=0)
        self.callbacks, self.train_dataset = [], [{"prompt": "1+1?"}]

    def add_callback(self, callback):
        self.callbacks.append(callback)

    def train(self, resume_from_checkpoint=None):
        self.resumed_from = resume_from_checkpoint
        (self.run_dir / "metrics.jsonl").write_text('{"step": 1}\n')

    def save_model(self, path):
        Path(path).mkdir(parents=True, exist_ok=True)


def _fake_checkpoint(run_dir: Path, step: int, complete: bool = True) -> Path:
    folder = run_dir / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text("{}")
    if complete:
        (folder / "dipo_state.pt").write_bytes(b"state")
    return folder


@pytest.fixture()
def fake_trainer(monkeypatch, tmp_path):
    from dipo.engines.trl import cli

    made = []

    def build(script, training, model_args):
        made.append(_FakeTrainer(Path(training.output_dir)))
        return made[-1]

    monkeypatch.setattr(cli, "build_trainer", build)
    monkeypatch.setattr(cli, "check_model_path", lambda *a, **k: None)
    return made


def test_resume_from_checkpoint_is_passed_on_not_ignored(fake_trainer, tmp_path, capsys):
    from dipo.engines.trl import cli

    run = tmp_path / "run"
    good = _fake_checkpoint(run, 2)
    _fake_checkpoint(run, 4, complete=False)  # a save killed half-way
    argv = ["--config", RECIPE, "--output_dir", str(run)]
    assert cli.main([*argv, "--resume_from_checkpoint", "last"]) == 0
    assert fake_trainer[-1].resumed_from == str(good)
    assert "skipping incomplete checkpoint" in capsys.readouterr().err
    assert cli.main([*argv, "--resume_from_checkpoint", str(good)]) == 0
    assert fake_trainer[-1].resumed_from == str(good)
    assert cli.main([*argv, "--resume", "true"]) == 0
    assert fake_trainer[-1].resumed_from == str(good)


def test_existing_run_needs_overwrite_which_clears_it(fake_trainer, tmp_path, capsys):
    from dipo.engines.trl import cli

    run = tmp_path / "run"
    argv = ["--config", RECIPE, "--output_dir", str(run)]
    assert cli.main(argv) == 0 and (run / "config.yaml").exists()
    assert cli.main(argv) == 2 and "already holds a run" in capsys.readouterr().err
    _fake_checkpoint(run, 3)
    (run / "notes.txt").write_text("mine")
    assert cli.main([*argv, "--overwrite_output_dir"]) == 0
    assert not (run / "checkpoint-3").exists() and (run / "notes.txt").exists()  # only dipo's files go
    assert (run / "metrics.jsonl").read_text() == '{"step": 1}\n'  # not appended to the old log


def test_lock_file_stops_a_second_writer(fake_trainer, tmp_path, capsys):
    from dipo.engines.trl import cli

    run = tmp_path / "run"
    held = cli.RunLock(run)  # another dipo train writing there
    try:
        assert cli.main(["--config", RECIPE, "--output_dir", str(run)]) == 2
        assert f"in use by another dipo train (pid {os.getpid()})" in capsys.readouterr().err
    finally:
        held.release()
    assert cli.main(["--config", RECIPE, "--output_dir", str(run)]) == 0  # free again once released


def test_sigterm_saves_like_sigint(tiny_model_dir, tmp_path, monkeypatch):
    from dipo.engines.trl import cli

    def terminate_during_first_step(self, args, state, control, **kwargs):
        if state.global_step == 0:
            os.kill(os.getpid(), signal.SIGTERM)  # what SLURM / Kubernetes send before a kill

    monkeypatch.setattr(cli.GracefulInterrupt, "on_step_begin", terminate_during_first_step, raising=False)
    argv = ["--config", RECIPE, "--model_name_or_path", str(tiny_model_dir), "--output_dir", str(tmp_path / "r"),
            "--heldout_dataset", "none", "--testbed_size", "16", "--max_steps", "2",
            "--per_device_train_batch_size", "8", "--num_generations", "4", "--max_completion_length", "12",
            "--save_strategy", "no", "--disable_tqdm", "true"]
    assert cli.main(argv) == 128 + signal.SIGTERM
    assert (tmp_path / "r" / "checkpoint-1" / "dipo_state.pt").exists()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored


def test_eval_output_dirs_never_collide():
    from dipo.eval.cli import build_parser, default_output

    assert default_output("runs/A/final") != default_output("runs/B/final")
    assert default_output("Qwen/Qwen3-8B") == Path("eval_results/Qwen_Qwen3-8B")
    args = build_parser().parse_args(["--model", "m"])
    assert (args.k, args.temperature, args.top_p, args.max_new_tokens) == (8, 0.6, 0.95, 32768)


def test_metrics_log_tolerates_a_torn_last_line(tmp_path):
    from dipo.analysis.runs import load_run
    from dipo.engines.kit import append_metrics, truncate_metrics

    log = tmp_path / "metrics.jsonl"
    append_metrics(log, 1, {"reward": 0.5})
    with log.open("a") as f:
        f.write('{"step": 2, "rew')  # the process died mid-write
    with pytest.warns(UserWarning, match="torn last line"):
        assert list(load_run(tmp_path).metrics["step"]) == [1]
    truncate_metrics(log, 1)  # what a resume from checkpoint-1 does
    append_metrics(log, 2, {"reward": 0.7})
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2]


def test_console_shows_no_metric_dicts_unless_log_level_debug():
    from types import SimpleNamespace

    from dipo._progress import QuietProgressCallback

    class Bar:
        def __init__(self):
            self.written, self.postfix = [], {}

        def write(self, text):
            self.written.append(text)

        def set_postfix(self, values, refresh=True):
            self.postfix = values

    callback, state = QuietProgressCallback(), SimpleNamespace(is_world_process_zero=True)
    callback.training_bar = Bar()
    logs = {"reward": 0.5, "loss": 0.1, "dipo/fired_hard": 2.0, "eval/accuracy": 0.25}
    callback.on_log(SimpleNamespace(log_level="passive"), state, None, logs=logs)
    assert callback.training_bar.written == [] and callback.training_bar.postfix == {
        "reward": "0.5", "heldout_acc": "0.25", "loss": "0.1"}
    callback.on_log(SimpleNamespace(log_level="debug"), state, None, logs=logs)
    assert "dipo/fired_hard" in callback.training_bar.written[0]


def test_a_misspelt_dataset_name_suggests_the_registered_one(capsys):
    assert dipo(["probe", "--model", "testbed", "--dataset", "testbed"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did you mean testbed:math?" in err[0]
    assert dipo(["train", "--config", RECIPE, "--dataset_name", "testbd:math", "--dry_run"]) == 2
    assert "did you mean testbed:math?" in capsys.readouterr().err


def test_smollm2_without_its_extra_names_the_install_in_one_line(tmp_path, monkeypatch):
    import importlib.util

    from dipo.eval import gguf

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    (tmp_path / "x.gguf").write_bytes(b"GGUF")
    with pytest.raises(FileNotFoundError, match=r"pip install 'dipo-rl\[smollm2\]'"):
        gguf.convert_gguf_to_hf(tmp_path / "x.gguf", tmp_path / "out")
