"""`dipo analyze RUN_DIR [RUN_DIR ...] [--out DIR] [--labels a,b] [--steps 1,20,60]`.

Reads each run's config.yaml, metrics.jsonl and rollouts/*.parquet and writes figures (PNG + SVG),
summary.json and one report.html. Runs of one method (same config up to the seed) are overlaid as
their mean with a 95% t band, and the report gives mean ± 95% t-interval over seeds (see
docs/analysis.md). With one run the report goes into that run directory by default.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dipo._cli_util import ArgumentParser, UsageError, add_debug_flag, run_cli
from dipo.analysis.report import write_report
from dipo.analysis.runs import load_run


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated step numbers, got {text!r}") from None


def check_steps(runs, steps: list[int] | None) -> None:
    """Refuse histogram steps some run has no rollout records for (instead of an empty panel)."""
    for run in runs if steps else []:
        have = set(int(s) for s in run.rollout_steps())
        missing = [s for s in steps if s not in have]
        if missing:
            where = f"steps {min(have)}..{max(have)}" if have else "no steps (no rollouts/ folder)"
            raise UsageError(f"--steps {','.join(map(str, missing))}: run {run.path} has rollout records for {where}")


def analyze(argv: list[str]) -> int:
    parser = ArgumentParser(prog="dipo analyze", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run directories (metrics.jsonl + rollouts/)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default: the run directory for one run, ./dipo-report for several)")
    parser.add_argument("--labels", default=None, help="comma-separated labels, one per run; runs sharing a label are seeds of one method "
                             "(default: the method in each run's config.yaml, else the directory name)")
    parser.add_argument("--steps", type=_int_list, default=None,
                        help="steps for the log-PPL histograms (default: first, middle, last)")
    parser.add_argument("--title", default="DiPO run report", help="report title")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    labels = args.labels.split(",") if args.labels else [None] * len(args.runs)
    if len(labels) != len(args.runs):
        raise UsageError(f"--labels: got {len(labels)} labels for {len(args.runs)} runs")
    runs = [load_run(path, label) for path, label in zip(args.runs, labels)]
    check_steps(runs, args.steps)
    out = args.out or (args.runs[0] if len(args.runs) == 1 else Path("dipo-report"))
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file, not a directory")
    path = write_report(runs, out, ppl_steps=args.steps, title=args.title)
    print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli("dipo analyze", analyze, argv)


if __name__ == "__main__":
    sys.exit(main())
