"""Common random numbers: two methods of one seed see the same prompts in the same order and draw from the same
sampling stream (`sampling_seed_per_step`), judged from the rollout records of two tiny runs."""

from __future__ import annotations

import pandas as pd
import pytest

from dipo.demo import train_argv

TINY = {"max_steps": 3, "per_device_train_batch_size": 16, "testbed_size": 32, "heldout_eval_steps": 0,
        "heldout_max_problems": 8, "heldout_k": 1}


def _round0(run_dir) -> pd.DataFrame:
    """Round-0 records (the step's own prompts; later rounds are dynamic sampling's refills), in sample order."""
    frames = [pd.read_parquet(f) for f in sorted((run_dir / "rollouts").glob("step-*.parquet"))]
    records = pd.concat(frames, ignore_index=True)
    return records[records["round"] == 0].reset_index(drop=True)


def _train(model_dir, method, run_dir, paired: bool) -> pd.DataFrame:
    from dipo.engines.trl.cli import main as train_main

    # learning rate 0: both policies stay the initial model, so any difference is the data or the RNG stream
    argv = train_argv(model_dir, method, run_dir, seed=5, schedule=TINY, learning_rate=0.0,
                      max_completion_length=8, sampling_seed_per_step=str(paired).lower())
    assert train_main(argv) == 0
    return _round0(run_dir)


@pytest.mark.slow
def test_two_methods_of_one_seed_share_prompts_and_sampling_stream(tiny_model_dir, tmp_path):
    grpo = _train(tiny_model_dir, "grpo", tmp_path / "grpo", paired=True)
    dapo = _train(tiny_model_dir, "dapo", tmp_path / "dapo", paired=True)
    dapo_records = pd.concat([pd.read_parquet(f) for f in (tmp_path / "dapo" / "rollouts").glob("*.parquet")])
    assert dapo_records["round"].max() >= 1  # DAPO refilled (the random model solves nothing): it drew more samples
    assert list(grpo["step"]) == list(dapo["step"]) and sorted(set(grpo["step"])) == [1, 2, 3]
    assert list(grpo["prompt_id"]) == list(dapo["prompt_id"])  # same prompts, same order
    assert grpo["prompt_id"].nunique() == 3 * 2  # fresh prompts every step, 2 prompts x G=8
    # same sampling stream at every step although DAPO's refills consumed extra random numbers
    assert list(grpo["length"]) == list(dapo["length"])
    assert grpo["logppl"].to_numpy() == pytest.approx(dapo["logppl"].to_numpy(), abs=1e-5)


@pytest.mark.slow
def test_without_per_step_seeds_the_streams_part_after_a_refill(tiny_model_dir, tmp_path):
    """The control: TRL's single stream is shared at step 1 only (what the test above guards against)."""
    grpo = _train(tiny_model_dir, "grpo", tmp_path / "grpo", paired=False)
    dapo = _train(tiny_model_dir, "dapo", tmp_path / "dapo", paired=False)
    first = grpo["step"] == 1
    assert list(grpo["prompt_id"]) == list(dapo["prompt_id"])
    assert grpo["logppl"][first].to_numpy() == pytest.approx(dapo["logppl"][first].to_numpy(), abs=1e-5)
    assert grpo["logppl"][~first].to_numpy() != pytest.approx(dapo["logppl"][~first].to_numpy(), abs=1e-5)
