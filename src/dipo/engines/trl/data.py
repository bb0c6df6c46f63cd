"""Datasets and reward functions for `dipo train`, resolved from names in the config.

No loading logic lives here: dataset names (`testbed:math`, `labels:PATH`, short names, files, hub ids,
or a user's `register_dataset`) resolve through the engine kit's dataset registry and reward names
through its reward registry (`dipo.engines.kit`). This module only maps the script's settings to them.
"""

from __future__ import annotations

from datasets import Dataset

from dipo.engines.kit import REWARD_FUNCTIONS, reward_functions  # noqa: F401  (the registry lives in the engine kit)
from dipo.engines.kit.datasets import DatasetOptions, load_prompt_dataset

# DatasetOptions field -> `dipo train` script argument
OPTION_SOURCES = {"problem_field": "problem_field", "answer_field": "answer_field", "config_name": "dataset_config",
                  "synthetic_size": "testbed_size", "levels": "testbed_levels", "reward_funcs": "reward_funcs"}


def dataset_options(script) -> DatasetOptions:
    """The registry's loader options from `dipo train`'s script arguments (unset ones keep their defaults)."""
    values = {option: getattr(script, name, None) for option, name in OPTION_SOURCES.items()}
    return DatasetOptions(**{option: tuple(v) if isinstance(v, list) else v
                             for option, v in values.items() if v is not None})


def load_prompts(spec: str, script, split: str, field: str = "dataset_name") -> Dataset:
    """A `datasets.Dataset` with `prompt` (chat messages or text) and the reward's columns (`answer`, ...).

    Raises:
        ValueError starting with `field` when the dataset is unknown or has no prompts.
    """
    try:
        return load_prompt_dataset(spec, split, dataset_options(script))
    except ValueError as exc:
        raise ValueError(f"{field}: {exc}") from None


def load_train(script) -> Dataset:
    data = load_prompts(script.dataset_name, script, script.dataset_train_split)
    if script.max_train_examples is not None:
        data = data.select(range(min(script.max_train_examples, len(data))))
    return data


def load_heldout(script) -> Dataset | None:
    if script.heldout_dataset is None:
        return None
    return load_prompts(script.heldout_dataset, script, script.dataset_test_split, field="heldout_dataset")
