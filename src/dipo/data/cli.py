"""`dipo data list` and `dipo data prepare NAME [NAME ...] [--out DIR] [--revision REV]`.

`prepare` downloads the paper's datasets at pinned revisions into the loader layout (see
`dipo.data.prepare`); `list` shows every source and where each short name resolves now.
"""

from __future__ import annotations

import os
from pathlib import Path

from dipo._cli_util import ArgumentParser, add_debug_flag, run_cli
from dipo.data.loaders import PREPARED_DIR, SHORT_NAMES, find_data_file
from dipo.data.prepare import SOURCES, prepare, source_name


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog="dipo data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="the datasets `prepare` knows and where each short name resolves")
    prep = sub.add_parser("prepare", help="download datasets (pinned revisions) into the loader layout")
    prep.add_argument("names", nargs="+", metavar="NAME", help=f"one or more of {sorted(SOURCES)}")
    prep.add_argument("--out", default=None,
                      help=f"output data directory (default: $DIPO_DATA_DIR, else ./{PREPARED_DIR})")
    prep.add_argument("--revision", default=None, help="another revision (commit) of the source than the pinned one")
    for p in (parser, prep):
        add_debug_flag(p)
    return parser


def _list() -> None:
    for name, source in SOURCES.items():
        print(f"{name:14s} {source.repo}@{source.revision[:12]}  {source.licence}  {source.note}".rstrip())
        for relative, rows in source.rows.items():
            if relative.startswith("bfcl/"):
                continue
            print(f"    {relative:32s} {rows:>7d} rows")
    print("\nshort names (dipo train --dataset / dipo eval --benchmarks):")
    for short, relative in SHORT_NAMES.items():
        try:
            where = str(find_data_file(relative))
        except FileNotFoundError:
            where = "not prepared"
        print(f"    {short:16s} {where}")


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.action == "list":
        _list()
        return 0
    names = [source_name(n) for n in args.names]  # all names checked before any download
    out = Path(args.out or os.environ.get("DIPO_DATA_DIR") or PREPARED_DIR)
    for name in names:
        print(f"dipo data: preparing {name} from {SOURCES[name].repo}@{args.revision or SOURCES[name].revision}")
        for path in prepare(name, out, revision=args.revision):
            print(f"  wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli("dipo data", _main, argv)
