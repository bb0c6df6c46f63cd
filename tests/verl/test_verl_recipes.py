"""Every verl recipe in configs/verl passes the DiPO launcher's config check (verl's validate_config plus
DiPO's) as shipped, with only the model swapped for a tiny one and the device for CPU; its data paths
point at the files `dipo data prepare` writes, and its reward is dipo's 0/1 verifier (the TRL recipes' scale)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("verl.protocol")  # not bare "verl": tests/verl itself would satisfy that
pytestmark = pytest.mark.verl

import pyarrow.parquet as pq  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from dipo.data import prepare as prep  # noqa: E402
from dipo.data import read_records  # noqa: E402
from dipo.engines.verl.main import check_config  # noqa: E402
from dipo.engines.verl.rewards import compute_score  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO / "configs" / "verl").glob("*.yaml"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """verl parquet files as `dipo data prepare dapo_math_17k aime24 rlla_4k` writes them (fixture rows)."""
    out = tmp_path_factory.mktemp("data")
    dapo = [{"prompt": [{"role": "user", "content": "... is the answer to the problem.\n\nWhat is $2+3$?"}],
             "reward_model": {"ground_truth": "5"}}]
    prep.write_outputs("dapo_math_17k", prep.convert_dapo_math({"f": dapo}), out)
    prep.write_outputs("aime24", prep.SOURCES["aime24"].convert({"train": [{"problem": "1+1?", "answer": "2"}]}), out)
    rlla = read_records(REPO.parent / "shared" / "data" / "tool" / "rlla_test.jsonl")
    prep.write_outputs("rlla_4k", prep.convert_rlla({"train.parquet": rlla[:8], "test.parquet": rlla[8:]}), out)
    return out


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_verl_recipe_passes_the_launcher_check_as_shipped(path, data_dir, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("DIPO_DATA_DIR", str(data_dir))
    with initialize_config_dir(config_dir=str(path.parent), version_base=None):
        cfg = compose(config_name=path.stem, overrides=[f"actor_rollout_ref.model.path={tiny_model_dir}",
                                                        "trainer.device=cpu"])
    check_config(cfg)
    assert cfg.algorithm.filter_groups.enable and cfg.actor_rollout_ref.rollout.calculate_log_probs
    for files in (cfg.data.train_files, cfg.data.val_files):
        rows = pq.read_table(files).to_pylist()
        assert rows and rows[0]["prompt"][-1]["role"] == "user" and rows[0]["reward_model"]["ground_truth"]
    reward = cfg.reward.custom_reward_function
    assert reward.path == "pkg://dipo.engines.verl.rewards" and reward.name == "compute_score"
    row = pq.read_table(cfg.data.train_files).to_pylist()[0]
    gold = row["reward_model"]["ground_truth"]
    # ToolRL's gold is the whole answer text (<tool_call> tags included); maths answers go in \boxed{}
    completion = gold if "tool" in path.stem else f"\\boxed{{{gold}}}"
    score = compute_score(row["data_source"], completion, gold, {}, **reward.reward_kwargs)
    assert score == {"score": 1.0, "acc": 1.0}
