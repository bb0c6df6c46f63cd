"""`dipo demo [--quick] [--out DIR] [--jobs N]`: DAPO vs DiPO on the offline CPU testbed, with a report.

Builds (or loads from the cache) the SFT-warm-started tiny model, trains DAPO and DiPO from it on
the same prompts, seed, sampling stream and schedule with the TRL engine (`dipo train`), side by
side in one process each, evaluates both on the held-out synthetic problems during and after
training, prints a held-out table and writes an HTML report (`dipo analyze` plots of both runs + the
table) into the run directory, whose path it prints.
"""

from __future__ import annotations

import argparse
import html
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from dipo._cli_util import (
    ArgumentParser,
    UsageError,
    add_debug_flag,
    die_with_parent,
    filter_known_warnings,
    run_cli,
)
from dipo.data.run_files import METRICS_FILE
from dipo.testbed.tasks import RL_LEVELS, RL_TEMPERATURE

# The training schedule; both methods get exactly the same (QUICK for --quick)
# (per_device_train_batch_size = prompts per step x G=8).
SCHEDULE = {"max_steps": 100, "per_device_train_batch_size": 64, "testbed_size": 512, "heldout_eval_steps": 20,
            "heldout_max_problems": 100, "heldout_k": 4}
QUICK = {"max_steps": 6, "per_device_train_batch_size": 32, "testbed_size": 64, "heldout_eval_steps": 3,
         "heldout_max_problems": 30, "heldout_k": 2}
LEARNING_RATE = 2e-4  # RL learning rate (constant): 1e-4 barely moves the testbed, 3e-4 and above degrade it


@dataclass
class DemoRun:
    method: str
    run_dir: Path
    seconds: float
    return_code: int


def train_argv(model_dir: Path, method: str, run_dir: Path, seed: int = 0, schedule: dict | None = None,
               learning_rate: float = LEARNING_RATE, **overrides) -> list[str]:
    """`dipo train` arguments of one testbed run: G=8 samples per prompt, 80-token completions,
    held-out evaluation on the disjoint synthetic split; `schedule` sets the steps, batch and
    evaluation (default SCHEDULE), `overrides` any other DiPOConfig field."""
    args = {
        "model_name_or_path": str(model_dir), "method": method, "output_dir": str(run_dir), "seed": seed,
        "dataset_name": "testbed:math", "heldout_dataset": "testbed:math", "reward_funcs": "math",
        "testbed_levels": RL_LEVELS,  # easy to hard, with the warm start's confident guesses to unlearn
        "use_cpu": "true", "bf16": "false", "learning_rate": learning_rate, "lr_scheduler_type": "constant",
        "warmup_steps": 0, "num_generations": 8, "max_completion_length": 80,
        "temperature": RL_TEMPERATURE, "logging_steps": 1, "save_strategy": "no", "report_to": "none",
        "sampling_seed_per_step": "true",  # common random numbers: methods of one seed share the sampling stream
        **(schedule or SCHEDULE), **overrides,
    }
    argv = []
    for key, value in args.items():
        argv += [f"--{key}", *(map(str, value) if isinstance(value, (list, tuple)) else [str(value)])]
    return argv


def _train_logged(argv: list[str], log_path: Path) -> int:
    """`dipo train argv` in this (child) process with one torch thread, console output to `log_path`."""
    import contextlib

    import torch

    torch.set_num_threads(1)
    from dipo.engines.trl.cli import main as train_main

    with open(log_path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        return train_main(argv)


def _steps_done(run_dir: Path) -> int:
    """Training steps logged so far in a run's metrics.jsonl (lines with a loss)."""
    try:
        return (run_dir / METRICS_FILE).read_text().count('"loss"')
    except OSError:
        return 0


def train_in_parallel(argvs: dict[str, list[str]], out: Path, jobs: int, max_steps: int) -> list[DemoRun]:
    """Train each method's run in its own process (`jobs` at a time), one progress bar over all steps."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, wait

    from tqdm.auto import tqdm

    started, finished = time.perf_counter(), {}
    # die_with_parent: a killed demo leaves no run training on (each saves a checkpoint on the SIGTERM)
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=die_with_parent) as pool:
        futures = {pool.submit(_train_logged, argv, out / f"{method}.log"): method for method, argv in argvs.items()}
        with tqdm(total=max_steps * len(argvs), unit="step", desc="training") as bar:
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=2.0)
                for future in done:
                    finished[futures[future]] = time.perf_counter() - started
                bar.update(sum(min(_steps_done(out / m), max_steps) for m in argvs) - bar.n)
    return [DemoRun(m, out / m, finished[m], f.result()) for f, m in futures.items()]


def heldout_rows(runs: list[DemoRun], loaded: list) -> list[tuple[str, str, str, str, str]]:
    """Per method: (name, held-out accuracy at the first evaluation, at the last, the change, training
    seconds), as text; `loaded` holds each run's `dipo.analysis.load_run`, in the same order."""
    rows = []
    for run, data in zip(runs, loaded):
        steps, acc = data.series("eval/accuracy")
        first = f"{acc[0]:.3f} (step {int(steps[0])})" if len(acc) else "–"
        last = f"{acc[-1]:.3f} (step {int(steps[-1])})" if len(acc) else "–"
        change = f"{acc[-1] - acc[0]:+.3f}" if len(acc) > 1 else "–"
        rows.append((run.method.upper(), first, last, change, f"{run.seconds:.0f}"))
    return rows


HELDOUT_COLUMNS = ("method", "first evaluation", "final evaluation", "change", "training seconds")


def heldout_note(schedule: dict) -> str:
    """What one seed can and cannot show, under both held-out tables."""
    return (f"One seed: held-out mean@{schedule['heldout_k']} on {schedule['heldout_max_problems']} problems, so a "
            "difference of a few points between methods is within seed noise (benchmarks/learning.py pairs 8 "
            "seeds with confidence intervals).")


def heldout_table(rows: list[tuple[str, ...]], schedule: dict = SCHEDULE) -> str:
    """HTML table of `heldout_rows`, with `heldout_note`."""
    head = "".join(f"<th>{c}</th>" for c in HELDOUT_COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<h2>Held-out accuracy</h2><table><tr>{head}</tr>{body}</table><p>{html.escape(heldout_note(schedule))}</p>"


def console_table(rows: list[tuple[str, ...]], schedule: dict = SCHEDULE) -> str:
    """`heldout_rows` as aligned text for the terminal, with `heldout_note`."""
    rows = [HELDOUT_COLUMNS, *rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HELDOUT_COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(["held-out accuracy", *lines, heldout_note(schedule)])


def demo(argv: list[str]) -> int:
    parser = ArgumentParser(prog="dipo demo", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a pipeline check: 6 steps, small held-out set (about 15 s with the testbed cached)")
    parser.add_argument("--out", type=Path, default=None,
                        help="run directory (default: runs/demo-<time>); a folder that is not empty is refused "
                             "unless --overwrite")
    parser.add_argument("--overwrite", action="store_true", help="replace a previous demo in --out")
    parser.add_argument("--seed", type=int, default=0, help="seed of both training runs")
    parser.add_argument("--learning-rate", type=float, default=LEARNING_RATE, help="RL learning rate of both runs")
    parser.add_argument("--methods", default="dapo,dipo", help="comma-separated methods to compare")
    parser.add_argument("--jobs", type=int, default=0,
                        help="runs trained at a time, each in its own process with one thread (default: one per "
                             "method, up to the CPU count; 1 trains them one after the other with a bar each)")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    from dipo.engines.trl.config import METHODS

    if args.jobs < 0:
        raise UsageError(f"--jobs {args.jobs}: must be >= 0 (0 = one per method, up to the CPU count)")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods or any(m not in METHODS for m in methods) or len(set(methods)) != len(methods):
        raise UsageError(f"--methods {args.methods}: give distinct methods from {METHODS}, comma-separated")
    out = args.out or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file, not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not args.overwrite:  # two demos in one folder would merge into one report
            raise UsageError(f"--out {out}: not empty (a previous demo?); pass --overwrite to replace it, or "
                             "another --out")
        for method in methods:
            shutil.rmtree(out / method, ignore_errors=True)

    filter_known_warnings()
    import torch

    torch.set_num_threads(1)  # fastest on a small shared CPU; the tiny model gains nothing from more
    from dipo.analysis import load_run, write_report
    from dipo.engines.trl.cli import main as train_main
    from dipo.testbed.build import build_testbed

    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print("[1/3] testbed model (cached after the first build) ...", flush=True)
    model_dir = build_testbed()
    print(f"      {model_dir}", flush=True)
    schedule = QUICK if args.quick else SCHEDULE
    argvs = {m: train_argv(model_dir, m, out / m, args.seed, schedule, args.learning_rate) for m in methods}
    jobs = min(args.jobs or os.cpu_count() or 1, len(methods))
    if jobs == 1:
        runs = []
        for i, method in enumerate(methods, start=1):
            print(f"[2/3] training {method.upper()} ({i}/{len(methods)}) ...", flush=True)
            t0 = time.perf_counter()
            code = train_main(argvs[method])
            runs.append(DemoRun(method, out / method, time.perf_counter() - t0, code))
            if code != 0:
                break
    else:
        print(f"[2/3] training {', '.join(m.upper() for m in methods)} side by side ({jobs} processes; "
              f"logs in {out}/<method>.log) ...", flush=True)
        runs = train_in_parallel(argvs, out, jobs, schedule["max_steps"])
    for run in runs:
        if run.return_code != 0:
            what = "stopped" if run.return_code in (130, 143) else "failed"  # Ctrl-C / SIGTERM: checkpoint saved
            print(f"dipo demo: training {run.method} {what} (exit code {run.return_code}; see "
                  f"{out / (run.method + '.log') if jobs > 1 else 'above'})", file=sys.stderr)
            return run.return_code
    print("[3/3] report ...", flush=True)
    loaded = [load_run(r.run_dir, r.method.upper()) for r in runs]  # each run's records read once
    rows = heldout_rows(runs, loaded)
    report = write_report(loaded, out, title="dipo demo: DAPO vs DiPO on the CPU testbed",
                          extra_html=heldout_table(rows, schedule))
    print(console_table(rows, schedule))
    print(f"done in {time.perf_counter() - started:.0f}s")
    print(report)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli("dipo demo", demo, argv)
