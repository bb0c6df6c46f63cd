"""`dipo analyze` on small fixture runs written with the real DiPO core and run-log writers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fixtures.fake_run import write_fake_run

from dipo.analysis import auc, group_table, load_run, summarize
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
