"""`dipo demo`: the training arguments it builds are valid `dipo train` configs; --quick runs end to end (slow)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from dipo.demo import QUICK, SCHEDULE, _steps_done, main, train_argv
from dipo.testbed.tasks import RL_LEVELS, RL_TEMPERATURE

FIGURES = ["group_kinds.png", "logppl.png", "entropy.png", "accuracy.png", "quadrants.png"]


@pytest.mark.parametrize("method", ["dapo", "dipo"])
def test_demo_runs_share_one_schedule_and_parse_as_train_configs(tmp_path, method):
    from dipo.engines.trl.cli import parse

    script, training, model = parse(train_argv(Path("/some/model"), method, tmp_path / method, seed=3,
                                               schedule=QUICK))
    assert training.method == method and training.seed == 3 and model.model_name_or_path == "/some/model"
    assert training.max_steps == QUICK["max_steps"] and training.num_generations == 8
    assert training.per_device_train_batch_size == 32 and training.temperature == RL_TEMPERATURE
    assert training.sampling_seed_per_step  # paired: both methods of a seed share the sampling stream
    assert script.dataset == script.heldout_dataset == "testbed:math" and script.rewards == ["math"]
    # only the method and the output directory differ between the two demo runs
    other = "dipo" if method == "dapo" else "dapo"
    a = train_argv(Path("m"), method, Path("x"), schedule=SCHEDULE)
    b = train_argv(Path("m"), other, Path("x"), schedule=SCHEDULE)
    assert [x for x, y in zip(a, b) if x != y] == [method]


def test_demo_trains_on_the_testbed_rl_levels(tmp_path):
    from dipo.engines.trl.cli import parse

    script, _, _ = parse(train_argv(Path("m"), "dapo", tmp_path))
    assert tuple(script.testbed_levels) == RL_LEVELS


def test_steps_done_counts_logged_training_steps(tmp_path):
    assert _steps_done(tmp_path / "missing") == 0  # before the run has written anything
    (tmp_path / "metrics.jsonl").write_text('{"step": 0, "eval/accuracy": 0.3}\n{"step": 1, "loss": 0.1}\n'
                                            '{"step": 2, "loss": 0.2}\n{"step": 2, "train_runtime": 1.0}\n')
    assert _steps_done(tmp_path) == 2


def test_ablation_overrides_reach_the_config(tmp_path):
    from dipo.engines.trl.cli import parse

    _, training, _ = parse(train_argv(Path("m"), "dipo", tmp_path, easy_groups="false"))
    assert training.hard_groups and not training.easy_groups


@pytest.mark.slow
@pytest.mark.parametrize("jobs", [1, 2])  # one after the other, and side by side in two processes
def test_quick_demo_end_to_end(tmp_path, capsys, jobs):
    assert main(["--quick", "--out", str(tmp_path), "--jobs", str(jobs)]) == 0
    report = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert report == tmp_path / "report.html"
    page = report.read_text()
    for name in FIGURES:
        assert (tmp_path / name).stat().st_size > 10_000 and f'src="{name}"' in page
    assert "Held-out accuracy" in page and "DAPO" in page and "DIPO" in page
    for method in ("dapo", "dipo"):
        assert (tmp_path / method / "metrics.jsonl").exists()
        assert len(list((tmp_path / method / "rollouts").glob("step-*.parquet"))) == QUICK["max_steps"]
        assert (tmp_path / f"{method}.log").exists() == (jobs > 1)  # side by side: each run's console in a log



def test_side_by_side_training_reports_each_failed_run_with_its_log(tmp_path):
    """A run that fails in its worker process comes back as its exit code, its one-line error in its log."""
    from dipo.demo import train_in_parallel

    argv = train_argv(tmp_path / "no_such_model", "dapo", tmp_path / "dapo", schedule=QUICK)
    runs = train_in_parallel({"dapo": argv}, tmp_path, jobs=1, max_steps=QUICK["max_steps"])
    assert [(r.method, r.return_code) for r in runs] == [("dapo", 2)]
    assert "no_such_model" in (tmp_path / "dapo.log").read_text()


POOL_SCRIPT = """
import multiprocessing, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from dipo._cli_util import die_with_parent
if __name__ == "__main__":
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=die_with_parent) as pool:
        print(pool.submit(os.getpid).result(), flush=True)  # the one worker's pid
        pool.submit(time.sleep, 120).result()
"""


def _alive(pid: int) -> bool:
    try:
        return " Z " not in Path(f"/proc/{pid}/stat").read_text()  # a zombie has exited already
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_pool_workers_die_with_a_killed_parent(tmp_path):
    """`dipo demo` and the learning benchmark run their training in pool workers: killing the parent
    (SIGKILL, no chance to clean up) must not leave them training on."""
    script = tmp_path / "pool.py"
    script.write_text(POOL_SCRIPT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    assert _alive(worker)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 20
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(worker)
