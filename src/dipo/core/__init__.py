"""The DiPO algorithm core: pure functions over tensors plus the PPL queue (numpy/torch only).

Paper map (arXiv 2604.13902): perplexity ``sequence_logppl`` (Eq. 3), PPL queue
``PerplexityQueue`` (Eq. 4), PSD ``split_perplexity_space`` (Eqs. 5-7, Alg. 1), BRR
``reallocate_rewards`` (Alg. 2), objective: ``DiPO.step`` (``advantages``
= ``A(R) + alpha * A(R_r)``, or ``extra_advantages`` for an engine's own ``A(R)``) + ``dapo_token_loss``
(Eq. 10). ``DiPO.step`` chains them for an engine.
"""

from dipo.core.advantages import group_advantages
from dipo.core.brr import Reallocation, classify_groups, is_correct, reallocate_rewards
from dipo.core.config import DiPOConfig
from dipo.core.losses import dapo_token_loss
from dipo.core.ppl import sequence_logppl
from dipo.core.psd import (
    QUADRANTS,
    PerplexitySplit,
    best_threshold,
    separation_p_value,
    split_perplexity_space,
)
from dipo.core.queue import PerplexityQueue
from dipo.core.sampling import dynamic_sampling_keep, group_varies
from dipo.core.shaping import cde_weight, overlong_penalty, perplexity_bonus
from dipo.core.step import DiPO, DiPOStep, step_metrics

__all__ = [
    "DiPO",
    "DiPOConfig",
    "DiPOStep",
    "PerplexityQueue",
    "PerplexitySplit",
    "QUADRANTS",
    "Reallocation",
    "best_threshold",
    "cde_weight",
    "classify_groups",
    "dapo_token_loss",
    "dynamic_sampling_keep",
    "group_advantages",
    "group_varies",
    "is_correct",
    "overlong_penalty",
    "perplexity_bonus",
    "reallocate_rewards",
    "sequence_logppl",
    "separation_p_value",
    "split_perplexity_space",
    "step_metrics",
]
