"""The dataset registry: a dataset name (``testbed:math``) or prefix (``labels:``) -> a loader of prompt rows.

Every engine resolves dataset names here (``dipo train``'s ``dataset_name`` and ``heldout_dataset``), so a
name means the same rows everywhere, and a user's own source is one call away::

    from dipo.engines.kit import register_dataset
    register_dataset("mydb:", lambda name, split, options: fetch_rows(name, split))  # "mydb:q1" -> name "q1"

A loader is ``loader(name, split, options) -> datasets.Dataset | list[dict]``: ``name`` is what follows
a prefix (the whole spec for an exact name), ``split`` the split asked for (``train``/``test`` for the
synthetic tasks), ``options`` a :class:`DatasetOptions`. Rows need a ``prompt`` (chat messages or text)
and the columns the reward functions read (``answer``, ...). Built-in entries:

- ``testbed:math``, ``testbed:tool``, ``testbed:risk`` (``dipo.testbed``) and ``testbed:arith``
  (``dipo.data.arith``): synthetic, offline;
- ``labels:PATH``: classification rows, text in ``problem_field`` and label in ``answer_field``
  (``dipo.data.labels``);
- anything else: a short name of the data directory (``aime24``, ``rlla_4k``, ...), a ``.jsonl``/``.json``/
  ``.parquet`` file or a Hugging Face dataset id (``dipo.data``), read as ToolRL rows when the rewards
  include ``tool_call``, as label rows with ``label``, else as maths rows.

Loaders are imported on first use, so the registry costs no import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DatasetLoader = Callable[[str, str, "DatasetOptions"], Any]


@dataclass(frozen=True)
class DatasetOptions:
    """What a loader may need besides the name and split (``dipo train``'s data settings)."""

    problem_field: str = field(default="problem", metadata={"help": "column holding the problem (or case) text"})
    answer_field: str = field(default="answer", metadata={"help": "column holding the gold answer (or label)"})
    config_name: str | None = field(default=None, metadata={"help": "Hugging Face dataset configuration name"})
    synthetic_size: int = field(default=512, metadata={"help": "synthetic train rows; test: a quarter, at least 8"})
    levels: tuple[int, ...] = field(default=(1, 2, 3, 4, 5), metadata={"help": "synthetic difficulty levels"})
    reward_funcs: tuple[str, ...] = field(default=("math",), metadata={"help": "reward names: pick a file's format"})
    labels: tuple[str, ...] | None = field(
        default=None, metadata={"help": "label set of classification rows (default: the distinct gold labels)"})
    positive_label: str | None = field(
        default=None, metadata={"help": "class of classification rows that precision/recall/F1 are reported for"})


def _synthetic(make_rows: Callable, split: str, options: DatasetOptions) -> list[dict]:
    split = "train" if split == "train" else "test"
    n = options.synthetic_size if split == "train" else max(options.synthetic_size // 4, 8)
    rows = make_rows(n, seed=0, levels=tuple(options.levels), split=split)
    return [{k: v for k, v in row.items() if k != "completion"} for row in rows]  # the SFT target stays out


def load_testbed_math(name: str, split: str, options: DatasetOptions) -> list[dict]:
    """Synthetic graded arithmetic word problems (``dipo.testbed.tasks.make_math_tasks``)."""
    from dipo.testbed.tasks import make_math_tasks

    return _synthetic(make_math_tasks, split, options)


def load_testbed_tool(name: str, split: str, options: DatasetOptions) -> list[dict]:
    """Synthetic function-call tasks (``dipo.testbed.tasks.make_tool_tasks``)."""
    from dipo.testbed.tasks import make_tool_tasks

    return _synthetic(make_tool_tasks, split, options)


def load_testbed_risk(name: str, split: str, options: DatasetOptions) -> list[dict]:
    """Synthetic loan cases labelled low/high risk (``dipo.testbed.tasks.make_risk_tasks``)."""
    from dipo.testbed.tasks import make_risk_tasks

    return _synthetic(make_risk_tasks, split, options)


def load_testbed_arith(name: str, split: str, options: DatasetOptions) -> list[dict]:
    """Small-number addition a small real LM partly solves (``dipo.data.arith.make_arith_tasks``)."""
    from dipo.data.arith import make_arith_tasks

    return _synthetic(make_arith_tasks, split, options)


def load_labels(name: str, split: str, options: DatasetOptions):
    """Classification rows from a file or hub id: text + label columns (``dipo.data.labels``)."""
    from dipo.data.labels import load_label_dataset

    return load_label_dataset(name, text_field=options.problem_field, label_field=options.answer_field, split=split,
                              labels=options.labels, positive_label=options.positive_label)


def load_file_or_hub(name: str, split: str, options: DatasetOptions):
    """A short name, file or hub id, read in the format the rewards expect (ToolRL, labels or maths rows)."""
    from dipo.data import load_math_dataset, load_toolrl_dataset

    if "tool_call" in options.reward_funcs:
        return load_toolrl_dataset(name)
    if "label" in options.reward_funcs:
        return load_labels(name, split, options)
    return load_math_dataset(name, problem_field=options.problem_field, answer_field=options.answer_field,
                             split=split, name=options.config_name)


# name, or prefix ending in ":", -> loader
DATASET_LOADERS: dict[str, DatasetLoader] = {
    "testbed:math": load_testbed_math,
    "testbed:tool": load_testbed_tool,
    "testbed:risk": load_testbed_risk,
    "testbed:arith": load_testbed_arith,
    "labels:": load_labels,
}
DEFAULT_LOADER: DatasetLoader = load_file_or_hub


def register_dataset(name: str, loader: DatasetLoader, *, replace: bool = False) -> None:
    """Make ``name`` load with ``loader``: an exact name (``"my_set"``, ``"mydb:train"``) or a prefix ending
    in ``:`` (``"mydb:"``: ``mydb:ANYTHING`` loads ``ANYTHING``). Exact names win over prefixes.

    Raises:
        ValueError when the name is empty or taken (unless ``replace``), or the loader is not callable.
    """
    if not isinstance(name, str) or not name.strip(":"):
        raise ValueError(f"register_dataset: {name!r} is not a dataset name or 'prefix:'")
    if not callable(loader):
        raise ValueError(f"register_dataset: the loader of {name!r} is not callable: {loader!r}")
    if name in DATASET_LOADERS and not replace:
        raise ValueError(f"register_dataset: {name!r} is registered already; pass replace=True to replace it")
    DATASET_LOADERS[name] = loader


def resolve_dataset(spec: str) -> tuple[DatasetLoader, str]:
    """The loader of ``spec`` and the name it gets: an exact name, else the longest registered prefix, else
    the file/short-name/hub loader.

    Raises:
        ValueError naming ``spec`` when it uses a registered family (``testbed:``) with an unknown name.
    """
    if spec in DATASET_LOADERS:
        return DATASET_LOADERS[spec], spec
    prefixes = [p for p in DATASET_LOADERS if p.endswith(":") and spec.startswith(p)]
    if prefixes:
        prefix = max(prefixes, key=len)
        return DATASET_LOADERS[prefix], spec[len(prefix):]
    family = spec.partition(":")[0] + ":"
    if ":" in spec and any(name.startswith(family) for name in DATASET_LOADERS):
        known = sorted(name for name in DATASET_LOADERS if name.startswith(family))
        raise ValueError(f"unknown {family[:-1]} task {spec!r}; use one of {', '.join(known)}")
    return DEFAULT_LOADER, spec


def with_name_hint(err: Exception, spec: str) -> Exception:
    """``err`` (a dataset that could not be found) with the closest registered name appended when ``spec``
    looks like a misspelt one (``testbed`` -> ``did you mean testbed:math?``); ``err`` itself otherwise."""
    from dipo._cli_util import closest

    names = [name for name in DATASET_LOADERS if not name.endswith(":")]
    family = [name for name in names if name.startswith(spec + ":")]  # `testbed`: the family's first task
    guess = family[0] if family else closest(spec, names)
    return type(err)(f"{err} (did you mean {guess}?)") if guess and guess != spec else err


def load_prompt_dataset(spec: str, split: str, options: DatasetOptions | None = None):
    """Rows of ``spec`` as a ``datasets.Dataset`` with a ``prompt`` column, through the registry.

    Raises:
        ValueError naming ``spec`` when it is unknown, empty, or its rows have no ``prompt``.
    """
    from datasets import Dataset

    loader, name = resolve_dataset(spec)
    try:
        data = loader(name, split, options or DatasetOptions())
    except FileNotFoundError as err:
        raise with_name_hint(err, spec) from None
    if not isinstance(data, Dataset):
        data = Dataset.from_list(list(data))
    if len(data) == 0:
        raise ValueError(f"dataset {spec!r}: no rows")
    if "prompt" not in data.column_names:
        raise ValueError(f"dataset {spec!r}: its rows have no 'prompt' column (columns: {data.column_names})")
    return data
