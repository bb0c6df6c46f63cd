"""The reward registry: a reward name (``math``) or a dotted import path -> a TRL-style reward function.

Every engine resolves reward names here (TRL's ``reward_funcs``, verl's ``reward_fn``), so a name means
the same function everywhere. A reward function has TRL's signature ``f(completions, **columns) ->
list[float | None]``. Functions are imported on first use, so the registry costs no import.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

# built-in name -> "module:function"
REWARD_FUNCTIONS: dict[str, str] = {
    "math": "dipo.rewards:math_reward",
    "tool_call": "dipo.rewards:tool_call_reward",
    "final_number": "dipo.rewards.final_number:final_number_reward",
    "label": "dipo.rewards:label_reward",
}


def reward_target(name: str) -> tuple[str, str]:
    """(module, function) a reward name stands for, without importing anything (so configs can check their
    names before a model loads).

    Raises:
        ValueError naming the reward (with the closest built-in name) when it is neither a built-in name
        nor a dotted path ``package.module:function`` / ``package.module.function``.
    """
    from dipo._cli_util import unknown_message

    target = REWARD_FUNCTIONS.get(name, name)
    if ":" in target:
        module, _, attr = target.partition(":")
    elif "." in target:
        module, _, attr = target.rpartition(".")
    else:
        raise ValueError(f"reward_funcs: {unknown_message('reward', [name], REWARD_FUNCTIONS)}; built-in rewards "
                         f"are {tuple(REWARD_FUNCTIONS)}, or give a dotted path 'my_pkg.rewards:fn'")
    if not module or not attr:
        raise ValueError(f"reward_funcs: {name!r} is not 'package.module:function'")
    return module, attr


def reward_function(name: str) -> Callable:
    """A built-in name (``REWARD_FUNCTIONS``) or a dotted path ``my_pkg.rewards:fn`` / ``my_pkg.rewards.fn``
    (as ``trl grpo`` takes them). The module is imported from ``sys.path`` as it stands: reward code is
    code the user chose to run, so dipo never adds the working directory behind their back (a
    ``my_rewards.py`` beside a config is imported with ``PYTHONPATH=.``; docs/security.md).

    Raises:
        ValueError naming the reward when the name is unknown (`reward_target`), the module cannot be
        imported or has no such function.
    """
    module, attr = reward_target(name)
    try:
        func = getattr(importlib.import_module(module), attr, None)
    except ImportError as exc:
        top = module.split(".")[0]
        beside = Path(top + ".py").is_file() or Path(top, "__init__.py").is_file()
        hint = (f"; {top!r} is in the working directory, which is not on sys.path: dipo imports reward code only "
                "from sys.path, run with PYTHONPATH=. to use it") if beside else ""
        raise ValueError(f"reward_funcs: {name!r}: cannot import {module!r} ({exc}){hint}") from None
    if not callable(func):
        raise ValueError(f"reward_funcs: {name!r}: {module} has no function {attr!r}")
    return func


def reward_functions(names: list[str]) -> list[Callable]:
    """:func:`reward_function` of each name, in order."""
    return [reward_function(name) for name in names]
