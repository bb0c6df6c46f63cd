"""Matplotlib figures of runs grouped by method, in the style of the DiPO paper's figures.

Each `*_figure` function takes run groups (`group_runs`) and returns a matplotlib Figure, or None
when no run has the data it needs (the report then says so; no empty axes are drawn); `save_figure`
writes the PNG with an SVG beside it. Conventions, the same in every figure:
- x is the training step, with integer ticks; counts get integer ticks too;
- a method with one run is one line; with several seeds, the line is the mean over seeds and the
  shaded band its 95% t-interval (half-width t_{0.975,n-1} * s / sqrt(n) at each step);
- per-step training series are smoothed (centred moving average, `smoothing_window`) and drawn over
  the faint raw mean; held-out evaluations are drawn as measured, with markers;
- y axes are zoomed to the data (matplotlib's autoscale, never a fixed 0..1); panels that show the
  same quantity share their axes.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from dipo.analysis.runs import Run, RunGroup  # noqa: E402
from dipo.analysis.stats import t_quantile  # noqa: E402

KIND_COLORS = {"easy": "#2e7d32", "hard": "#c62828"}
QUADRANT_COLORS = {"CL": "#1b5e20", "CH": "#81c784", "EL": "#b71c1c", "EH": "#ef9a9a"}
QUADRANT_NAMES = {"CL": "correct, low PPL", "CH": "correct, high PPL", "EL": "wrong, low PPL",
                  "EH": "wrong, high PPL"}
METHOD_COLORS = plt.get_cmap("tab10").colors
Series = Callable[[Run], tuple[np.ndarray, np.ndarray]]  # run -> (steps, values)


def save_figure(fig: Figure, png: str | Path) -> Path:
    """Write `png` and an SVG of the same figure beside it; close the figure; return the PNG path."""
    png = Path(png)
    fig.savefig(png, dpi=150)
    fig.savefig(png.with_suffix(".svg"))
    plt.close(fig)
    return png


# -- curves over seeds ---------------------------------------------------------------------------


def smoothing_window(n_points: int) -> int:
    """Moving-average window for a per-step series of `n_points`: odd, about a tenth of the series;
    1 (no smoothing) under 20 points, where smoothing would hide more than it shows."""
    return 2 * (n_points // 20) + 1


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over `window` points (odd), skipping NaNs; the window shrinks at the
    ends instead of padding, so the curve neither lags nor bends toward a made-up edge value."""
    values = np.asarray(values, dtype=float)
    if window <= 1:
        return values.copy()
    finite = np.isfinite(values)
    kernel = np.ones(window)
    total = np.convolve(np.where(finite, values, 0.0), kernel, mode="same")
    count = np.convolve(finite.astype(float), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(finite, total / count, np.nan)


@dataclass
class Curve:
    """One method's curve: `raw` mean over its runs at each step, `mean` the mean of the smoothed
    runs, `half` the 95% t half-width of that mean over runs (NaN where fewer than 2 runs)."""

    label: str
    steps: np.ndarray
    raw: np.ndarray
    mean: np.ndarray
    half: np.ndarray
    n_runs: int
    smoothed: bool


def group_curve(group: RunGroup, series: Series, smoothed: bool = True) -> Curve | None:
    """Align the runs of a group on the union of their steps and average them; None without data."""
    per_run = [s for s in (series(run) for run in group.runs) if len(s[0])]
    if not per_run:
        return None
    steps = np.unique(np.concatenate([s for s, _ in per_run]))
    raw = np.full((len(per_run), len(steps)), np.nan)
    smooth_rows = raw.copy()
    for i, (s, v) in enumerate(per_run):
        at = np.searchsorted(steps, s)
        raw[i, at] = v
        smooth_rows[i, at] = smooth(v, smoothing_window(len(v))) if smoothed else v
    count = np.isfinite(smooth_rows).sum(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns, single-run std: NaN is the answer
        mean = np.nanmean(smooth_rows, axis=0)
        std = np.nanstd(smooth_rows, axis=0, ddof=1)
        raw_mean = np.nanmean(raw, axis=0)
    t = np.array([t_quantile(0.975, int(n) - 1) if n >= 2 else np.nan for n in count])
    is_smoothed = smoothed and any(smoothing_window(len(v)) > 1 for _, v in per_run)
    return Curve(group.label, steps, raw_mean, mean, t * std / np.sqrt(np.maximum(count, 1)), len(per_run),
                 is_smoothed)


def legend_name(group: RunGroup) -> str:
    n = len(group.runs)
    return group.label if n == 1 else f"{group.label} ({n} seeds)"


def draw_curve(ax, curve: Curve, color, label: str | None, markers: bool = False,
               bounds: tuple[float | None, float | None] = (None, None)) -> None:
    """Faint raw mean under the smoothed mean, the band when there are several runs (clipped to
    `bounds`, the range the quantity can take: a share's mean is never below 0)."""
    if curve.smoothed:
        ax.plot(curve.steps, curve.raw, color=color, alpha=0.25, lw=0.8)
    ax.plot(curve.steps, curve.mean, color=color, lw=1.8, label=label,
            marker="o" if markers or len(curve.steps) < 15 else None, ms=3.5)
    if curve.n_runs > 1:
        low, high = curve.mean - curve.half, curve.mean + curve.half
        if bounds != (None, None):
            low, high = np.clip(low, *bounds), np.clip(high, *bounds)
        ax.fill_between(curve.steps, low, high, color=color, alpha=0.2, lw=0)


def _step_axis(ax, xlabel: bool = True) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if xlabel:
        ax.set_xlabel("training step")
    ax.grid(alpha=0.3)


def _no_data(ax, text: str) -> None:
    """Say why a panel is blank instead of drawing empty axes."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#666", fontsize=9, wrap=True)


def _metric_panels(groups: list[RunGroup], panels: list[tuple[str, Series, bool]], ylabel: str, sharey: bool,
                   bounds: tuple[float | None, float | None], width: float = 4.6) -> Figure | None:
    """One panel per (title, series, smoothed) that some run has data for; every method a curve."""
    colors = {g.label: METHOD_COLORS[i % len(METHOD_COLORS)] for i, g in enumerate(groups)}
    drawn = []
    for title, series, smoothed in panels:
        curves = [(g, c) for g in groups if (c := group_curve(g, series, smoothed)) is not None]
        if curves:
            drawn.append((title, curves, smoothed))
    if not drawn:
        return None
    fig, axes = plt.subplots(1, len(drawn), figsize=(width * len(drawn), 3.5), squeeze=False, sharex=True,
                             sharey=sharey, layout="constrained")
    for ax, (title, curves, smoothed) in zip(axes[0], drawn):
        for group, curve in curves:
            draw_curve(ax, curve, colors[group.label], legend_name(group), markers=not smoothed, bounds=bounds)
        ax.set_title(title, fontsize=10)
        _step_axis(ax)
        if ax is axes[0][0] or not sharey:
            ax.set_ylabel(ylabel)
    axes[0][0].legend(fontsize=8)
    return fig


# -- per-run series ------------------------------------------------------------------------------


def metric(key: str) -> Series:
    return lambda run: run.series(key)


def kind_share(kind: str) -> Series:
    """Share of groups of one kind per step: the logged `dipo/frac_<kind>`, else counted in the records."""
    def series(run: Run):
        steps, values = run.series(f"dipo/frac_{kind}")
        if len(steps) or run.groups.empty:
            return steps, values
        share = run.groups.groupby("step")["group_kind"].apply(lambda k: float(np.mean(k == kind)))
        return share.index.to_numpy(), share.to_numpy(dtype=float)
    return series


def zero_advantage_share(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """Share of sampled groups (all rounds) whose samples all got advantage 0, per step (records only)."""
    if run.groups.empty:
        return np.array([]), np.array([])
    share = run.groups.groupby("step")["zero_adv"].mean()
    return share.index.to_numpy(), share.to_numpy(dtype=float)


def quadrant_share(quadrant: str) -> Series:
    """Share of samples in one perplexity quadrant among those placed in one, per step: counted in
    the records (all rounds) when the run has them, else from the logged `dipo/quadrant_*` counts."""
    def series(run: Run):
        if len(run.rollouts) and "quadrant" in run.rollouts:
            placed = run.rollouts[run.rollouts["quadrant"].astype(str) != ""]
            share = placed.groupby("step")["quadrant"].apply(lambda q: float(np.mean(q == quadrant)))
            return share.index.to_numpy(), share.to_numpy(dtype=float)
        counts = {q: run.series(f"dipo/quadrant_{q}") for q in QUADRANT_COLORS}
        steps = counts[quadrant][0]
        if not len(steps) or any(not np.array_equal(s, steps) for s, _ in counts.values()):
            return np.array([]), np.array([])
        total = sum(v for _, v in counts.values())
        with np.errstate(invalid="ignore", divide="ignore"):
            return steps, np.where(total > 0, counts[quadrant][1] / total, np.nan)
    return series


def cumulative_firings(kind: str) -> Series:
    """Groups of one kind BRR reallocated, cumulative over steps: counted in the records (all rounds)
    when the run has them, else the logged `dipo/fired_<kind>`."""
    def series(run: Run):
        if run.groups.empty:
            steps, fired = run.series(f"dipo/fired_{kind}")
        else:
            steps = np.array(sorted(run.groups["step"].unique()))
            counts = run.groups[run.groups["group_kind"] == kind].groupby("step")["fired"].sum()
            fired = counts.reindex(steps, fill_value=0).to_numpy(dtype=float)
        return steps, np.cumsum(fired)
    return series


# -- figures -------------------------------------------------------------------------------------


def group_kinds_figure(groups: list[RunGroup]) -> Figure | None:
    """cf. paper Fig. 1a: share of easy (all G right) and hard (all G wrong) groups per step, and of
    groups that got zero advantage (extreme groups BRR left alone, or all of them without BRR);
    one panel per quantity (shared y), methods overlaid."""
    return _metric_panels(groups, [
        ("easy groups (all G samples right)", kind_share("easy"), True),
        ("hard groups (all G samples wrong)", kind_share("hard"), True),
        ("zero-advantage groups", zero_advantage_share, True),
    ], "share of sampled groups", sharey=True, bounds=(0, 1))


def entropy_figure(groups: list[RunGroup]) -> Figure | None:
    """cf. paper Fig. 5: mean token entropy of the policy on its completions, per step."""
    return _metric_panels(groups, [("policy entropy", metric("entropy"), True)], "mean token entropy (nats)",
                          sharey=False, bounds=(0, None), width=6.0)


def accuracy_figure(groups: list[RunGroup]) -> Figure | None:
    """cf. paper Fig. 4: held-out accuracy (mean@k) at each evaluation, held-out pass@k when logged,
    and the training batch's verifier accuracy; different quantities, so each panel has its own y."""
    pass_keys = sorted({k for g in groups for r in g.runs for k in r.metrics.columns if k.startswith("eval/pass@")})
    panels = [("held-out accuracy (mean@k)", metric("eval/accuracy"), False)]
    panels += [(f"held-out {k.removeprefix('eval/')}", metric(k), False) for k in pass_keys[:1]]
    panels += [("training batch accuracy (verifier)", metric("dipo/accuracy"), True)]
    return _metric_panels(groups, panels, "accuracy", sharey=False, bounds=(0, 1))


def ppl_steps(group: RunGroup, count: int = 3) -> list[int]:
    """First, middle and last step with rollout records in every run of the group."""
    common = None
    for run in group.runs:
        steps = set(int(s) for s in run.rollout_steps())
        common = steps if common is None else common & steps
    steps = np.array(sorted(common or []))
    if not len(steps):
        return []
    return [int(s) for s in np.unique(steps[np.linspace(0, len(steps) - 1, count).round().astype(int)])]


def logppl_figure(groups: list[RunGroup], steps: list[int] | None = None) -> Figure | None:
    """cf. paper Fig. 1b / 7: log-PPL histograms of correct vs wrong samples at chosen steps (seeds
    pooled), as shares of the step's samples, with each run's PSD threshold tau* at that step
    (dashed where the split was not valid). One row per method; all panels share both axes, x
    spanning the 0.5-99.5th percentile of the plotted samples (outside ones fall in the edge bins)."""
    rows = [g for g in groups if any(len(r.rollouts) for r in g.runs)]
    if not rows:
        return None
    picks = {g.label: steps or ppl_steps(g) for g in rows}
    samples = {(g.label, s): pd.concat([r.rollouts[r.rollouts["step"] == s] for r in g.runs if len(r.rollouts)])
               .dropna(subset=["logppl"]) for g in rows for s in picks[g.label]}
    everything = np.concatenate([d["logppl"].to_numpy(dtype=float) for d in samples.values()] + [np.array([])])
    if not len(everything):
        return None
    # x spans the central 99% of the plotted samples: a few very unlikely completions would otherwise
    # squeeze the bulk into a couple of bins; samples beyond it are counted in the edge bins
    low, high = np.quantile(everything, [0.005, 0.995]) if len(everything) >= 200 else (everything.min(), everything.max())
    bins = np.linspace(low, high + 1e-6, 31)
    n_cols = max(len(p) for p in picks.values())
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(3.6 * n_cols, 2.7 * len(rows) + 0.4), squeeze=False,
                             sharex=True, sharey=True, layout="constrained")
    for r, group in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            if c >= len(picks[group.label]):
                _no_data(ax, "")
                continue
            step = picks[group.label][c]
            sample = samples[(group.label, step)]
            if sample.empty:
                _no_data(ax, f"{group.label}, step {step}: no samples")
                continue
            correct = sample["reward"].to_numpy() > 0.5
            logppl = np.clip(sample["logppl"].to_numpy(dtype=float), bins[0], bins[-1])
            weight = np.full(len(logppl), 1.0 / len(logppl))
            ax.hist(logppl[correct], bins=bins, weights=weight[correct], alpha=0.6, color=KIND_COLORS["easy"],
                    label=f"correct (n={correct.sum()})")
            ax.hist(logppl[~correct], bins=bins, weights=weight[~correct], alpha=0.6, color=KIND_COLORS["hard"],
                    label=f"wrong (n={(~correct).sum()})")
            _draw_thresholds(ax, group, step)
            seeds = f", {len(group.runs)} seeds" if len(group.runs) > 1 else ""
            ax.set_title(f"{group.label}, step {step}{seeds}", fontsize=9)
            ax.legend(fontsize=7)
            if r == len(rows) - 1:
                ax.set_xlabel("log-perplexity of completion")
            if c == 0:
                ax.set_ylabel("share of the step's samples")
    return fig


def _draw_thresholds(ax, group: RunGroup, step: int) -> None:
    labelled = set()
    for run in group.runs:
        thr_steps, thr = run.series("dipo/threshold")
        valid_steps, valid = run.series("dipo/split_valid")
        if step not in thr_steps:
            continue
        is_valid = bool(valid[list(valid_steps).index(step)]) if step in valid_steps else True
        label = "PSD threshold τ*" + ("" if is_valid else " (not valid)")
        ax.axvline(thr[list(thr_steps).index(step)], color="black", lw=1, ls="-" if is_valid else "--",
                   label=None if label in labelled else label)
        labelled.add(label)


def quadrants_figure(groups: list[RunGroup]) -> Figure | None:
    """Share of samples per perplexity quadrant per step (top row, one panel per method, shared y)
    and, below, one panel spanning the row with BRR's cumulative firings of every method that fired
    (colour: method, solid: max-PPL reward on hard groups, dashed: max-PPL penalty on easy groups;
    integer y). With no firing at all there is no bottom panel, rather than a blank one."""
    columns = [g for g in groups if any(group_curve(g, quadrant_share(q)) for q in QUADRANT_COLORS)]
    if not columns:
        return None
    colors = {g.label: METHOD_COLORS[i % len(METHOD_COLORS)] for i, g in enumerate(groups)}
    fired = {g.label: {kind: group_curve(g, cumulative_firings(kind), smoothed=False) for kind in KIND_COLORS}
             for g in columns}
    fired = {label: {kind: c for kind, c in curves.items() if c is not None and np.nanmax(c.mean) > 0}
             for label, curves in fired.items()}
    fired = {label: curves for label, curves in fired.items() if curves}
    fig = plt.figure(figsize=(4.8 * len(columns), 6.2 if fired else 3.4), layout="constrained")
    grid = fig.add_gridspec(2 if fired else 1, len(columns))
    top_row = [fig.add_subplot(grid[0, c]) for c in range(len(columns))]
    for ax in top_row[1:]:
        ax.sharex(top_row[0])
        ax.sharey(top_row[0])
    for ax, group in zip(top_row, columns):
        for q, color in QUADRANT_COLORS.items():
            curve = group_curve(group, quadrant_share(q))
            if curve is not None:
                draw_curve(ax, curve, color, f"{q}: {QUADRANT_NAMES[q]}", bounds=(0, 1))
        ax.set_title(legend_name(group), fontsize=10)
        _step_axis(ax)
    top_row[0].set_ylabel("share of samples with a quadrant")
    top_row[0].legend(fontsize=7)
    if fired:
        bottom = fig.add_subplot(grid[1, :], sharex=top_row[0])
        for group in columns:
            for kind, style, name in (("hard", "-", "max-PPL reward, hard groups"),
                                      ("easy", "--", "max-PPL penalty, easy groups")):
                curve = fired.get(group.label, {}).get(kind)
                if curve is not None:
                    draw_curve(bottom, curve, colors[group.label], f"{legend_name(group)}: {name}", bounds=(0, None))
                    bottom.get_lines()[-1].set_linestyle(style)
        bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
        _step_axis(bottom)
        bottom.set_ylabel("BRR firings (groups, cumulative)")
        bottom.legend(fontsize=7)
        if len(fired) < len(columns):
            silent = ", ".join(legend_name(g) for g in columns if g.label not in fired)
            bottom.set_title(f"BRR firings (never fired: {silent})", fontsize=10)
        else:
            bottom.set_title("BRR firings", fontsize=10)
    return fig
