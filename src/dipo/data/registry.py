"""The dataset registry: a dataset name (``testbed:math``) or prefix (``labels:``) -> a loader of prompt rows.

Every engine resolves dataset names here (``dipo train``'s ``dataset_name`` and ``heldout_dataset``), so a
name means the same rows everywhere, and a user's own source is one call away::

    from dipo.data import register_dataset
    register_dataset("mydb:", lambda name, split, options: fetch_rows(name, split))  # "mydb:q1" -> name "q1"

A loader is ``loader(name, split, options) -> datasets.Dataset | list[dict]``: ``name`` is what follows
a prefix (the whole spec for an exact name), ``split`` the split asked for (``train``/``test`` for the
synthetic tasks), ``options`` a :class:`DatasetOptions`. Rows need a ``prompt`` (chat messages or text)
and the columns the reward functions read (``answer``, ...). Built-in entries:

- ``testbed:math``, ``testbed:tool``, ``testbed:risk`` (``dipo.testbed``) and ``testbed:arith``
  (``dipo.data.arith``): synthetic, offline, registered by the testbed package when it is imported
  (``dipo.testbed.datasets``; the engines import it, so every engine knows them);
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


REWARD_HELP = (
    "Reward functions, summed (see reward_weights): built-in names ('math' = boxed answer by math-verify, "
    "'tool_call' = function-call AST check) or dotted import paths of your own TRL-style reward function "
    "('my_pkg.rewards:fn' or 'my_pkg.rewards.fn'; the current directory is importable)."
)


@dataclass
class DatasetOptions:
    """What a loader may need besides the name and split. These are `dipo train`'s data settings too (its
    script arguments extend this class), so each is declared once, with TRL's names where TRL has one."""

    problem_field: str = field(default="problem", metadata={"help": "Column holding the problem text."})
    answer_field: str = field(default="answer", metadata={"help": "Column holding the gold answer."})
    dataset_config: str | None = field(
        default=None, metadata={"help": "Configuration name of a Hugging Face dataset (`name` of load_dataset)."}
    )
    testbed_size: int = field(default=512, metadata={"help": "Number of synthetic testbed problems (train split; "
                                                             "the test split has a quarter, at least 8)."})
    testbed_levels: list[int] = field(
        default_factory=lambda: [1, 2, 3, 4, 5],
        metadata={"help": "Difficulty levels of testbed problems: 1-5 graded, 6 = maths question twists "
                          "(confidently wrong at the warm start; maths only)."},
    )
    reward_funcs: list[str] = field(default_factory=lambda: ["math"], metadata={"help": REWARD_HELP})
    labels: list[str] | None = field(
        default=None, metadata={"help": "Label set of classification rows (default: the distinct gold labels)."})
    positive_label: str | None = field(
        default=None, metadata={"help": "Class of classification rows that precision/recall/F1 are reported for."})

    def __post_init__(self) -> None:
        if self.testbed_size < 1:
            raise ValueError(f"testbed_size={self.testbed_size!r}: must be >= 1")


def synthetic_rows(make_rows: Callable, split: str, options: DatasetOptions) -> list[dict]:
    """Rows of a synthetic task family (``make_rows(n, seed, levels, split)``): ``testbed_size`` train rows,
    a quarter (at least 8) test rows, without the SFT target."""
    split = "train" if split == "train" else "test"
    n = options.testbed_size if split == "train" else max(options.testbed_size // 4, 8)
    rows = make_rows(n, seed=0, levels=tuple(options.testbed_levels), split=split)
    return [{k: v for k, v in row.items() if k != "completion"} for row in rows]  # the SFT target stays out


def load_labels(name: str, split: str, options: DatasetOptions):
    """Classification rows from a file or hub id: text + label columns (``dipo.data.labels``)."""
    from dipo.data.labels import load_label_dataset

    return load_label_dataset(name, text_field=options.problem_field, label_field=options.answer_field, split=split,
                              labels=tuple(options.labels) if options.labels else None, positive_label=options.positive_label)


def load_file_or_hub(name: str, split: str, options: DatasetOptions):
    """A short name, file or hub id, read in the format the rewards expect (ToolRL, labels or maths rows)."""
    from dipo.data import load_math_dataset, load_toolrl_dataset

    if "tool_call" in options.reward_funcs:
        return load_toolrl_dataset(name)
    if "label" in options.reward_funcs:
        return load_labels(name, split, options)
    return load_math_dataset(name, problem_field=options.problem_field, answer_field=options.answer_field,
                             split=split, name=options.dataset_config)


# name, or prefix ending in ":", -> loader
DATASET_LOADERS: dict[str, DatasetLoader] = {
    "labels:": load_labels,
}
DEFAULT_LOADER: DatasetLoader = load_file_or_hub
PLUGIN_GROUP = "dipo.datasets"  # entry points: modules that register their loaders when imported
_plugins_loaded = False


def load_plugins() -> None:
    """Import, once, every module an installed package declares in the ``dipo.datasets`` entry-point group;
    each registers its loaders. dipo's own testbed is one (``pyproject.toml``), so the registry knows
    ``testbed:*`` without importing from the floor above; a package of yours can add names the same way."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for entry in entry_points(group=PLUGIN_GROUP):
        try:
            entry.load()
        except Exception as exc:  # a broken third-party plugin costs its names, not the run
            import sys

            print(f"dipo: warning: dataset plugin {entry.name} ({entry.value}) failed to load: {exc}", file=sys.stderr)


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
    load_plugins()
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

    load_plugins()
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
