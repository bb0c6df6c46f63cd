"""Datasets and reward functions for `dipo train`, resolved from names in the config.

No loading logic lives here: dataset names (`testbed:math`, `labels:PATH`, short names, files, hub ids,
or a user's `register_dataset`) resolve through the dataset registry and reward names
through the reward registry (`dipo.data.registry`, `dipo.rewards.registry`); `dipo train`'s script
arguments are the registry's `DatasetOptions`, so they go to the loaders as they are.
"""

from __future__ import annotations

from datasets import Dataset

from dipo.data.registry import load_prompt_dataset
from dipo.rewards.registry import REWARD_FUNCTIONS, reward_functions  # noqa: F401  (re-exported for callers)


def load_prompts(spec: str, script, split: str, field: str = "dataset_name") -> Dataset:
    """A `datasets.Dataset` with `prompt` (chat messages or text) and the reward's columns (`answer`, ...).

    Raises:
        ValueError starting with `field` when the dataset is unknown or has no prompts.
    """
    try:
        return load_prompt_dataset(spec, split, script)  # the script arguments are DatasetOptions
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
