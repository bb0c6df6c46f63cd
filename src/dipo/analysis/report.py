"""One HTML report (plus a PNG and an SVG per figure beside it) from one or more runs.

Runs are grouped by method (`group_runs`: same label and config up to the seed); with several seeds
per method the report gives means with 95% t-intervals over seeds, and paired differences against
a baseline method over the seeds both ran. Captions say what is plotted, not what it should show.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

from dipo.analysis import plots
from dipo.analysis.runs import Run, RunGroup, group_runs, summarize
from dipo.analysis.stats import mean_ci

# (file name, title, what is plotted, figure function of the groups)
FIGURES = [
    ("accuracy.png", "Accuracy (cf. paper Fig. 4)",
     "Held-out accuracy (mean@k over the held-out problems) at each evaluation, held-out pass@k where "
     "logged, and the verifier accuracy of the training batch per step.", plots.accuracy_figure),
    ("group_kinds.png", "Extreme groups per step (cf. paper Fig. 1a)",
     "Share of sampled groups that are easy (all G samples right) or hard (all G wrong), and of groups "
     "whose samples all got advantage 0 (counted from the rollout records, every sampling round). "
     "GRPO/DAPO give extreme groups no gradient; DiPO's BRR gives some of them one.", plots.group_kinds_figure),
    ("logppl.png", "Log-perplexity of correct vs wrong samples (cf. paper Fig. 1b / 7)",
     "Histograms of the completions' log-perplexity at the first, middle and last recorded step (or the "
     "steps asked for), as shares of that step's samples, with the PSD threshold tau* of each run at "
     "that step (dashed: the split was not valid, so BRR did nothing). The x axis spans the 0.5th-99.5th "
     "percentile of the plotted samples; the few beyond it are counted in the edge bins.", None),
    ("entropy.png", "Policy entropy (cf. paper Fig. 5)",
     "Mean token entropy of the policy on its sampled completions, per training step. The paper reports "
     "that max-PPL reward on hard groups raises it and max-PPL penalty on easy groups lowers it; compare "
     "the curves and their bands before reading an effect into them.", plots.entropy_figure),
    ("quadrants.png", "Perplexity quadrants and BRR firings",
     "Top: share of samples per quadrant (Correct/Error x Low/High log-PPL against tau*) per step. "
     "Bottom (when some method reallocated a group): extreme groups BRR reallocated, cumulative, one colour "
     "per method (solid: max-PPL reward on hard groups; dashed: max-PPL penalty on easy groups); methods "
     "that never fired are named in its title.", plots.quadrants_figure),
]

# (run summary key, header, decimals)
RUN_COLUMNS = [
    ("steps", "steps", 0), ("initial_eval_accuracy", "step-0 held-out acc.", 3),
    ("final_eval_accuracy", "final held-out acc.", 3), ("best_eval_accuracy", "best held-out acc.", 3),
    ("eval_accuracy_auc", "held-out acc. AUC", 3), ("frac_easy", "easy groups", 3), ("frac_normal", "normal groups", 3),
    ("frac_hard", "hard groups", 3), ("zero_advantage_fraction", "zero-advantage groups", 3),
    ("split_valid_fraction", "PSD split valid", 3), ("brr_firings", "BRR firings", 0), ("final_entropy", "final entropy", 3),
]
# per-method table: (run summary key, header, decimals) given as mean and 95% t-interval over seeds
METHOD_COLUMNS = [
    ("initial_eval_accuracy", "step-0 held-out acc.", 3), ("final_eval_accuracy", "final held-out acc.", 3),
    ("eval_accuracy_gain", "gain over step 0", 3), ("eval_accuracy_auc", "held-out acc. AUC", 3),
    ("zero_advantage_fraction", "zero-advantage groups", 3), ("brr_firings", "BRR firings", 1),
    ("final_entropy", "final entropy", 3),
]
PAIRED_COLUMNS = [("final_eval_accuracy", "final held-out acc.", 3), ("eval_accuracy_auc", "held-out acc. AUC", 3)]


def _cell(value, decimals: int = 3) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.{decimals}f}"
    return html.escape(str(value))


def _interval(values: list[float], decimals: int = 3) -> str:
    """'0.412 ± 0.031 [0.381, 0.443]' with several finite values, the value alone with one."""
    mean, half, n = mean_ci(values)
    if n == 0:
        return "–"
    if n == 1 or half == 0:  # one run, or every run gave the same value
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f} ± {half:.{decimals}f} [{mean - half:.{decimals}f}, {mean + half:.{decimals}f}]"


def _seed_list(group: RunGroup) -> str:
    seeds = group.seeds
    return ", ".join("?" if s is None else str(s) for s in seeds)


def uncertainty_note(groups: list[RunGroup]) -> str:
    """What the numbers can and cannot say, given the seeds per method."""
    counts = ", ".join(f"{g.label}: {len(g.runs)}" for g in groups)
    if all(len(g.runs) == 1 for g in groups):
        return (f"<p><strong>Runs per method: {html.escape(counts)}.</strong> With one run per method no "
                "confidence interval can be computed, and a difference between methods may be seed-to-seed "
                "noise. For intervals, train several seeds of each method and pass all their run directories "
                "to <code>dipo analyze</code>.</p>")
    return (f"<p><strong>Runs (seeds) per method: {html.escape(counts)}.</strong> Values are means over a "
            "method's runs ± the half-width of the 95% Student t interval over them "
            "(t<sub>0.975, n−1</sub> · s / √n), with the interval in brackets; a method with one run has no "
            "interval. Figures draw the same interval as a band.</p>")


def method_table(groups: list[RunGroup], summaries: dict[int, dict]) -> str:
    head = "<th>method</th><th>runs</th><th>seeds</th>" + "".join(f"<th>{html.escape(n)}</th>" for _, n, _ in METHOD_COLUMNS)
    rows = []
    for group in groups:
        cells = "".join(f"<td>{_interval([summaries[id(r)][key] for r in group.runs], digits)}</td>"
                        for key, _, digits in METHOD_COLUMNS)
        rows.append(f"<tr><td>{html.escape(group.label)}</td><td>{len(group.runs)}</td>"
                    f"<td>{html.escape(_seed_list(group))}</td>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def baseline_group(groups: list[RunGroup]) -> RunGroup:
    """DAPO if one method is labelled so (the paper's baseline), else the first method."""
    return next((g for g in groups if g.label.lower() == "dapo"), groups[0])


def paired_table(groups: list[RunGroup], summaries: dict[int, dict]) -> str:
    """Per-seed differences method − baseline over the seeds both ran, mean and 95% t-interval; empty
    when no method shares two seeds with the baseline."""
    base = baseline_group(groups)
    base_by_seed = {r.seed: r for r in base.runs if r.seed is not None}
    rows = []
    for group in groups:
        if group is base:
            continue
        pairs = [(r, base_by_seed[r.seed]) for r in group.runs if r.seed in base_by_seed]
        if len(pairs) < 2 or len({r.seed for r, _ in pairs}) != len(pairs):
            continue
        cells = "".join(
            f"<td>{_interval([summaries[id(r)][key] - summaries[id(b)][key] for r, b in pairs], digits)}</td>"
            for key, _, digits in PAIRED_COLUMNS)
        rows.append(f"<tr><td>{html.escape(group.label)} − {html.escape(base.label)}</td><td>{len(pairs)}</td>{cells}</tr>")
    if not rows:
        return ""
    head = "<th>difference</th><th>paired seeds</th>" + "".join(f"<th>{html.escape(n)}</th>" for _, n, _ in PAIRED_COLUMNS)
    return ("<h3>Paired differences by seed</h3><p>For each seed both methods ran, the method's value minus the "
            f"baseline's ({html.escape(base.label)}); mean ± 95% t half-width [interval] over those seeds. An "
            "interval that contains 0 does not show a difference.</p>"
            f"<table><tr>{head}</tr>{''.join(rows)}</table>")


def _band_note(groups: list[RunGroup], name: str) -> str:
    if name == "logppl.png":
        return "" if all(len(g.runs) == 1 for g in groups) else "Samples of a method's seeds are pooled."
    if all(len(g.runs) == 1 for g in groups):
        return "One run per method: each line is one run (no band)."
    return ("Each line is the mean over a method's seeds (count in the legend); the band is the 95% t-interval "
            "of that mean.")


def write_figures(groups: list[RunGroup], out_dir: Path, ppl_steps: list[int] | None = None) -> dict[str, Path | None]:
    """Write every figure (PNG + SVG); returns PNG name -> path (None when no run had the data)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, _, _, figure_fn in FIGURES:
        fig = plots.logppl_figure(groups, ppl_steps) if name == "logppl.png" else figure_fn(groups)
        written[name] = None if fig is None else plots.save_figure(fig, out_dir / name)
    return written


def write_report(runs: list[Run], out_dir: str | Path, ppl_steps: list[int] | None = None,
                 title: str = "DiPO run report", extra_html: str = "") -> Path:
    """Write the figures, `summary.json` and `report.html` into `out_dir`; return the HTML path."""
    out_dir = Path(out_dir)
    groups = group_runs(runs)
    figures = write_figures(groups, out_dir, ppl_steps)
    summaries = {id(run): summarize(run) for run in runs}
    method_of = {id(run): group.label for group in groups for run in group.runs}
    records = [{**summaries[id(run)], "method": method_of[id(run)], "seed": run.seed, "path": str(run.path)}
               for run in runs]
    (out_dir / "summary.json").write_text(json.dumps(records, indent=2, allow_nan=True))
    run_head = "<th>method</th><th>seed</th><th>run directory</th>" + "".join(
        f"<th>{html.escape(name)}</th>" for _, name, _ in RUN_COLUMNS)
    run_rows = "".join(
        f"<tr><td>{html.escape(method_of[id(run)])}</td><td>{_cell(run.seed if run.seed is not None else '?')}</td>"
        f"<td><code>{html.escape(str(run.path))}</code></td>"
        + "".join(f"<td>{_cell(summaries[id(run)][key], digits)}</td>" for key, _, digits in RUN_COLUMNS) + "</tr>"
        for run in runs)
    sections = []
    for name, fig_title, caption, _ in FIGURES:
        if figures[name] is None:
            sections.append(f"<h2>{html.escape(fig_title)}</h2><p><em>No run logged the data for this figure.</em></p>")
        else:
            svg = Path(name).with_suffix(".svg").name
            sections.append(f"<h2>{html.escape(fig_title)}</h2><p>{html.escape(caption)} {_band_note(groups, name)} "
                            f'(<a href="{svg}">SVG</a>)</p><img src="{name}" alt="{html.escape(fig_title)}">')
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse;margin-bottom:1em}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
th{{background:#f4f4f4}}img{{max-width:100%;border:1px solid #eee}}</style></head>
<body><h1>{html.escape(title)}</h1>
{uncertainty_note(groups)}
{extra_html}
<h2>Methods</h2>{method_table(groups, summaries)}
{paired_table(groups, summaries)}
<h2>Runs</h2><table><tr>{run_head}</tr>{run_rows}</table>
<p>Group fractions and zero-advantage groups are over all sampled groups of a run; AUC is the mean
held-out accuracy over training (trapezoid over the evaluation steps); BRR firings count reallocated
groups.</p>
{''.join(sections)}
</body></html>
"""
    path = out_dir / "report.html"
    path.write_text(page)
    return path
