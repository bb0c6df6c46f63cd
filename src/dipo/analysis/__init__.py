"""Run logs -> plots and an HTML report (`dipo analyze`)."""

from dipo.analysis.report import write_report
from dipo.analysis.runs import Run, auc, group_table, load_run, summarize

__all__ = ["Run", "auc", "group_table", "load_run", "summarize", "write_report"]
