"""The DiPO paper's analysis figures, re-made on the CPU testbed from committed benchmark results.

Protocol: benchmarks/long_horizon.md. The runs are trained by benchmarks/learning.py, which keeps each
run's curves in its results JSON; this script only reads those files and draws (no training):

- Fig. 1 (group kinds over DAPO training; log-PPL of right and wrong samples late in training), from
  `learning_long.json`'s DAPO runs;
- Fig. 7 (log-PPL of right and wrong samples after DAPO and after DiPO), from `learning_long.json`;
- dose-response (exploratory; not a paper figure): Δ final held-out accuracy and Δ final entropy to DAPO
  against alpha, paired per seed with 95% t CIs, and `use_psd=false` at the chosen alpha, from
  `learning_long.json`;
- Fig. 5 (entropy when training on BRR's rewards alone: max-PPL reward vs max-PPL penalty), from
  `mechanism_fig5.json`, trained by
  `python benchmarks/learning.py --methods brr-reward brr-penalty --no-baseline --seeds 0 1 2 \
      --runs-dir runs/mechanism_fig5 --out benchmarks/results/mechanism_fig5 --jobs 2 --commit`.

Each figure is written as PNG + SVG with its data as JSON into benchmarks/results/mechanism/, and
`claims.json` holds the numbers docs/fidelity.md quotes.

    python benchmarks/mechanism.py            # every figure whose data exists
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


# -- constant verifier rewards for Fig. 5 (imported by `dipo train --reward_funcs mechanism:...`) ----


def always_wrong(completions, **kwargs) -> list[float]:
    """Reward 0 for every completion: every group is hard, so only BRR's max-PPL reward trains."""
    return [0.0] * len(completions)


def always_right(completions, **kwargs) -> list[float]:
    """Reward 1 for every completion: every group is easy, so only BRR's max-PPL penalty trains."""
    return [1.0] * len(completions)


# -- statistics over seeds -------------------------------------------------------------------------


def mean_band(rows: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Mean over seeds per point and the 95% t half-width (0 with one seed)."""
    from dipo.analysis.stats import t_quantile

    x = np.array(rows, dtype=float)
    mean = np.nanmean(x, axis=0)
    if len(x) < 2:
        return mean, np.zeros_like(mean)
    return mean, t_quantile(0.975, len(x) - 1) * np.nanstd(x, axis=0, ddof=1) / math.sqrt(len(x))


def t_summary(values: list[float]) -> dict:
    from dipo.analysis.stats import mean_ci

    x = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    mean, half, _ = mean_ci(x, 0.95)
    return {"n": len(x), "mean": float(mean), "ci": [float(mean - half), float(mean + half)], "values": x.tolist()}


def smooth(values: np.ndarray) -> np.ndarray:
    """The analysis package's centred moving average, at its window for this many points."""
    from dipo.analysis.plots import smooth as centred
    from dipo.analysis.plots import smoothing_window

    return centred(np.asarray(values, dtype=float), smoothing_window(len(values)))


def _aligned(runs: list[dict], curve: str, key: str = "values") -> tuple[list[int], list[list[float]]]:
    """Steps every run has for `curve`, and each run's values at them."""
    series = [r["curves"][curve] for r in runs if curve in r.get("curves", {})]
    if not series:
        return [], []
    steps = sorted(set.intersection(*[set(c["steps"]) for c in series]))
    rows = [[c[key][c["steps"].index(s)] for s in steps] for c in series]
    return steps, [[np.nan if v is None else v for v in row] for row in rows]


def _runs(results: dict, variant: str) -> list[dict]:
    return [r for r in results["runs"] if r["variant"] == variant]


def _save(fig, name: str, data: dict, out: Path) -> None:
    from dipo.analysis.plots import save_figure

    out.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out / f"{name}.png")
    (out / f"{name}.json").write_text(json.dumps(data, indent=1))
    print(f"wrote {out / name}.png/.svg/.json")


def _late(runs: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    right = [v for r in runs for v in r["curves"].get("late_logppl", {}).get("right", []) if v is not None]
    wrong = [v for r in runs for v in r["curves"].get("late_logppl", {}).get("wrong", []) if v is not None]
    return np.array(right), np.array(wrong)


def _late_threshold(run: dict) -> float:
    """Mean PSD threshold tau* over the run's last 10 logged steps."""
    values = [v for v in run["curves"].get("threshold", {}).get("values", [])[-10:] if v is not None]
    return float(np.mean(values)) if values else float("nan")


def confidently_wrong_share(run: dict) -> float:
    """Share of the late wrong samples whose log-PPL is below the run's late threshold (EL quadrant)."""
    wrong = np.array([v for v in run["curves"].get("late_logppl", {}).get("wrong", []) if v is not None])
    tau = _late_threshold(run)
    return float((wrong < tau).mean()) if len(wrong) and math.isfinite(tau) else float("nan")


def _histograms(ax, right: np.ndarray, wrong: np.ndarray, bins: np.ndarray, title: str, tau: float | None) -> None:
    ax.hist(right, bins=bins, alpha=0.6, color="#2e7d32", label=f"right (n={len(right)})", density=True)
    ax.hist(wrong, bins=bins, alpha=0.6, color="#c62828", label=f"wrong (n={len(wrong)})", density=True)
    if tau is not None and math.isfinite(tau):
        ax.axvline(tau, color="k", lw=1, ls="--", label=f"mean τ* = {tau:.2f}")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("sequence log-PPL")
    ax.legend(fontsize=8)


# -- the figures -----------------------------------------------------------------------------------


def fig1(results: dict, out: Path) -> dict | None:
    """Group-kind shares per step over DAPO training (mean, 95% band over seeds), and the log-PPL of
    right and wrong samples over the last 10 steps."""
    import matplotlib.pyplot as plt

    runs = _runs(results, "dapo")
    if not runs:
        return None
    fig, (left, right_ax) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    data = {"seeds": [r["seed"] for r in runs], "kinds": {}}
    colors = {"easy": "#2e7d32", "normal": "#1565c0", "hard": "#c62828"}
    for kind in ("easy", "normal", "hard"):
        steps, rows = _aligned(runs, "group_kinds", kind)
        mean, half = mean_band(rows)
        sm, sm_half = mean_band([smooth(np.array(row)) for row in rows])  # band over the seeds' smoothed curves
        left.plot(steps, mean, color=colors[kind], alpha=0.2, lw=0.8)
        left.plot(steps, sm, color=colors[kind], label=f"{kind} groups")
        left.fill_between(steps, sm - sm_half, sm + sm_half, color=colors[kind], alpha=0.15)
        data["kinds"][kind] = {"steps": steps, "mean": mean.tolist(), "half_width": half.tolist()}
    left.set_xlabel("training step")
    left.set_ylabel("share of sampled groups")
    left.set_title(f"DAPO: group kinds per step ({len(runs)} seeds; smoothed mean, 95% band over seeds)", fontsize=10)
    left.legend(fontsize=8)
    right, wrong = _late(runs)
    bins = np.linspace(0.0, float(np.quantile(np.concatenate([right, wrong]), 0.995)), 40)  # the top 0.5% off-scale
    tau = float(np.nanmean([_late_threshold(r) for r in runs]))
    last = runs[0]["curves"]["late_logppl"]
    _histograms(right_ax, right, wrong, bins, f"DAPO, steps {last['first_step']}-{last['last_step']}", tau)
    fig.tight_layout()
    late = {"right_mean": float(right.mean()), "wrong_mean": float(wrong.mean()), "threshold": tau,
            "confidently_wrong": t_summary([confidently_wrong_share(r) for r in runs])}
    data["late_logppl"] = late
    tail = slice(-10, None)
    data["summary"] = {k: {"first_10_steps": float(np.mean(data["kinds"][k]["mean"][:10])),
                           "last_10_steps": float(np.mean(data["kinds"][k]["mean"][tail]))} for k in data["kinds"]}
    _save(fig, "fig1_group_kinds", data, out)
    return {"group_kinds": data["summary"], "late_logppl": late}


def fig7(results: dict, out: Path) -> dict | None:
    """Log-PPL of right and wrong samples over the last 10 steps, after DAPO and after DiPO."""
    import matplotlib.pyplot as plt

    methods = [m for m in ("dapo", "dipo") if _runs(results, m)]
    if len(methods) < 2:
        return None
    pooled = {m: _late(_runs(results, m)) for m in methods}
    everything = np.concatenate([x for pair in pooled.values() for x in pair])
    bins = np.linspace(everything.min(), float(np.quantile(everything, 0.995)), 40)  # the top 0.5% off-scale
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True, sharey=True)
    data = {}
    for ax, m in zip(axes, methods):
        runs = _runs(results, m)
        right, wrong = pooled[m]
        tau = float(np.nanmean([_late_threshold(r) for r in runs]))
        _histograms(ax, right, wrong, bins, f"after {m.upper()} ({len(runs)} seeds, last 10 steps)", tau)
        gap = [np.mean(r["curves"]["late_logppl"]["wrong"]) - np.mean(r["curves"]["late_logppl"]["right"])
               for r in runs]
        data[m] = {"right_mean": float(right.mean()), "wrong_mean": float(wrong.mean()), "threshold": tau,
                   "wrong_minus_right": t_summary(gap),
                   "confidently_wrong": t_summary([confidently_wrong_share(r) for r in runs])}
    fig.tight_layout()
    by_seed = {m: {r["seed"]: r for r in _runs(results, m)} for m in methods}
    seeds = sorted(set(by_seed["dapo"]) & set(by_seed["dipo"]))
    data["dipo_minus_dapo"] = {
        "confidently_wrong": t_summary([confidently_wrong_share(by_seed["dipo"][s])
                                        - confidently_wrong_share(by_seed["dapo"][s]) for s in seeds]),
        "wrong_minus_right": t_summary([
            (np.mean(by_seed["dipo"][s]["curves"]["late_logppl"]["wrong"])
             - np.mean(by_seed["dipo"][s]["curves"]["late_logppl"]["right"]))
            - (np.mean(by_seed["dapo"][s]["curves"]["late_logppl"]["wrong"])
               - np.mean(by_seed["dapo"][s]["curves"]["late_logppl"]["right"])) for s in seeds])}
    _save(fig, "fig7_ppl_after_training", data, out)
    return data  # every entry is a summary already (no curves)


def fig5(results: dict, out: Path) -> dict | None:
    """Entropy (and the real maths accuracy, which does not train) when BRR's rewards alone train."""
    import matplotlib.pyplot as plt

    conditions = {"brr-reward": ("max-PPL reward only (every group hard)", "#c62828"),
                  "brr-penalty": ("max-PPL penalty only (every group easy)", "#1565c0")}
    if not all(_runs(results, c) for c in conditions):
        return None
    fig, (ent_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    data = {}
    for c in conditions:
        runs = _runs(results, c)
        label, color = conditions[c]
        entry = {"seeds": [r["seed"] for r in runs]}
        for ax, curve in ((ent_ax, "entropy"), (acc_ax, "math_reward")):
            steps, rows = _aligned(runs, curve)
            if not steps:
                continue
            mean, half = mean_band(rows)
            ax.plot(steps, smooth(mean), color=color, label=f"{label}, {len(runs)} seeds")
            if curve == "entropy":  # spans 0.1 to 4 nats: log scale, each seed drawn (a t band would go below 0)
                for row in rows:
                    ax.plot(steps, smooth(np.array(row)), color=color, alpha=0.3, lw=0.8)
                ax.set_yscale("log")
            else:
                sm, sm_half = mean_band([smooth(np.array(row)) for row in rows])
                ax.plot(steps, mean, color=color, alpha=0.2, lw=0.8)
                ax.fill_between(steps, sm - sm_half, sm + sm_half, color=color, alpha=0.15)
            entry[curve] = {"steps": steps, "mean": mean.tolist(), "half_width": half.tolist()}
            entry[f"{curve}_change"] = t_summary([np.nanmean(row[-10:]) - row[0] for row in rows])
        data[c] = entry
    ent_ax.set_title("policy token entropy (mean over seeds; thin: each seed)", fontsize=10)
    ent_ax.set_ylabel("entropy (nats)")
    acc_ax.set_title("maths accuracy of the training samples (logged, weight 0; 95% band)", fontsize=10)
    acc_ax.set_ylabel("accuracy")
    for ax in (ent_ax, acc_ax):
        ax.set_xlabel("training step")
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, "fig5_brr_alone", data, out)
    return {c: {k: v for k, v in entry.items() if k.endswith("_change")} for c, entry in data.items()}


def dose_response(results: dict, out: Path) -> dict | None:
    """Δ (variant − DAPO, per seed) of final held-out accuracy and final entropy against alpha, 95% t CIs."""
    import matplotlib.pyplot as plt
    from learning import ALPHA_VARIANTS, BASELINE, paired_difference

    runs = results["runs"]
    ran = {r["variant"] for r in runs}
    alphas = [(float(a), v) for v, a in ALPHA_VARIANTS.items() if v in ran]
    no_psd = sorted(v for v in ran if v.startswith("dipo-nopsd-a"))
    if len(alphas) < 2:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    data = {}
    for ax, metric, label in ((axes[0], "final_eval_accuracy", "Δ final held-out accuracy"),
                              (axes[1], "final_entropy", "Δ final entropy (nats)")):
        rows = [(a, paired_difference(runs, v, BASELINE, metric)) for a, v in alphas]
        x = np.array([a for a, _ in rows])
        mean = np.array([d["mean"] for _, d in rows])
        err = np.array([[d["mean"] - d["t_ci"][0], d["t_ci"][1] - d["mean"]] for _, d in rows]).T
        ax.errorbar(x, mean, yerr=err, fmt="o-", color="#2e7d32", capsize=4, label="DiPO (PSD on)")
        for (a, d) in rows:
            ax.annotate(f"n={d['n']}", (a, d["t_ci"][1]), textcoords="offset points", xytext=(0, 4),
                        ha="center", fontsize=7)
        entry = {f"alpha={a:g}": {k: d[k] for k in ("n", "mean", "t_ci", "bootstrap_ci", "seeds")} for a, d in rows}
        for v in no_psd:
            d, a = paired_difference(runs, v, BASELINE, metric), float(v.rpartition("-a")[2])
            ax.errorbar([a * 1.08], [d["mean"]], yerr=[[d["mean"] - d["t_ci"][0]], [d["t_ci"][1] - d["mean"]]],
                        fmt="s", color="#6a1b9a", capsize=4, label=f"use_psd=false, alpha {a:g} (n={d['n']})")
            entry[f"no_psd alpha={a:g}"] = {k: d[k] for k in ("n", "mean", "t_ci", "bootstrap_ci", "seeds")}
        ax.axhline(0, color="grey", lw=0.8)
        ax.margins(y=0.15)  # room for the n= labels
        ax.set_xscale("log")
        ax.set_xticks(x, [f"{a:g}" for a in x])
        ax.set_xlabel("alpha")
        ax.set_ylabel(label)
        ax.set_title(f"{label} to DAPO (paired seeds, 95% t CI)", fontsize=10)
        ax.legend(fontsize=8)
        data[metric] = entry
    fig.suptitle("dose-response, exploratory (benchmarks/long_horizon.md)", fontsize=10)
    fig.tight_layout()
    _save(fig, "dose_response", data, out)
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--long", type=Path, default=RESULTS / "learning_long.json")
    parser.add_argument("--fig5", type=Path, default=RESULTS / "mechanism_fig5.json")
    parser.add_argument("--out", type=Path, default=RESULTS / "mechanism")
    args = parser.parse_args(argv)
    claims = {}
    if args.long.is_file():
        long = json.loads(args.long.read_text())
        claims["fig1"], claims["fig7"] = fig1(long, args.out), fig7(long, args.out)
        claims["dose_response"] = dose_response(long, args.out)
    if args.fig5.is_file():
        claims["fig5"] = fig5(json.loads(args.fig5.read_text()), args.out)
    claims = {k: v for k, v in claims.items() if v}
    if not claims:
        print(f"no results yet ({args.long}, {args.fig5}): run benchmarks/learning.py first (see --help)")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "claims.json").write_text(json.dumps(claims, indent=1))  # each figure's summary numbers
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
