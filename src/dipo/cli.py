"""The `dipo` command: `dipo train | eval | analyze | demo | testbed | core-example`.

Each subcommand lives beside the code it drives and is imported only when called, so
`dipo --help` stays instant and a missing optional extra only breaks its own subcommand.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module with a `main(argv) -> int`, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("dipo.engines.trl.cli", "train GRPO / DAPO / DiPO / CDE with the TRL engine from a YAML config"),
    "eval": ("dipo.eval.cli", "evaluate a model on maths benchmarks (mean@k, maj@k, pass@k) and BFCL"),
    "probe": ("dipo.probe", "will DiPO do anything on my model and data? log-PPL of right vs wrong, PSD, BRR"),
    "data": ("dipo.data.cli", "list or prepare the paper's datasets (pinned Hugging Face revisions)"),
    "analyze": ("dipo.analysis.cli", "plots and an HTML report from one or more run directories"),
    "demo": ("dipo.demo", "offline CPU demo: DAPO vs DiPO on the tiny testbed, with a report"),
    "testbed": ("dipo.testbed.cli", "build (or show) the cached tiny offline testbed model"),
    "core-example": ("dipo.core.example", "run one DiPO step of the algorithm core on a random batch"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dipo",
        description="DiPO: Disentangled Perplexity Policy Optimization (arXiv 2604.13902).",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if argv and not argv[0].startswith("-") and argv[0] not in SUBCOMMANDS:
        from dipo._cli_util import unknown_message

        print(f"dipo: error: {unknown_message('command', [argv[0]], SUBCOMMANDS)}; see dipo --help", file=sys.stderr)
        return 2
    if not argv or argv[0] not in SUBCOMMANDS:
        args = parser.parse_args(argv)
        if args.version:
            from dipo import __version__

            print(__version__)
            return 0
        parser.print_help()
        return 0
    module_name, _ = SUBCOMMANDS[argv[0]]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # an optional extra is missing
        print(f"dipo {argv[0]}: cannot import {module_name}: {exc}\n"
              f"Install the extras it needs, e.g. pip install 'dipo-rl[trl,eval]'.", file=sys.stderr)
        return 2
    from dipo._cli_util import run_cli

    return run_cli(f"dipo {argv[0]}", module.main, argv[1:])


if __name__ == "__main__":
    sys.exit(main())
