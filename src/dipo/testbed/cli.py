"""`dipo testbed [--check] [--force] [--field value ...]`: build (or find cached) the testbed policy.

Prints the model directory. `--check` also samples G=8 completions per prompt and prints the
per-level accuracy, the easy / normal / hard group mix RL starts from, and the perplexity regime
(PSD threshold and validity, median log-PPL of right and wrong answers, share of hard / easy
groups BRR would act on).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import MISSING, fields

from dipo._cli_util import ArgumentParser, add_debug_flag, filter_known_warnings, run_cli
from dipo.testbed.build import TestbedConfig, build_testbed
from dipo.testbed.tasks import RL_TEMPERATURE

SCALAR_FIELDS = [f for f in fields(TestbedConfig) if not isinstance(f.default, tuple) and f.default is not MISSING]


def _parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="dipo testbed", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in SCALAR_FIELDS:
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default,
                            help=f"{f.metadata['help']} (default: {f.default})")
    parser.add_argument("--force", action="store_true", help="rebuild even if a cached build exists")
    parser.add_argument("--check", action="store_true",
                        help="measure accuracy per level, the group-kind mix and the perplexity regime")
    parser.add_argument("--check-prompts", type=int, default=512,
                        help="prompts sampled by --check (default 512, the demo's training set size: at 120 the "
                             "easy-group share moves by about 4 points from one prompt sample to the next)")
    parser.add_argument("--temperature", type=float, default=RL_TEMPERATURE,
                        help=f"sampling temperature of --check (default: {RL_TEMPERATURE}, the one dipo demo trains at)")
    parser.add_argument("--split", choices=["train", "test"], default="test", help="task split used by --check")
    add_debug_flag(parser)
    return parser


def testbed(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    filter_known_warnings()
    if args.check_prompts < 1:
        raise ValueError(f"--check-prompts {args.check_prompts}: must be >= 1")
    config = TestbedConfig(**{f.name: getattr(args, f.name) for f in SCALAR_FIELDS})  # ValueError names the field
    started = time.perf_counter()
    path = build_testbed(config, force=args.force)
    print(f"testbed model: {path}  ({time.perf_counter() - started:.1f}s)")
    if args.check:
        from dipo.testbed.competence import group_kind_mix

        print(json.dumps(group_kind_mix(path, n_prompts=args.check_prompts, split=args.split,
                                        temperature=args.temperature), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli("dipo testbed", testbed, argv)
