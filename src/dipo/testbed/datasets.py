"""The testbed's synthetic tasks in the dataset registry (``dipo.data.registry``): importing ``dipo.testbed``
registers ``testbed:math``, ``testbed:tool``, ``testbed:risk`` and ``testbed:arith``. Task code is imported
on first use."""

from __future__ import annotations

from dipo.data.registry import DATASET_LOADERS, DatasetOptions, register_dataset, synthetic_rows


def load_testbed_math(name: str, split: str, options: DatasetOptions) -> list[dict]:
    """Synthetic graded arithmetic word problems (``dipo.testbed.tasks.make_math_tasks``)."""
    from dipo.testbed.tasks import make_math_tasks

    return synthetic_rows(make_math_tasks, split, options)


def load_testbed_tool(name: str, split: str, options: DatasetOptions) -> list[dict]:
    """Synthetic function-call tasks (``dipo.testbed.tasks.make_tool_tasks``)."""
    from dipo.testbed.tasks import make_tool_tasks

    return synthetic_rows(make_tool_tasks, split, options)


def load_testbed_risk(name: str, split: str, options: DatasetOptions) -> list[dict]:
    """Synthetic loan cases labelled low/high risk (``dipo.testbed.tasks.make_risk_tasks``)."""
    from dipo.testbed.tasks import make_risk_tasks

    return synthetic_rows(make_risk_tasks, split, options)


def load_testbed_arith(name: str, split: str, options: DatasetOptions) -> list[dict]:
    """Small-number addition a small real LM partly solves (``dipo.data.arith.make_arith_tasks``)."""
    from dipo.data.arith import make_arith_tasks

    return synthetic_rows(make_arith_tasks, split, options)


TESTBED_DATASETS = {"testbed:math": load_testbed_math, "testbed:tool": load_testbed_tool,
                    "testbed:risk": load_testbed_risk, "testbed:arith": load_testbed_arith}
for _name, _loader in TESTBED_DATASETS.items():
    if _name not in DATASET_LOADERS:  # a user's own registration of the name wins
        register_dataset(_name, _loader)
