"""Datasets and reward functions for `dipo train`, resolved from names in the config.

No loading logic lives here: synthetic tasks come from `dipo.testbed`, files and hub ids from
`dipo.data`, reward functions from the engine kit's registry (`dipo.engines.kit`). This module only maps
config values to them and checks that the rows have what TRL needs (`prompt`, plus the reward function's `answer`).
"""

from __future__ import annotations

from datasets import Dataset

from dipo.engines.kit import REWARD_FUNCTIONS, reward_functions  # noqa: F401  (the registry lives in the engine kit)


def _testbed_rows(kind: str, script, split: str) -> list[dict]:
    from dipo.testbed import tasks

    from dipo.data.arith import make_arith_tasks

    makers = {"math": tasks.make_math_tasks, "tool": tasks.make_tool_tasks, "risk": tasks.make_risk_tasks,
              "arith": make_arith_tasks}
    if kind not in makers:
        raise ValueError(f"dataset_name: unknown testbed task 'testbed:{kind}'; use one of "
                         f"{', '.join('testbed:' + k for k in makers)}")
    n = script.testbed_size if split == "train" else max(script.testbed_size // 4, 8)
    rows = makers[kind](n, seed=0, levels=tuple(script.testbed_levels), split=split)
    return [{k: v for k, v in row.items() if k != "completion"} for row in rows]  # the SFT target stays out


def load_prompts(spec: str, script, split: str) -> Dataset:
    """A `datasets.Dataset` with `prompt` (chat messages or text) and `answer` columns.

    The loader follows the reward: tool-call rewards read ToolRL-style rows
    (`dipo.data.load_toolrl_dataset`), otherwise maths rows with the configured field names
    (`dipo.data.load_math_dataset`, which also knows short names such as `math500`, `aime24`).
    """
    if spec.startswith("testbed:"):
        return Dataset.from_list(_testbed_rows(spec.split(":", 1)[1], script, "train" if split == "train" else "test"))
    from dipo.data import load_math_dataset, load_toolrl_dataset

    if "tool_call" in script.reward_funcs:
        data = load_toolrl_dataset(spec)
    elif "label" in script.reward_funcs:  # classification rows: text + label columns (dipo.data.labels)
        from dipo.data.labels import load_label_dataset

        data = load_label_dataset(spec, text_field=script.problem_field, label_field=script.answer_field, split=split)
    else:
        data = load_math_dataset(spec, problem_field=script.problem_field, answer_field=script.answer_field,
                                 split=split, name=script.dataset_config)
    if not isinstance(data, Dataset):
        data = Dataset.from_list(list(data))
    return data


def load_train(script) -> Dataset:
    data = load_prompts(script.dataset_name, script, script.dataset_train_split)
    if script.max_train_examples is not None:
        data = data.select(range(min(script.max_train_examples, len(data))))
    return data


def load_heldout(script) -> Dataset | None:
    return None if script.heldout_dataset is None else load_prompts(script.heldout_dataset, script, script.dataset_test_split)
