"""Matplotlib figures of one or more runs, in the style of the DiPO paper's figures.

Every function takes the runs and an output PNG path, writes the figure, and returns the path
(or None when no run has the data it needs, so the report can say what is missing).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dipo.analysis.runs import Run, group_table  # noqa: E402

KIND_COLORS = {"easy": "#4caf50", "normal": "#9e9e9e", "hard": "#e53935"}
QUADRANT_COLORS = {"CL": "#1b5e20", "CH": "#81c784", "EL": "#b71c1c", "EH": "#ef9a9a"}
QUADRANT_NAMES = {"CL": "correct, low PPL", "CH": "correct, high PPL", "EL": "wrong, low PPL",
                  "EH": "wrong, high PPL"}


def _save(fig, out: Path) -> Path:
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")


def _kind_fractions(run: Run) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    steps, easy = run.series("dipo/frac_easy")
    if len(steps):
        return steps, {"easy": easy, "normal": run.series("dipo/frac_normal")[1],
                       "hard": run.series("dipo/frac_hard")[1]}
    groups = group_table(run.rollouts)
    if groups.empty:
        return np.array([]), {}
    table = groups.groupby("step")["group_kind"].value_counts(normalize=True).unstack(fill_value=0.0)
    return table.index.to_numpy(), {k: table[k].to_numpy() if k in table else np.zeros(len(table))
                                    for k in KIND_COLORS}


def plot_group_kinds(runs: list[Run], out: Path) -> Path | None:
    """Fig. 1a: share of easy (all right), normal and hard (all wrong) groups per step, one panel per run."""
    data = [(run, *_kind_fractions(run)) for run in runs]
    data = [d for d in data if len(d[1])]
    if not data:
        return None
    fig, axes = plt.subplots(1, len(data), figsize=(5 * len(data), 3.6), squeeze=False, sharey=True)
    for ax, (run, steps, fractions) in zip(axes[0], data):
        ax.stackplot(steps, [fractions[k] for k in KIND_COLORS], labels=[f"{k} groups" for k in KIND_COLORS],
                     colors=list(KIND_COLORS.values()), alpha=0.85)
        ax.set_title(run.label)
        ax.set_xlabel("training step")
        ax.set_ylim(0, 1)
        ax.set_xlim(steps.min(), steps.max() if steps.max() > steps.min() else steps.min() + 1)
    axes[0][0].set_ylabel("fraction of groups")
    axes[0][-1].legend(loc="upper right", fontsize=8, framealpha=0.9)
    return _save(fig, out)


def default_ppl_steps(run: Run, count: int = 3) -> list[int]:
    """First, middle and last step with rollout records."""
    steps = run.rollout_steps()
    if not len(steps):
        return []
    picks = np.unique(steps[np.linspace(0, len(steps) - 1, count).round().astype(int)])
    return [int(s) for s in picks]


def plot_logppl(runs: list[Run], out: Path, steps: list[int] | None = None) -> Path | None:
    """Fig. 1b / 7: log-PPL histograms of correct vs wrong samples at chosen steps, with the PSD
    threshold tau* logged at that step (dashed when the split was not valid)."""
    rows = [run for run in runs if len(run.rollouts)]
    if not rows:
        return None
    picks = {run.label: steps or default_ppl_steps(run) for run in rows}
    n_cols = max(len(p) for p in picks.values())
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(4.2 * n_cols, 3.2 * len(rows)), squeeze=False)
    for r, run in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            if c >= len(picks[run.label]):
                ax.axis("off")
                continue
            step = picks[run.label][c]
            sample = run.rollouts[run.rollouts["step"] == step].dropna(subset=["logppl"])
            correct = sample["reward"].to_numpy() > 0.5
            logppl = sample["logppl"].to_numpy(dtype=float)
            bins = np.linspace(logppl.min(), logppl.max() + 1e-6, 25) if len(logppl) else 10
            ax.hist(logppl[correct], bins=bins, alpha=0.6, color="#2e7d32", label=f"correct (n={correct.sum()})")
            ax.hist(logppl[~correct], bins=bins, alpha=0.6, color="#c62828", label=f"wrong (n={(~correct).sum()})")
            thr_steps, thr = run.series("dipo/threshold")
            valid_steps, valid = run.series("dipo/split_valid")
            if step in thr_steps:
                is_valid = bool(valid[list(valid_steps).index(step)]) if step in valid_steps else True
                ax.axvline(thr[list(thr_steps).index(step)], color="black", ls="-" if is_valid else "--",
                           label="PSD threshold" + ("" if is_valid else " (not valid)"))
            ax.set_title(f"{run.label}, step {step}", fontsize=10)
            ax.set_xlabel("log-perplexity of completion")
            ax.set_ylabel("samples")
            ax.legend(fontsize=7)
    return _save(fig, out)


def _overlay(runs: list[Run], keys: list[tuple[str, str]], out: Path, ylabel: str) -> Path | None:
    """One panel per (metric, title), every run a line."""
    present = [(key, title) for key, title in keys if any(len(run.series(key)[0]) for run in runs)]
    if not present:
        return None
    fig, axes = plt.subplots(1, len(present), figsize=(5.5 * len(present), 3.8), squeeze=False)
    for ax, (key, title) in zip(axes[0], present):
        for run in runs:
            steps, values = run.series(key)
            if len(steps):
                ax.plot(steps, values, marker="o" if len(steps) < 15 else None, ms=3,
                        label=run.label)
        ax.set_title(title)
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, out)


def plot_entropy(runs: list[Run], out: Path) -> Path | None:
    """Fig. 5: mean token entropy of the policy per step, runs overlaid (e.g. max-PPL reward vs penalty)."""
    return _overlay(runs, [("entropy", "policy entropy")], out, "mean token entropy (nats)")


def plot_accuracy(runs: list[Run], out: Path) -> Path | None:
    """Fig. 4: held-out accuracy (mean@k) at each evaluation (left) and the training batch's
    verifier accuracy, moving average over 5 steps (right); runs overlaid."""
    if not any(len(run.series(k)[0]) for run in runs for k in ("eval/accuracy", "dipo/accuracy")):
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for run in runs:
        steps, values = run.series("eval/accuracy")
        if len(steps):
            axes[0].plot(steps, values, marker="o", ms=3, label=run.label)
        steps, values = run.series("dipo/accuracy")
        if len(steps):
            axes[1].plot(steps, _smooth(values, 5), label=run.label)
    for ax, title in zip(axes, ["held-out accuracy (mean@k)", "training accuracy (5-step average)"]):
        ax.set_title(title)
        ax.set_xlabel("training step")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=8)
    return _save(fig, out)


def _fired_per_step(run: Run, kind: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Groups of one kind that BRR reallocated, per step: counted in the rollout records when the
    run has them (all sampling rounds), else the logged metric."""
    groups = group_table(run.rollouts)
    if groups.empty:
        return run.series(key)
    counts = groups[groups["group_kind"] == kind].groupby("step")["fired"].sum()
    steps = np.array(sorted(groups["step"].unique()))
    return steps, counts.reindex(steps, fill_value=0).to_numpy(dtype=float)


def plot_quadrants(runs: list[Run], out: Path) -> Path | None:
    """Samples per perplexity quadrant per step (top) and cumulative BRR firings on hard and easy
    groups (bottom), one column per run."""
    data = [run for run in runs if any(len(run.series(f"dipo/quadrant_{q}")[0]) for q in QUADRANT_COLORS)]
    if not data:
        return None
    fig, axes = plt.subplots(2, len(data), figsize=(5 * len(data), 6.4), squeeze=False, sharex="col")
    for c, run in enumerate(data):
        top, bottom = axes[0][c], axes[1][c]
        for q, color in QUADRANT_COLORS.items():
            steps, counts = run.series(f"dipo/quadrant_{q}")
            if len(steps):
                top.plot(steps, counts, color=color, label=f"{q}: {QUADRANT_NAMES[q]}")
        top.set_title(run.label)
        top.set_ylabel("samples per step")
        top.legend(fontsize=7)
        top.grid(alpha=0.3)
        for kind, key, name in (("hard", "dipo/fired_hard", "max-PPL reward (hard groups)"),
                                ("easy", "dipo/fired_easy", "max-PPL penalty (easy groups)")):
            steps, fired = _fired_per_step(run, kind, key)
            if len(steps):
                bottom.plot(steps, np.cumsum(fired), color=KIND_COLORS[kind], label=name)
        bottom.set_xlabel("training step")
        bottom.set_ylabel("BRR firings (cumulative groups)")
        bottom.legend(fontsize=7)
        bottom.grid(alpha=0.3)
    return _save(fig, out)
