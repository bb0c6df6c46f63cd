"""verl reward function that runs any of dipo's TRL-signature rewards (``dipo.rewards``).

verl calls ``compute_score(data_source, solution_str, ground_truth, extra_info, **reward_kwargs)`` per
sample (``reward.custom_reward_function``: ``path: pkg://dipo.engines.verl.rewards``,
``name: compute_score``, ``reward_kwargs`` merged in). dipo's rewards have TRL's signature
``f(completions, **dataset_columns) -> list[float]``. This bridge passes the one completion, the gold
answer under ``answer_field`` and the row's ``extra_info`` entries as columns, and returns
``{"score": r, "acc": r}`` so DiPO's ``correct_key: acc`` reads the verifier's reward. A reward
function that raises gives 0 (a bad completion must not stop a run) and is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cache

from dipo.engines.kit import reward_function

logger = logging.getLogger(__name__)


@cache
def load_reward_fn(spec: str) -> Callable:
    """A reward name (``math``) or path (``package.module:function``) -> the function (cached per process)."""
    return reward_function(spec)


def compute_score(data_source, solution_str, ground_truth, extra_info=None, *,
                  reward_fn: str = "dipo.rewards:math_reward", answer_field: str = "answer", **_: object) -> dict:
    """One sample's ``{"score", "acc"}`` from a dipo TRL-signature reward function."""
    fn = load_reward_fn(reward_fn)
    columns = {key: [value] for key, value in dict(extra_info or {}).items() if key != answer_field}
    columns[answer_field] = [ground_truth]
    try:
        reward = float(fn([solution_str], **columns)[0])
    except Exception as err:  # model output must never crash a run
        logger.warning("reward %s failed on a %s sample (%r): reward 0", reward_fn, data_source, err)
        reward = 0.0
    return {"score": reward, "acc": reward}
