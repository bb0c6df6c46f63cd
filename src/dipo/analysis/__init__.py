"""Run logs -> plots and an HTML report (`dipo analyze`)."""

from dipo.analysis.report import write_report
from dipo.analysis.runs import Run, RunGroup, auc, group_runs, group_table, load_run, summarize
from dipo.analysis.stats import mean_ci, t_quantile

__all__ = ["Run", "RunGroup", "auc", "group_runs", "group_table", "load_run", "mean_ci", "summarize", "t_quantile",
           "write_report"]
