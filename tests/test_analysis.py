"""`dipo analyze` on small fixture runs written with the real DiPO core and run-log writers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fixtures.fake_run import write_fake_run
from matplotlib.collections import PolyCollection

from dipo.analysis import auc, group_runs, group_table, load_run, mean_ci, plots, summarize, t_quantile
from dipo.analysis.cli import main

FIGURES = ["group_kinds.png", "logppl.png", "entropy.png", "accuracy.png", "quadrants.png"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return write_fake_run(root / "dipo", "dipo"), write_fake_run(root / "dapo", "dapo")


def test_analyze_two_runs_writes_every_plot_and_report(runs, tmp_path, capsys):
    assert main([str(runs[0]), str(runs[1]), "--out", str(tmp_path / "rep"), "--labels", "DiPO,DAPO"]) == 0
    out = tmp_path / "rep"
    assert capsys.readouterr().out.strip() == str(out / "report.html")
    for name in FIGURES:
        png = (out / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000, name
    page = (out / "report.html").read_text()
    assert all(f'src="{name}"' in page for name in FIGURES)
    assert "DiPO" in page and "DAPO" in page and "No run logged" not in page
    # one seed per method: the report says no interval can be given, and gives none
    assert "With one run per method no confidence interval can be computed" in page and " ± " not in page
    assert "Paired differences" not in page
    summary = json.loads((out / "summary.json").read_text())
    assert [s["label"] for s in summary] == ["DiPO", "DAPO"]


def test_single_run_report_goes_into_the_run_dir(runs):
    assert main([str(runs[0]), "--steps", "2,5"]) == 0
    assert (runs[0] / "report.html").exists() and (runs[0] / "logppl.png").exists()


def test_metrics_lines_of_one_step_are_merged_and_summary_matches_rollouts(runs):
    run = load_run(runs[0])
    assert run.metrics["step"].is_unique
    steps, acc = run.series("eval/accuracy")
    assert list(steps) == [1, 4, 8, 12]
    groups = group_table(run.rollouts)
    assert len(groups) == 12 * 6
    # group kinds from the per-sample records agree with the logged per-step fractions
    frac_hard = groups.groupby("step")["group_kind"].apply(lambda k: np.mean(k == "hard")).to_numpy()
    np.testing.assert_allclose(frac_hard, run.series("dipo/frac_hard")[1])
    summary = summarize(run)
    assert summary["final_eval_accuracy"] == acc[-1]
    assert summary["frac_easy"] + summary["frac_normal"] + summary["frac_hard"] == pytest.approx(1.0)
    # a zero-advantage group is an extreme group that BRR did not reallocate
    extreme_not_fired = ((groups["group_kind"] != "normal") & ~groups["fired"]).mean()
    assert summary["zero_advantage_fraction"] == pytest.approx(extreme_not_fired)


def test_auc_is_mean_over_training():
    assert auc(np.array([0, 10]), np.array([0.0, 1.0])) == pytest.approx(0.5)
    assert np.isnan(auc(np.array([3]), np.array([0.2])))


def test_missing_or_malformed_run_gives_a_clear_error(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "no metrics.jsonl" in capsys.readouterr().err  # errors go to stderr
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\nnot json\n{"step": 2}\n')  # a torn *last* line is skipped
    with pytest.raises(ValueError, match="metrics.jsonl:2"):
        load_run(tmp_path)


def test_run_without_rollouts_still_reports(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "entropy": 0.5}\n{"step": 2, "entropy": 0.4}\n')
    assert main([str(tmp_path)]) == 0
    page = (tmp_path / "report.html").read_text()
    assert 'src="entropy.png"' in page and "No run logged the data" in page


# -- several seeds per method, figures fit for a paper, uncertainty in the report -----------------

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """Three seeds each of DAPO and DiPO, 24 steps (enough to smooth)."""
    root = tmp_path_factory.mktemp("seeded")
    return [write_fake_run(root / f"{m}-{s}", m, steps=24, seed=s) for m in ("dapo", "dipo") for s in SEEDS]


def _visible_axes(fig):
    return [ax for ax in fig.axes if ax.axison]


def _has_data(ax) -> bool:
    return bool(ax.get_lines() or ax.collections or ax.patches)


def test_t_quantile_and_interval_match_the_tables():
    for df, table in [(1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (29, 2.045), (10_000, 1.960)]:
        assert t_quantile(0.975, df) == pytest.approx(table, abs=6e-4)
    assert t_quantile(0.95, 5) == pytest.approx(2.015, abs=6e-4)
    mean, half, n = mean_ci([0.30, 0.34, 0.38, float("nan")])  # NaN (a run without the value) is left out
    assert (mean, n) == (pytest.approx(0.34), 3) and half == pytest.approx(4.303 * 0.04 / 3**0.5, rel=1e-3)
    assert np.isnan(mean_ci([0.4])[1]) and mean_ci([])[2] == 0


def test_smoothing_is_centred_and_skips_gaps():
    ramp = np.arange(30, dtype=float)
    np.testing.assert_allclose(plots.smooth(ramp, 5)[2:-2], ramp[2:-2])  # no lag on a trend
    noisy = np.random.default_rng(0).normal(0, 1, 200)
    assert plots.smooth(noisy, 11).std() < noisy.std() / 2
    gap = np.array([1.0, np.nan, 3.0, 5.0])
    out = plots.smooth(gap, 3)
    assert np.isnan(out[1]) and out[0] == 1.0 and out[2] == pytest.approx(4.0)
    assert plots.smoothing_window(12) == 1 and plots.smoothing_window(100) == 11


def test_runs_are_grouped_by_the_method_in_their_config(seeded, tmp_path):
    runs = [load_run(p) for p in seeded]
    groups = group_runs(runs)
    assert [(g.label, g.seeds) for g in groups] == [("dapo", [0, 1, 2]), ("dipo", [0, 1, 2])]
    # an ablation is not a seed of DiPO: configs differing beyond the seed are split and named
    ablation = load_run(write_fake_run(tmp_path / "hard-only", "dipo", steps=3, seed=0, easy_groups=False))
    labels = [g.label for g in group_runs([*runs[3:], ablation])]
    assert labels == ["dipo", "dipo (easy_groups=False)"]
    # with no majority value, every split group names the field
    other_lr = load_run(write_fake_run(tmp_path / "lr", "dapo", steps=2, seed=0, queue_batches=4))
    labels = [g.label for g in group_runs([runs[0], other_lr])]
    assert labels == ["dapo (queue_batches=unset)", "dapo (queue_batches=4)"]
    # explicit labels win, runs sharing one are seeds of it
    assert [len(g.runs) for g in group_runs([load_run(p, "X") for p in seeded[:3]])] == [3]


def test_several_seeds_give_bands_svgs_and_intervals(seeded, tmp_path):
    out = tmp_path / "rep"
    assert main([*map(str, seeded), "--out", str(out)]) == 0
    for name in FIGURES:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / name).with_suffix(".svg").read_text().lstrip().startswith("<?xml"), name
    page = (out / "report.html").read_text()
    assert "Runs (seeds) per method: dapo: 3, dipo: 3" in page and 'href="accuracy.svg"' in page
    summary = json.loads((out / "summary.json").read_text())
    assert [(s["method"], s["seed"]) for s in summary] == [(m, s) for m in ("dapo", "dipo") for s in SEEDS]
    # the final held-out accuracy of each method as mean ± 95% t half-width [interval] over its 3 seeds
    for method in ("dapo", "dipo"):
        final = np.array([s["final_eval_accuracy"] for s in summary if s["method"] == method])
        mean, half = final.mean(), 4.303 * final.std(ddof=1) / np.sqrt(3)
        assert f"{mean:.3f} ± {half:.3f} [{mean - half:.3f}, {mean + half:.3f}]" in page
    # per-seed paired difference against DAPO
    diff = np.array([s["final_eval_accuracy"] for s in summary[3:]]) - [s["final_eval_accuracy"] for s in summary[:3]]
    mean, half = diff.mean(), 4.303 * diff.std(ddof=1) / np.sqrt(3)
    assert "dipo − dapo</td><td>3</td>" in page and f"{mean:.3f} ± {half:.3f}" in page
    # the band: one shaded interval per method in every curve panel, legends count the seeds
    fig = plots.accuracy_figure(group_runs([load_run(p) for p in seeded]))
    for ax in fig.axes:
        assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 2
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["dapo (3 seeds)", "dipo (3 seeds)"]
    # training accuracy (24 steps) is smoothed over the faint raw mean: two lines per method
    lines = fig.axes[-1].get_lines()
    assert len(lines) == 4 and sorted(line.get_alpha() or 1 for line in lines)[:2] == [0.25, 0.25]


def test_axes_are_zoomed_shared_and_counted_in_integers(seeded):
    groups = group_runs([load_run(p) for p in seeded[:1] + seeded[3:4]])  # one run each: no band
    fig = plots.accuracy_figure(groups)
    heldout = fig.axes[0]
    values = np.concatenate([line.get_ydata() for line in heldout.get_lines()])
    low, high = heldout.get_ylim()
    span = values.max() - values.min()
    assert low <= values.min() and high >= values.max()  # nothing clipped
    assert values.min() - low <= 0.1 * span and high - values.max() <= 0.1 * span  # not 0..1
    kinds = plots.group_kinds_figure(groups)
    assert [ax.get_title() for ax in kinds.axes] == ["easy groups (all G samples right)",
                                                     "hard groups (all G samples wrong)", "zero-advantage groups"]
    assert all(kinds.axes[0].get_shared_y_axes().joined(kinds.axes[0], ax) for ax in kinds.axes[1:])
    quadrants = plots.quadrants_figure(groups)
    # one quadrant panel per method, then one firings panel under them: DiPO's curves, DAPO named as never firing
    assert len(quadrants.axes) == 3 and all(ax.axison for ax in quadrants.axes)
    fired = quadrants.axes[2]
    assert "never fired: dapo" in fired.get_title().lower() and fired.get_lines()
    assert all("dipo" in line.get_label().lower() for line in fired.get_lines())
    assert all(float(t).is_integer() for t in fired.get_yticks())
    # log-PPL histograms: shares of each step's samples (bars sum to 1), all panels on shared axes
    hist = plots.logppl_figure(groups)
    assert len(hist.axes) == 6 and all(hist.axes[0].get_shared_x_axes().joined(hist.axes[0], ax) for ax in hist.axes)
    for ax in hist.axes:
        assert sum(p.get_height() for p in ax.patches) == pytest.approx(1.0)
    for figure in (fig, kinds, quadrants):
        assert all(float(t).is_integer() for ax in _visible_axes(figure) for t in ax.get_xticks())  # steps


def test_run_without_rollouts_draws_no_empty_panel(tmp_path):
    # held-out accuracy and group kinds logged, no rollout records and no training accuracy
    lines = [{"step": s, "dipo/frac_easy": 0.1 * s, "dipo/frac_hard": 0.5 - 0.1 * s, "entropy": 0.9 - 0.1 * s}
             for s in range(1, 5)] + [{"step": s, "eval/accuracy": 0.3 + 0.02 * s} for s in (0, 4)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    groups = group_runs([load_run(tmp_path)])
    assert plots.logppl_figure(groups) is None and plots.quadrants_figure(groups) is None
    accuracy, kinds = plots.accuracy_figure(groups), plots.group_kinds_figure(groups)
    assert [ax.get_title() for ax in accuracy.axes] == ["held-out accuracy (mean@k)"]
    assert len(kinds.axes) == 2  # no zero-advantage panel without records
    assert np.isnan(summarize(load_run(tmp_path))["brr_firings"])  # not logged is not 0
    for fig in (accuracy, kinds, plots.entropy_figure(groups)):
        assert all(_has_data(ax) for ax in fig.axes)


def test_bad_config_yaml_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "entropy": 0.5}\n')
    (tmp_path / "config.yaml").write_text("method: [dipo\n")
    assert main([str(tmp_path)]) == 2
    assert "config.yaml: not valid YAML" in capsys.readouterr().err
