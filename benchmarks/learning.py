"""Paired learning benchmark on the CPU testbed: DiPO vs DAPO (+ ablations, + GRPO) with common random numbers.

Protocol (variants, schedule, seeds, metrics, the one primary comparison): benchmarks/learning.md.

Every variant of a seed starts from the same SFT'd testbed weights, trains on the same prompts in
the same order (TRL's sampler seeded by the run seed) and draws its rollouts from the same sampling
stream (`sampling_seed_per_step`: torch's RNG reseeded from (seed, step, round) before every
generation round), so per-seed differences cancel the noise the variants share. For each variant
the script reports the per-seed paired difference to DAPO in final held-out accuracy, held-out
accuracy AUC and final pass@k, with 95% CIs (Student t and percentile bootstrap over seeds), plus
per-variant means of the zero-advantage share, final entropy, BRR firings and PSD validity.

    python benchmarks/learning.py --jobs 2                     # default grid (see --help), 2 runs at a time
    python benchmarks/learning.py --jobs 16                    # a 16-core machine: the grid in one sitting
    python benchmarks/learning.py --seeds 0 1 --methods dapo dipo --steps 10   # a smoke run

Finished runs are reused (a run directory with a final model and held-out curve is not trained
again), so an interrupted benchmark continues where it stopped.
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
BASELINE = "dapo"
PRIMARY = ("dipo", "final_eval_accuracy")  # the one primary comparison: DiPO - DAPO in final held-out accuracy
PAIRED_METRICS = ["final_eval_accuracy", "eval_accuracy_auc", "final_pass_at_k"]
DESCRIPTIVE_METRICS = ["initial_eval_accuracy", "zero_advantage_fraction", "final_entropy", "brr_firings",
                       "split_valid_fraction", "frac_easy", "frac_hard"]
BOOTSTRAP_RESAMPLES = 10_000


def _finite(values) -> np.ndarray:
    return np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)


def t_interval(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the two-sided Student t interval mean ± t_{(1+c)/2, n-1} * s / sqrt(n) over
    the finite values; low/high NaN with fewer than 2 values, everything NaN with none."""
    from dipo.analysis.stats import mean_ci

    mean, half, _ = mean_ci(_finite(values), confidence)
    return mean, mean - half, mean + half


def bootstrap_interval(values, confidence: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean: resample the n values with replacement `resamples`
    times (fixed `seed`: the same numbers give the same interval), take the (1-c)/2 and (1+c)/2
    quantiles of the resampled means. NaN with fewer than 2 finite values."""
    x = _finite(values)
    if len(x) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    alpha = (1 - confidence) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def paired_difference(results: list[dict], variant: str, baseline: str, metric: str,
                      confidence: float = 0.95) -> dict:
    """Per-seed differences `metric(variant, s) - metric(baseline, s)` over the seeds both ran (and
    both have a finite value), their mean, t interval and bootstrap interval."""
    by_seed = {(r["variant"], r["seed"]): r.get(metric) for r in results}
    seeds = sorted({s for v, s in by_seed if v == variant} & {s for v, s in by_seed if v == baseline})
    pairs = [(s, by_seed[(variant, s)], by_seed[(baseline, s)]) for s in seeds]
    pairs = [(s, a, b) for s, a, b in pairs if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]
    diffs = [a - b for _, a, b in pairs]
    mean, low, high = t_interval(diffs, confidence)
    boot_low, boot_high = bootstrap_interval(diffs, confidence)
    return {"variant": variant, "baseline": baseline, "metric": metric, "seeds": [s for s, _, _ in pairs],
            "differences": diffs, "mean": mean, "t_ci": [low, high], "bootstrap_ci": [boot_low, boot_high],
            "n": len(diffs)}


def run_one(model_dir: Path, name: str, seed: int, run_dir: Path, schedule: dict, learning_rate: float) -> dict:
    import torch

    torch.set_num_threads(1)  # one thread per run: on a small CPU, parallel runs beat threads
    from dipo.analysis import load_run, summarize
    from dipo.demo import train_argv
    from dipo.engines.trl.cli import main as train_main

    method, extra = VARIANTS[name]
    seconds = float("nan")
    done = (run_dir / "metrics.jsonl").exists() and (run_dir / "final").exists() \
        and len(load_run(run_dir).series("eval/accuracy")[0])
    if not done:
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)  # an unfinished run restarts from scratch (same seed: same result)
        started = time.perf_counter()
        code = train_main(train_argv(model_dir, method, run_dir, seed, schedule, learning_rate,
                                     sampling_seed_per_step="true", **extra))
        seconds = time.perf_counter() - started
        if code != 0:
            raise RuntimeError(f"{name} seed {seed}: dipo train exited with {code}")
    run = load_run(run_dir, name)
    summary = summarize(run)
    pass_at_k = run.series(f"eval/pass@{schedule['heldout_k']}")[1]
    return {"variant": name, "seed": seed, "seconds": seconds,
            "final_pass_at_k": float(pass_at_k[-1]) if len(pass_at_k) else float("nan"),
            **{k: summary[k] for k in PAIRED_METRICS + DESCRIPTIVE_METRICS if k in summary}}


def aggregate(results: list[dict], variants: list[str]) -> dict:
    """Per variant: seed count and (mean, t low, t high) of every metric."""
    out = {}
    for variant in variants:
        rows = [r for r in results if r["variant"] == variant]
        if rows:
            out[variant] = {"seeds": len(rows), **{k: list(t_interval([r.get(k) for r in rows]))
                                                   for k in PAIRED_METRICS + DESCRIPTIVE_METRICS}}
    return out


def comparisons(results: list[dict], variants: list[str]) -> list[dict]:
    """Every variant other than the baseline against DAPO, in every paired metric."""
    return [paired_difference(results, v, BASELINE, m) for v in variants if v != BASELINE for m in PAIRED_METRICS]


def _num(x: float, signed: bool = False) -> str:
    return "–" if x is None or not math.isfinite(x) else (f"{x:+.3f}" if signed else f"{x:.3f}")


def _interval(low: float, high: float) -> str:
    return "–" if not (math.isfinite(low) and math.isfinite(high)) else f"[{low:+.3f}, {high:+.3f}]"


def markdown(results: list[dict], summary: dict, paired: list[dict], settings: dict) -> str:
    variant, metric = PRIMARY
    primary = next((p for p in paired if p["variant"] == variant and p["metric"] == metric), None)
    lines = ["# Learning benchmark (CPU testbed, paired)", "",
             "Protocol: benchmarks/learning.md. Settings: `" + json.dumps(settings) + "`", ""]
    if primary and primary["n"]:
        lines += [f"**Primary comparison** ({variant.upper()} − {BASELINE.upper()}, final held-out accuracy, "
                  f"{primary['n']} seeds): {_num(primary['mean'], True)}, 95% CI t "
                  f"{_interval(*primary['t_ci'])}, bootstrap {_interval(*primary['bootstrap_ci'])}.", ""]
    lines += ["## Paired differences to DAPO (per seed: variant − DAPO; mean, 95% CI t / bootstrap)", "",
              "| variant | seeds | Δ final acc. | t CI | bootstrap CI | Δ acc. AUC | t CI | Δ final pass@k | t CI |",
              "|---|---|---|---|---|---|---|---|---|"]
    for v in dict.fromkeys(p["variant"] for p in paired):
        cells = {p["metric"]: p for p in paired if p["variant"] == v}
        acc, auc_, pk = cells["final_eval_accuracy"], cells["eval_accuracy_auc"], cells["final_pass_at_k"]
        lines.append(f"| {v} | {acc['n']} | {_num(acc['mean'], True)} | {_interval(*acc['t_ci'])} | "
                     f"{_interval(*acc['bootstrap_ci'])} | {_num(auc_['mean'], True)} | {_interval(*auc_['t_ci'])} | "
                     f"{_num(pk['mean'], True)} | {_interval(*pk['t_ci'])} |")
    lines += ["", "## Per variant (mean over seeds, 95% t CI)", "",
              "| variant | seeds | step-0 acc. | final acc. | acc. AUC | final pass@k | zero-adv. groups | "
              "final entropy | BRR firings | PSD valid |", "|---|---|---|---|---|---|---|---|---|---|"]

    def cell(v: str, k: str) -> str:
        mean, low, high = summary[v][k]
        return _num(mean) + ("" if not math.isfinite(low) else f" ± {(high - low) / 2:.3f}")

    for v in summary:
        lines.append(f"| {v} | {summary[v]['seeds']} | " + " | ".join(cell(v, k) for k in (
            "initial_eval_accuracy", "final_eval_accuracy", "eval_accuracy_auc", "final_pass_at_k",
            "zero_advantage_fraction", "final_entropy", "brr_firings", "split_valid_fraction")) + " |")
    lines += ["", "## Per run", "", "| variant | seed | final acc. | AUC | pass@k | zero-adv. | entropy | BRR | seconds |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['variant']} | {r['seed']} | {_num(r['final_eval_accuracy'])} | "
                     f"{_num(r['eval_accuracy_auc'])} | {_num(r['final_pass_at_k'])} | "
                     f"{_num(r['zero_advantage_fraction'])} | {_num(r['final_entropy'])} | "
                     f"{r['brr_firings']:.0f} | {_num(r['seconds']).split('.')[0]} |")
    return "\n".join(lines) + "\n"


def write_results(out: Path, results: list[dict], variants: list[str], settings: dict) -> None:
    summary, paired = aggregate(results, variants), comparisons(results, variants)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"settings": settings, "primary": {"variant": PRIMARY[0], "baseline": BASELINE, "metric": PRIMARY[1]},
               "paired": paired, "aggregate": summary, "runs": results}
    out.with_suffix(".json").write_text(json.dumps(payload, indent=2, allow_nan=True))
    out.with_suffix(".md").write_text(markdown(results, summary, paired, settings))


def main(argv: list[str] | None = None) -> int:
    from dipo.demo import LEARNING_RATE, SCHEDULE
    from dipo.testbed.tasks import RL_TEMPERATURE

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["dapo", "dipo", "dipo-hard-only", "dipo-easy-only", "grpo"],
                        choices=list(VARIANTS), help="variants (DAPO, the baseline of every comparison, is added)")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(range(8)))
    parser.add_argument("--steps", type=int, default=SCHEDULE["max_steps"], help="training steps per run")
    parser.add_argument("--prompts-per-step", type=int, default=SCHEDULE["per_device_train_batch_size"] // 8,
                        help="prompts per step (x G=8 samples)")
    parser.add_argument("--eval-every", type=int, default=SCHEDULE["heldout_eval_steps"],
                        help="held-out evaluation interval (steps)")
    parser.add_argument("--heldout", type=int, default=SCHEDULE["heldout_max_problems"],
                        help="held-out problems per evaluation")
    parser.add_argument("--heldout-k", type=int, default=SCHEDULE["heldout_k"],
                        help="samples per held-out problem (mean@k, pass@k)")
    parser.add_argument("--learning-rate", type=float, default=LEARNING_RATE)
    parser.add_argument("--temperature", type=float, default=RL_TEMPERATURE, help="RL sampling temperature")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time, each in its own process")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/learning"), help="where run directories go")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/learning"),
                        help="output path stem: writes STEM.json and STEM.md")
    args = parser.parse_args(argv)
    if min(args.jobs, args.prompts_per_step, args.steps, args.heldout, args.heldout_k) < 1:
        parser.error("--jobs, --prompts-per-step, --steps, --heldout and --heldout-k must be >= 1")
    variants = list(dict.fromkeys([BASELINE, *args.methods]))

    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from dipo.testbed.build import build_testbed

    model_dir = build_testbed()
    schedule = {**SCHEDULE, "max_steps": args.steps, "per_device_train_batch_size": 8 * args.prompts_per_step,
                "heldout_eval_steps": args.eval_every, "heldout_max_problems": args.heldout,
                "heldout_k": args.heldout_k, "temperature": args.temperature}
    settings = {**schedule, "learning_rate": args.learning_rate, "group_size": 8, "seeds": args.seeds,
                "sampling_seed_per_step": True, "testbed": str(model_dir)}
    # seeds outermost: a partial benchmark still pairs every variant with DAPO
    jobs = [(name, seed) for seed in args.seeds for name in variants]
    results: list[dict] = []
    started = time.perf_counter()
    from dipo._cli_util import die_with_parent

    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=die_with_parent) as pool:  # a killed benchmark leaves no run training on
        futures = {pool.submit(run_one, model_dir, name, seed, args.runs_dir / f"{name}-seed{seed}", schedule,
                               args.learning_rate): (name, seed) for name, seed in jobs}
        for future in as_completed(futures):
            name, seed = futures[future]
            results.append(future.result())
            print(f"== {name} seed {seed}: final held-out accuracy {results[-1]['final_eval_accuracy']:.3f} "
                  f"({len(results)}/{len(jobs)}, {time.perf_counter() - started:.0f}s)", flush=True)
            results.sort(key=lambda r: (r["seed"], variants.index(r["variant"])))
            write_results(args.out, results, variants, {**settings, "wall_seconds": time.perf_counter() - started})
    print(args.out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
