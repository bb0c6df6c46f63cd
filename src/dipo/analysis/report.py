"""One HTML report (plus the PNGs beside it) from one or more runs."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

from dipo.analysis import plots
from dipo.analysis.runs import Run, summarize

# (file name, title, what it shows, plotting function)
FIGURES = [
    ("group_kinds.png", "Group kinds per step (paper Fig. 1a)",
     "Share of easy (all G samples right), normal and hard (all wrong) groups. Extreme groups give "
     "GRPO/DAPO no gradient; DiPO's BRR gives them one.", plots.plot_group_kinds),
    ("logppl.png", "Log-perplexity of correct vs wrong samples (paper Fig. 1b / 7)",
     "Histograms at chosen steps with the PSD threshold tau* (the best separator in the PPL queue). "
     "Wrong answers left of it are confidently wrong (exploration targets), right answers right of it "
     "are uncertain (exploitation targets).", None),
    ("entropy.png", "Policy entropy (paper Fig. 5)",
     "Max-PPL reward on hard groups pushes entropy up; max-PPL penalty on easy groups pushes it down.",
     plots.plot_entropy),
    ("accuracy.png", "Accuracy (paper Fig. 4)",
     "Held-out accuracy (mean@k over the held-out set) at each evaluation, and the training batch's "
     "verifier accuracy.", plots.plot_accuracy),
    ("quadrants.png", "Perplexity quadrants and BRR firings",
     "Samples per quadrant (Correct/Error x Low/High PPL against tau*) and how many extreme groups BRR "
     "reallocated, cumulatively.", plots.plot_quadrants),
]

SUMMARY_COLUMNS = [
    ("label", "run"), ("steps", "steps"), ("final_eval_accuracy", "final held-out acc."),
    ("best_eval_accuracy", "best held-out acc."), ("eval_accuracy_auc", "held-out acc. AUC"),
    ("frac_easy", "easy groups"), ("frac_normal", "normal groups"), ("frac_hard", "hard groups"),
    ("zero_advantage_fraction", "zero-advantage groups"), ("split_valid_fraction", "PSD split valid"),
    ("brr_firings", "BRR firings"), ("final_entropy", "final entropy"),
]


def _cell(value) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else (f"{value:.0f}" if value.is_integer() and value > 1 else f"{value:.3f}")
    return html.escape(str(value))


def write_figures(runs: list[Run], out_dir: Path, ppl_steps: list[int] | None = None) -> dict[str, Path | None]:
    """Write every figure; returns file name -> path (None when no run had the data)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, _, _, fn in FIGURES:
        if name == "logppl.png":
            written[name] = plots.plot_logppl(runs, out_dir / name, steps=ppl_steps)
        else:
            written[name] = fn(runs, out_dir / name)
    return written


def write_report(runs: list[Run], out_dir: str | Path, ppl_steps: list[int] | None = None,
                 title: str = "DiPO run report", extra_html: str = "") -> Path:
    """Write the PNGs, `summary.json` and `report.html` into `out_dir`; return the HTML path."""
    out_dir = Path(out_dir)
    figures = write_figures(runs, out_dir, ppl_steps)
    summaries = [summarize(run) for run in runs]
    (out_dir / "summary.json").write_text(json.dumps(summaries, indent=2, allow_nan=True))
    head = "".join(f"<th>{html.escape(name)}</th>" for _, name in SUMMARY_COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{_cell(s[key])}</td>" for key, _ in SUMMARY_COLUMNS) + "</tr>"
                   for s in summaries)
    sections = []
    for name, fig_title, caption, _ in FIGURES:
        if figures[name] is None:
            sections.append(f"<h2>{html.escape(fig_title)}</h2><p><em>No run logged the data for this figure.</em></p>")
        else:
            sections.append(f"<h2>{html.escape(fig_title)}</h2><p>{html.escape(caption)}</p>"
                            f'<img src="{name}" alt="{html.escape(fig_title)}">')
    run_list = "".join(f"<li><code>{html.escape(run.label)}</code>: {html.escape(str(run.path))}</li>" for run in runs)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
th{{background:#f4f4f4}}img{{max-width:100%;border:1px solid #eee}}</style></head>
<body><h1>{html.escape(title)}</h1>
<ul>{run_list}</ul>
{extra_html}
<h2>Summary</h2><table><tr>{head}</tr>{body}</table>
<p>Group fractions and zero-advantage groups are over all logged groups of the run; AUC is the mean
held-out accuracy over training (trapezoid over evaluation steps).</p>
{''.join(sections)}
</body></html>
"""
    path = out_dir / "report.html"
    path.write_text(page)
    return path
