"""Learning benchmark on the CPU testbed: GRPO vs DAPO vs DiPO (+ BRR hard-only / easy-only ablations,
and DiPO with group_rule=any).

Every (method, seed) run starts from the same SFT'd testbed model and gets the same schedule and
compute (steps x prompts x G samples), through `dipo train` (the TRL engine). Each run's directory
is summarised with `dipo.analysis.summarize`; the script writes per-run results and, per method,
the mean with a 95% confidence interval (Student t over seeds) of: final held-out accuracy
(mean@k), area under the held-out accuracy curve (mean accuracy over training), fraction of
zero-advantage groups, final policy entropy, BRR firings, and the share of steps with a valid PSD split.

    python benchmarks/learning.py                       # 6 variants x 3 seeds, 100 steps x 8 prompts x G=8
    python benchmarks/learning.py --seeds 0 1 2 3 4 --steps 60 --methods dapo dipo
    python benchmarks/learning.py --jobs 2              # two runs at a time (one torch thread each)
    python benchmarks/learning.py --out benchmarks/results/learning   # -> .json and .md

Finished runs are reused (a run directory with a final evaluation is not trained again), so an
interrupted benchmark continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

# name -> (method, extra DiPOConfig fields)
VARIANTS = {
    "grpo": ("grpo", {}),
    "dapo": ("dapo", {}),
    "dipo": ("dipo", {}),
    "dipo-hard-only": ("dipo", {"easy_groups": "false"}),  # max-PPL reward on hard groups only
    "dipo-easy-only": ("dipo", {"hard_groups": "false"}),  # max-PPL penalty on easy groups only
    "dipo-group-any": ("dipo", {"group_rule": "any"}),  # a group lies in a space if any sample does
}
METRICS = ["initial_eval_accuracy", "final_eval_accuracy", "eval_accuracy_auc", "zero_advantage_fraction", "final_entropy", "brr_firings",
           "split_valid_fraction", "frac_easy", "frac_hard"]
# two-sided 95% Student t quantiles by degrees of freedom (no scipy dependency)
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def mean_ci(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% t interval); half-width NaN with fewer than 2 finite values."""
    x = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(x) == 0:
        return float("nan"), float("nan")
    if len(x) < 2:
        return float(x.mean()), float("nan")
    t = T95.get(len(x) - 1, 1.96)
    return float(x.mean()), float(t * x.std(ddof=1) / math.sqrt(len(x)))


def run_one(model_dir: Path, name: str, seed: int, run_dir: Path, schedule: dict, learning_rate: float) -> dict:
    import torch

    torch.set_num_threads(1)  # one thread per run: on a small CPU, parallel runs beat threads
    from dipo.analysis import load_run, summarize
    from dipo.engines.trl.cli import main as train_main
    from dipo.testbed.demo import train_argv

    method, extra = VARIANTS[name]
    done = run_dir / "metrics.jsonl"
    seconds = float("nan")
    if not (done.exists() and len(load_run(run_dir).series("eval/accuracy")[0]) and (run_dir / "final").exists()):
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)  # an unfinished run restarts from scratch (same seed: same result)
        started = time.perf_counter()
        code = train_main(train_argv(model_dir, method, run_dir, seed, schedule, learning_rate, **extra))
        seconds = time.perf_counter() - started
        if code != 0:
            raise RuntimeError(f"{name} seed {seed}: dipo train exited with {code}")
    summary = summarize(load_run(run_dir, name))
    return {"variant": name, "seed": seed, "seconds": seconds, **{k: summary[k] for k in METRICS}}


def markdown(results: list[dict], aggregate: dict, settings: dict) -> str:
    lines = [
        "# Learning benchmark (CPU testbed)", "",
        f"Settings: {json.dumps(settings)}", "",
        "Mean over seeds ± 95% CI half-width (Student t). AUC = mean held-out accuracy over training.", "",
        "| variant | seeds | step-0 acc. | final held-out acc. | acc. AUC | zero-adv. groups | final entropy | BRR firings | PSD valid |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def fmt(name: str, key: str) -> str:
        mean, half = aggregate[name][key]
        return "–" if math.isnan(mean) else (f"{mean:.3f}" + ("" if math.isnan(half) else f" ± {half:.3f}"))

    for name in aggregate:
        lines.append(f"| {name} | {aggregate[name]['seeds']} | " + " | ".join(
            fmt(name, k) for k in ("initial_eval_accuracy", "final_eval_accuracy", "eval_accuracy_auc", "zero_advantage_fraction",
                                   "final_entropy", "brr_firings", "split_valid_fraction")) + " |")
    lines += ["", "Per run:", "", "| variant | seed | final acc. | AUC | zero-adv. | entropy | seconds |", "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['variant']} | {r['seed']} | {r['final_eval_accuracy']:.3f} | {r['eval_accuracy_auc']:.3f} | "
                     f"{r['zero_advantage_fraction']:.3f} | {r['final_entropy']:.3f} | {r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def aggregate_runs(results: list[dict], variants: list[str]) -> dict:
    out = {}
    for variant in variants:
        rows = [r for r in results if r["variant"] == variant]
        if rows:
            out[variant] = {"seeds": len(rows), **{k: mean_ci([r[k] for r in rows]) for k in METRICS}}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=100, help="training steps per run")
    parser.add_argument("--prompts-per-step", type=int, default=8, help="prompts per step (x G=8 samples)")
    parser.add_argument("--eval-every", type=int, default=20, help="held-out evaluation interval (steps)")
    parser.add_argument("--heldout", type=int, default=120, help="held-out problems per evaluation")
    parser.add_argument("--heldout-k", type=int, default=4, help="samples per held-out problem (mean@k)")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time, each in its own process")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/learning"), help="where run directories go")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/learning"),
                        help="output path stem: writes STEM.json and STEM.md")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.prompts_per_step < 1 or args.steps < 1:
        parser.error("--jobs, --prompts-per-step and --steps must be >= 1")

    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from dipo.testbed.build import build_testbed

    model_dir = build_testbed()
    schedule = {"max_steps": args.steps, "per_device_train_batch_size": 8 * args.prompts_per_step,
                "testbed_size": 1024, "heldout_eval_steps": args.eval_every, "heldout_max_problems": args.heldout,
                "heldout_k": args.heldout_k}
    settings = {**schedule, "learning_rate": args.learning_rate, "prompts_per_step": args.prompts_per_step,
                "group_size": 8, "testbed": str(model_dir)}
    # seeds outermost: a partial benchmark still compares every method
    jobs = [(name, seed) for seed in args.seeds for name in args.methods]
    results = []
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_one, model_dir, name, seed, args.runs_dir / f"{name}-seed{seed}", schedule,
                               args.learning_rate): (name, seed) for name, seed in jobs}
        for future in as_completed(futures):
            name, seed = futures[future]
            results.append(future.result())
            print(f"== {name} seed {seed}: final held-out accuracy {results[-1]['final_eval_accuracy']:.3f} "
                  f"({len(results)}/{len(jobs)})", flush=True)
            results.sort(key=lambda r: (r["seed"], args.methods.index(r["variant"])))
            aggregate = aggregate_runs(results, args.methods)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            payload = {"settings": settings, "runs": results,
                       "aggregate": {v: {k: (list(x) if isinstance(x, tuple) else x) for k, x in a.items()}
                                     for v, a in aggregate.items()}}
            args.out.with_suffix(".json").write_text(json.dumps(payload, indent=2, allow_nan=True))
            args.out.with_suffix(".md").write_text(markdown(results, aggregate, settings))
    print(args.out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
