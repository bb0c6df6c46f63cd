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
again), so an interrupted benchmark continues where it stopped; with `--commit` every finished run is
also committed to git, and a run already in the committed results file (same settings) is not trained
again either, so a later session continues the grid from a fresh checkout. Each run's results keep
its curves (held-out accuracy, entropy, group kinds per step, late log-PPL of right and wrong
samples), from which `benchmarks/mechanism.py` draws the paper's analysis figures.

The long-horizon protocol (benchmarks/long_horizon.md):

    python benchmarks/learning.py --pilot --jobs 2 --commit       # DAPO/GRPO pilot -> the step count
    python benchmarks/learning.py --long --jobs 2 --commit        # the benchmark, then dose-response
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
    # dose-response (long_horizon.md): alpha, and BRR without PSD
    "dipo-a0.3": ("dipo", {"alpha": "0.3"}),
    "dipo-a1": ("dipo", {"alpha": "1.0"}),
    **{f"dipo-nopsd-a{a}": ("dipo", {"alpha": a, "use_psd": "false"}) for a in ("0.1", "0.3", "1.0")},
    # Fig. 5, BRR's rewards alone: a constant verifier reward makes every group extreme; the real maths
    # reward rides along with weight 0, so its accuracy is logged (rewards/math_reward/mean) but never trains
    "brr-reward": ("dipo", {"reward_funcs": ["mechanism:always_wrong", "math"], "reward_weights": [1, 0],
                            "use_psd": "false", "easy_groups": "false", "alpha": "1.0", "heldout_dataset": "none"}),
    "brr-penalty": ("dipo", {"reward_funcs": ["mechanism:always_right", "math"], "reward_weights": [1, 0],
                             "use_psd": "false", "hard_groups": "false", "alpha": "1.0", "heldout_dataset": "none"}),
}
LATE_STEPS = 10  # the "late step" of Figs. 1 and 7: log-PPL of right and wrong samples over the last 10 steps
BASELINE = "dapo"
PRIMARY = ("dipo", "final_eval_accuracy")  # the one primary comparison: DiPO - DAPO in final held-out accuracy
PAIRED_METRICS = ["final_eval_accuracy", "eval_accuracy_auc", "final_pass_at_k", "best_eval_accuracy",
                  "final_entropy"]
DESCRIPTIVE_METRICS = ["initial_eval_accuracy", "zero_advantage_fraction", "brr_firings",
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
    import sys

    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:  # `mechanism:always_wrong` and friends (Fig. 5); a worker runs several runs
        sys.path.insert(0, here)
    from dipo.analysis import load_run, summarize
    from dipo.demo import train_argv
    from dipo.engines.trl.cli import main as train_main

    method, extra = VARIANTS[name]
    seconds = float("nan")
    done = (run_dir / "metrics.jsonl").exists() and (run_dir / "final").exists() \
        and (extra.get("heldout_dataset") == "none" or len(load_run(run_dir).series("eval/accuracy")[0]))
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
            **{k: summary[k] for k in PAIRED_METRICS + DESCRIPTIVE_METRICS if k in summary},
            "curves": run_curves(run)}


def _floats(values) -> list:
    return [round(float(v), 5) if math.isfinite(float(v)) else None for v in values]


def run_curves(run) -> dict:
    """A run's curves, small enough to commit: held-out accuracy per evaluation; entropy, verifier
    accuracy, group-kind shares (every sampled group, refill rounds too) and the PSD threshold per
    step; and the log-PPL of right and wrong samples over the last LATE_STEPS steps."""
    curves = {}
    for key, name in (("eval/accuracy", "eval_accuracy"), ("entropy", "entropy"), ("dipo/threshold", "threshold"),
                      ("rewards/math_reward/mean", "math_reward")):
        steps, values = run.series(key)
        if len(steps):
            curves[name] = {"steps": [int(x) for x in steps], "values": _floats(values)}
    groups = run.groups
    if len(groups):
        shares = groups.groupby("step")["group_kind"].value_counts(normalize=True).unstack(fill_value=0.0)
        curves["group_kinds"] = {"steps": [int(x) for x in shares.index],
                                 **{k: _floats(shares[k]) if k in shares else [0.0] * len(shares)
                                    for k in ("easy", "normal", "hard")}}
    from dipo.core import is_correct

    rollouts = run.rollouts
    if len(rollouts):
        late = rollouts[rollouts["step"] > rollouts["step"].max() - LATE_STEPS]
        right = is_correct(late["reward"].to_numpy())  # the project's one correctness rule (verifier reward)
        curves["late_logppl"] = {"first_step": int(late["step"].min()), "last_step": int(late["step"].max()),
                                 "right": _floats(late.loc[right, "logppl"]),
                                 "wrong": _floats(late.loc[~right, "logppl"])}
    return curves


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
              "| variant | seeds | Δ final acc. | t CI | bootstrap CI | Δ acc. AUC | t CI | Δ final pass@k | t CI | "
              "Δ best acc. | t CI | Δ final entropy | t CI |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for v in dict.fromkeys(p["variant"] for p in paired):
        cells = {p["metric"]: p for p in paired if p["variant"] == v}
        acc, auc_, pk = cells["final_eval_accuracy"], cells["eval_accuracy_auc"], cells["final_pass_at_k"]
        best, ent = cells["best_eval_accuracy"], cells["final_entropy"]
        lines.append(f"| {v} | {acc['n']} | {_num(acc['mean'], True)} | {_interval(*acc['t_ci'])} | "
                     f"{_interval(*acc['bootstrap_ci'])} | {_num(auc_['mean'], True)} | {_interval(*auc_['t_ci'])} | "
                     f"{_num(pk['mean'], True)} | {_interval(*pk['t_ci'])} | {_num(best['mean'], True)} | "
                     f"{_interval(*best['t_ci'])} | {_num(ent['mean'], True)} | {_interval(*ent['t_ci'])} |")
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


def write_results(out: Path, results: list[dict], variants: list[str], settings: dict,
                  decision: dict | None = None) -> None:
    summary, paired = aggregate(results, variants), comparisons(results, variants)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"settings": settings, "primary": {"variant": PRIMARY[0], "baseline": BASELINE, "metric": PRIMARY[1]},
               "paired": paired, "aggregate": summary, "runs": results, **({"decision": decision} if decision else {})}
    out.with_suffix(".json").write_text(json.dumps(payload, indent=2, allow_nan=True))
    text = markdown(results, summary, paired, settings)
    if decision:
        text += ("\n## Step count (long_horizon.md's plateau rule, from these baseline runs only)\n\n"
                 f"Mean held-out accuracy of {', '.join(decision['runs'])} by step: "
                 + ", ".join(f"{s}: {a:.3f}" for s, a in zip(decision["steps"], decision["mean_accuracy"]))
                 + f".\nPlateau step P = {decision['plateau_step']}; benchmark run length L = {decision['run_length']}"
                 + (" (DAPO had not plateaued by the pilot's end)" if decision["plateau_step"] is None else "") + ".\n")
    out.with_suffix(".md").write_text(text)


PILOT_OUT = Path("benchmarks/results/learning_long_pilot")
LONG_METHODS = ["dapo", "dipo", "dipo-a0.3", "dipo-a1"]


def plateau_length(steps: list[int], accuracy: list[float], max_steps: int = 500, min_plateau: int = 150,
                   tolerance: float = 0.01, margin: int = 150) -> tuple[int | None, int]:
    """long_horizon.md's rule: `m` = 3-point moving average of the mean pilot accuracy `a(s)` over the
    evaluation steps; the plateau step P is the smallest s >= min_plateau after which no m(s') exceeds
    m(s) by `tolerance`; the run length is min(P + margin, max_steps) rounded up to a multiple of 50
    (max_steps when there is no such P). Returns (P or None, length)."""
    a = np.asarray(accuracy, dtype=float)
    m = np.array([a[max(i - 1, 0):i + 2].mean() for i in range(len(a))])
    for i, s in enumerate(steps):
        if s >= min_plateau and i + 1 < len(steps) and m[i + 1:].max() - m[i] < tolerance:
            return int(s), int(min(math.ceil((s + margin) / 50) * 50, max_steps))
    return None, max_steps


def pilot_decision(pilot: dict) -> dict:
    """The step count from the committed pilot results: mean held-out accuracy of the pilot runs per
    evaluation step (steps every run evaluated), the plateau step and the run length."""
    curves = [r["curves"]["eval_accuracy"] for r in pilot["runs"]]
    steps = sorted(set.intersection(*[set(c["steps"]) for c in curves]))
    mean = [float(np.mean([c["values"][c["steps"].index(s)] for c in curves])) for s in steps]
    plateau, length = plateau_length(steps, mean, max_steps=max(steps))
    return {"steps": steps, "mean_accuracy": mean, "plateau_step": plateau, "run_length": length,
            "runs": [f"{r['variant']}-seed{r['seed']}" for r in pilot["runs"]]}


def apply_protocol(args, parser, pilot: bool) -> None:
    """long_horizon.md's settings for --pilot / --long (explicit flags other than these keep their value)."""
    args.eval_every = 50
    if pilot:
        args.methods, args.seeds, args.steps, args.out = ["dapo", "grpo"], [100, 101], 500, PILOT_OUT
        args.runs_dir = Path("runs/learning_long_pilot")
        return
    path = PILOT_OUT.with_suffix(".json")
    if not path.is_file():
        parser.error(f"--long needs the pilot's results ({path}): run --pilot first")
    decision = json.loads(path.read_text()).get("decision") or pilot_decision(json.loads(path.read_text()))
    args.steps, args.out, args.runs_dir = decision["run_length"], Path("benchmarks/results/learning_long"), \
        Path("runs/learning_long")
    args.methods = LONG_METHODS + no_psd_variant(args.out, args.seeds)


ALPHA_VARIANTS = {"dipo": "0.1", "dipo-a0.3": "0.3", "dipo-a1": "1.0"}


def no_psd_variant(out: Path, seeds: list[int]) -> list[str]:
    """long_horizon.md's last dose-response run: `use_psd=false` at the alpha with the highest mean
    Δ final accuracy to DAPO, chosen once every alpha variant has run on every seed (until then, none)."""
    path = out.with_suffix(".json")
    runs = json.loads(path.read_text()).get("runs", []) if path.is_file() else []
    ran = {(r["variant"], r["seed"]) for r in runs}
    if not all((v, s) in ran for v in [BASELINE, *ALPHA_VARIANTS] for s in seeds):
        return []
    gains = {v: paired_difference(runs, v, BASELINE, "final_eval_accuracy")["mean"] for v in ALPHA_VARIANTS}
    return [f"dipo-nopsd-a{ALPHA_VARIANTS[max(gains, key=gains.get)]}"]


def earlier_results(out: Path, settings: dict) -> list[dict]:
    """Runs already in `out`.json whose settings match (a later session reuses them)."""
    path = out.with_suffix(".json")
    if not path.is_file():
        return []
    earlier = json.loads(path.read_text())
    same = {k: v for k, v in earlier.get("settings", {}).items() if k not in ("wall_seconds", "seeds", "testbed")}
    if any(settings.get(k) != v for k, v in same.items() if k in settings):
        return []
    return earlier.get("runs", [])


def commit_results(out: Path, message: str) -> None:
    """Commit the results files (only them), so a session cut off keeps every finished run."""
    import subprocess

    paths = [str(out.with_suffix(".json")), str(out.with_suffix(".md"))]
    for _ in range(5):  # another git command may hold the index lock for a moment
        subprocess.run(["git", "add", *paths], capture_output=True)
        done = subprocess.run(["git", "commit", "-q", "-m", message, "--", *paths], capture_output=True)
        if done.returncode == 0 or b"nothing" in done.stdout + done.stderr:
            return
        time.sleep(2)


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
    parser.add_argument("--model", type=Path, default=None,
                        help="start from this model directory instead of the default testbed build (smoke tests)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/learning"), help="where run directories go")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/learning"),
                        help="output path stem: writes STEM.json and STEM.md")
    parser.add_argument("--pilot", action="store_true",
                        help="long_horizon.md's pilot: DAPO and GRPO, seeds 100 101, 500 steps, evaluations every "
                             "50 steps -> benchmarks/results/learning_long_pilot (sets those defaults)")
    parser.add_argument("--long", action="store_true",
                        help="long_horizon.md's benchmark: DAPO, DiPO, then the dose-response variants, seeds 0-7, "
                             "the pilot's step count -> benchmarks/results/learning_long (sets those defaults)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="do not add DAPO to the variants (Fig. 5's runs compare BRR's two rewards, not methods)")
    parser.add_argument("--commit", action="store_true",
                        help="git-commit the results file after every finished run, and reuse runs already in it")
    args = parser.parse_args(argv)
    if args.pilot or args.long:
        apply_protocol(args, parser, pilot=args.pilot)
    if min(args.jobs, args.prompts_per_step, args.steps, args.heldout, args.heldout_k) < 1:
        parser.error("--jobs, --prompts-per-step, --steps, --heldout and --heldout-k must be >= 1")
    variants = list(dict.fromkeys(args.methods if args.no_baseline else [BASELINE, *args.methods]))

    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from dipo.testbed.build import build_testbed

    model_dir = args.model or build_testbed()
    schedule = {**SCHEDULE, "max_steps": args.steps, "per_device_train_batch_size": 8 * args.prompts_per_step,
                "heldout_eval_steps": args.eval_every, "heldout_max_problems": args.heldout,
                "heldout_k": args.heldout_k, "temperature": args.temperature}
    settings = {**schedule, "learning_rate": args.learning_rate, "group_size": 8, "seeds": args.seeds,
                "sampling_seed_per_step": True, "testbed": str(model_dir)}
    # seeds outermost: a partial benchmark still pairs every variant with DAPO
    jobs = [(name, seed) for seed in args.seeds for name in variants]
    if args.long:  # the primary pair for every seed first, then the dose-response variants seed by seed
        jobs = sorted(jobs, key=lambda job: (job[0] not in (BASELINE, PRIMARY[0]), jobs.index(job)))
    results: list[dict] = earlier_results(args.out, settings) if args.commit else []
    done = {(r["variant"], r["seed"]) for r in results}
    jobs = [job for job in jobs if job not in done]
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
            results.sort(key=lambda r: (r["seed"], variants.index(r["variant"]) if r["variant"] in variants else 99))
            write_results(args.out, results, variants, {**settings, "wall_seconds": time.perf_counter() - started})
            if args.commit:
                commit_results(args.out, f"{args.out.name}: {name} seed {seed} (final held-out accuracy "
                                         f"{results[-1]['final_eval_accuracy']:.3f})")
    if args.pilot and {(r["variant"], r["seed"]) for r in results} >= {(v, s) for v in variants for s in args.seeds}:
        decision = pilot_decision({"runs": results})
        write_results(args.out, results, variants, settings, decision)
        print(f"pilot: plateau step {decision['plateau_step']}, run length {decision['run_length']}")
        if args.commit:
            commit_results(args.out, f"{args.out.name}: plateau step {decision['plateau_step']}, "
                                     f"long-horizon run length {decision['run_length']} (long_horizon.md's rule)")
    elif not jobs and results:
        write_results(args.out, results, variants, settings)
    print(args.out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
