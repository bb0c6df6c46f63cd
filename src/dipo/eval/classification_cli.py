"""`dipo eval` on classification sets (risk prediction): the options, the benchmark names, the run
and the table. `dipo.eval.cli` calls these hooks; the metrics are `dipo.eval.classification`'s.

Benchmark names: `testbed:risk` (the testbed's held-out loan cases) and `labels:PATH` (a
`.jsonl`/`.json`/`.parquet` file of text + label rows, `dipo.data.load_label_dataset`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

TESTBED_RISK = "testbed:risk"
LABELS_PREFIX = "labels:"
TESTBED_RISK_CASES = 200  # held-out cases of `testbed:risk` (before --limit)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The classification options of `dipo eval`."""
    group = parser.add_argument_group("classification sets (testbed:risk, labels:PATH)")
    group.add_argument("--text-field", default="text", help="labels:PATH column holding the case text")
    group.add_argument("--label-field", default="label", help="labels:PATH column holding the gold label")
    group.add_argument("--label-set", default=None,
                       help="comma-separated labels of labels:PATH (default: the distinct gold labels)")
    group.add_argument("--positive-label", default=None,
                       help="class of labels:PATH for precision/recall/F1 (default: none, per-label numbers only; "
                            "testbed:risk always uses high)")


def is_classification(spec: str) -> bool:
    return spec == TESTBED_RISK or spec.startswith(LABELS_PREFIX)


def split_specs(specs: list[str]) -> tuple[list[str], list[str]]:
    """(other benchmark specs, classification specs), order kept."""
    return [s for s in specs if not is_classification(s)], [s for s in specs if is_classification(s)]


def load_sets(specs: list[str], args) -> dict[str, list[dict]]:
    """Benchmark name -> rows (the test split), through the dataset registry like `dipo train`'s data,
    loaded before any model (bad files fail in a second)."""
    from dipo.data.registry import DatasetOptions, load_prompt_dataset

    labels = tuple(s.strip() for s in args.label_set.split(",")) if args.label_set else None
    options = DatasetOptions(problem_field=args.text_field, answer_field=args.label_field, labels=labels,
                             positive_label=args.positive_label,
                             testbed_size=4 * TESTBED_RISK_CASES)  # synthetic test split: a quarter of it
    sets = {}
    for spec in specs:
        name = "risk" if spec == TESTBED_RISK else Path(spec[len(LABELS_PREFIX):]).stem
        sets[name] = load_prompt_dataset(spec, "test", options).to_list()[: args.limit]
    return sets


def run(sets: dict[str, list[dict]], model, tokenizer, args, generate_fn: Callable | None) -> tuple[dict, list[dict]]:
    """Evaluate every set: (`{name: metrics}`, sample records tagged with their benchmark)."""
    from dipo.eval.classification import evaluate_classification

    results, samples = {}, []
    for name, rows in sets.items():
        m = evaluate_classification(model, tokenizer, rows, k=args.k, temperature=args.temperature, top_p=args.top_p,
                                    max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, seed=args.seed,
                                    progress=not args.no_progress, generate_fn=generate_fn, desc=name)
        samples += [{"benchmark": name, **r} for r in m.pop("records")]
        results[name] = m
    return results, samples


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def format_table(results: dict, k: int) -> str:
    """One line per classification set: n, accuracy (= mean@k), maj@k, precision/recall/F1 of the
    positive class over samples, share of samples with a label."""
    cols = [f"mean@{k}", f"maj@{k}", "precision", "recall", "f1", "answered"]
    lines = [f"{'classification':<16}{'n':>6}{'positive':>10}" + "".join(f"{c:>10}" for c in cols)]
    for name, m in results.items():
        lines.append(f"{name:<16}{m['n']:>6}{m['positive_label'] or '-':>10}"
                     + "".join(f"{_pct(m.get(c)):>10}" for c in cols))
    return "\n".join(lines)
