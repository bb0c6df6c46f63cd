"""Untrusted files: a shared checkpoint's state file cannot run code; reward modules come from sys.path only."""

import pickle
import sys

import pytest
import torch

from dipo.core import DiPO, DiPOConfig
from dipo.engines import kit


class _Canary:
    """Pickles to a call of `open(path, 'w')`: loading it unsafely creates the canary file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _filled_dipo() -> DiPO:
    dipo = DiPO(DiPOConfig())
    dipo.step(torch.tensor([1.0, 0.0, 1.0, 1.0]), torch.tensor([0.2, 0.9, 0.3, 0.1]), torch.tensor([0, 0, 1, 1]))
    return dipo


@pytest.mark.parametrize("where", ["dipo", "extra"])
def test_a_crafted_state_file_runs_nothing_and_is_refused_in_one_line(tmp_path, where):
    canary = tmp_path / "canary"
    state = {"dipo": _filled_dipo().state_dict(), "refill_draws": 3}
    if where == "dipo":
        state["dipo"]["queue"] = _Canary(canary)
    else:
        state["refill_draws"] = _Canary(canary)
    path = tmp_path / kit.STATE_FILE
    torch.save(state, path)
    assert not canary.exists()
    with pytest.raises(ValueError) as err:
        kit.load_state(path, DiPO(DiPOConfig()))
    assert not canary.exists(), "loading the state file ran the payload"
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "refused" in message and "nothing in it was run" in message
    assert "io.open" in message or "builtins.open" in message
    # the same payload through plain pickle does run: the test's canary is live
    with open(tmp_path / "raw.pkl", "wb") as f:
        pickle.dump(_Canary(canary), f)
    with open(tmp_path / "raw.pkl", "rb") as f:
        pickle.load(f)
    assert canary.exists()


def test_state_files_as_written_before_the_safe_loader_still_load(tmp_path):
    """Files written by the old save (plain torch.save of the same dict) load under weights_only=True."""
    dipo = _filled_dipo()
    path = tmp_path / kit.STATE_FILE
    torch.save({"dipo": dipo.state_dict(), "refill_draws": 7}, path)  # what save_state has always written
    fresh = DiPO(DiPOConfig())
    assert kit.load_state(path, fresh)["refill_draws"] == 7
    assert fresh.state_dict() == dipo.state_dict()


def test_save_state_refuses_anything_but_plain_data(tmp_path):
    with pytest.raises(TypeError, match=r"state\['sampler'\]: set is not plain data"):
        kit.save_state(tmp_path / kit.STATE_FILE, _filled_dipo(), sampler={1, 2})
    assert not (tmp_path / kit.STATE_FILE).exists()
    kit.save_state(tmp_path / kit.STATE_FILE, _filled_dipo(), sampler=[1, 2], rng=torch.arange(3), note=None)


def test_resume_from_a_crafted_checkpoint_exits_2_and_runs_nothing(tmp_path, tiny_model_dir):
    """`dipo train --resume_from_checkpoint` on a shared checkpoint whose state file carries a payload."""
    import os
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    run = tmp_path / "run"

    def train(steps, *more):
        argv = [sys.executable, "-m", "dipo.cli", "train", "--config", str(repo / "configs/trl/testbed_math_dipo.yaml"),
                "--model_name_or_path", str(tiny_model_dir), "--output_dir", str(run), "--heldout_dataset", "none",
                "--testbed_size", "16", "--max_steps", str(steps), "--per_device_train_batch_size", "8",
                "--num_generations", "4", "--max_completion_length", "8", "--save_strategy", "steps",
                "--save_steps", "1", "--disable_tqdm", "true", *more]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo / "src")}
        return subprocess.run(argv, capture_output=True, text=True, env=env)

    first = train(1)
    assert first.returncode == 0, first.stderr[-2000:]
    state_file = run / "checkpoint-1" / kit.STATE_FILE
    state = torch.load(state_file, weights_only=True)
    canary = tmp_path / "canary"
    state["refill_draws"] = _Canary(canary)
    torch.save(state, state_file)
    resumed = train(2, "--resume_from_checkpoint", "last")
    assert resumed.returncode == 2, resumed.stderr[-2000:]
    assert not canary.exists()
    lines = [line for line in resumed.stderr.splitlines() if "refused to load the DiPO state" in line]
    assert len(lines) == 1 and str(state_file) in lines[0]
    assert "Traceback" not in resumed.stderr


def test_reward_modules_are_not_picked_up_from_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "cwd_rewards.py").write_text("def fn(completions, **kw):\n    return [1.0] * len(completions)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    with pytest.raises(ValueError, match=r"cwd_rewards.*not on sys\.path.*PYTHONPATH=\."):
        kit.reward_function("cwd_rewards:fn")
    assert str(tmp_path) not in sys.path
    monkeypatch.syspath_prepend(str(tmp_path))  # the explicit way: the user puts it on the path
    assert kit.reward_function("cwd_rewards:fn")(["a"]) == [1.0]


YAML_PAYLOAD = "model_name_or_path: testbed\nx: !!python/object/apply:os.system ['touch {canary}']\n"


def test_a_config_with_a_python_tag_runs_nothing_and_exits_2(tmp_path, capsys):
    from dipo.cli import main as dipo

    canary = tmp_path / "canary"
    (tmp_path / "evil.yaml").write_text(YAML_PAYLOAD.format(canary=canary))
    assert dipo(["train", "--config", str(tmp_path / "evil.yaml"), "--dry_run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "evil.yaml" in err[0] and "invalid YAML" in err[0]
    assert not canary.exists()


def test_analyze_reads_a_shared_run_directory_without_running_its_config(tmp_path, capsys):
    from dipo.cli import main as dipo

    canary = tmp_path / "canary"
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "dipo/frac_hard": 0.5}\n')
    (run / "config.yaml").write_text(YAML_PAYLOAD.format(canary=canary))
    assert dipo(["analyze", str(run), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "config.yaml" in err[0] and "not valid YAML" in err[0]
    assert not canary.exists()

