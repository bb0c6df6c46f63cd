"""Which reward functions decide correctness, and the verifier reward they give (pure functions).

TRL sums every reward function into one training reward. DiPO must not: a format or shaping reward
would make an all-wrong, well-formatted group "easy" (accuracy 0 + format 1 = r_max). So the
verifier reward -- group kinds, queue labels, BRR, `dipo/*` metrics, held-out accuracy -- comes from
the reward functions named in `DiPOConfig.correctness_reward_funcs` alone (default: the first one);
the others enter only the training reward behind `A(R)`.
"""

from __future__ import annotations

import torch


def resolve_correctness_funcs(spec: list | None, names: list[str]) -> list[int]:
    """Indices (into the trainer's reward functions) of the correctness functions.

    Args:
        spec: `DiPOConfig.correctness_reward_funcs`: names or indices (ints, or digit strings from the
            command line); None = the first reward function.
        names: the trainer's `reward_func_names`, in order.
    Raises:
        ValueError naming the field when an entry matches no reward function.
    """
    if not names:
        raise ValueError("DiPOTrainer needs at least one reward function (the verifier)")
    if spec is None:
        return [0]
    if isinstance(spec, (str, int)):
        spec = [spec]
    indices: list[int] = []
    for entry in spec:
        if isinstance(entry, bool):
            index = None
        elif isinstance(entry, int) or (isinstance(entry, str) and entry.isdigit()):
            index = int(entry) if int(entry) < len(names) else None
        else:
            index = names.index(entry) if entry in names else None
        if index is None:
            raise ValueError(
                f"DiPOConfig.correctness_reward_funcs={list(spec)!r}: {entry!r} is not a reward function name or "
                f"index; the reward functions are {list(enumerate(names))}"
            )
        if index not in indices:
            indices.append(index)
    if not indices:
        raise ValueError("DiPOConfig.correctness_reward_funcs=[]: name at least one reward function (or null)")
    return indices


def verifier_rewards(rewards_per_func: torch.Tensor, indices: list[int], r_min: float) -> torch.Tensor:
    """``[N, F] -> [N]``: the sum of the correctness functions' raw (unweighted) rewards per sample.

    NaN is TRL's "this function does not apply to this sample" (e.g. a maths verifier on a tool-call
    row): it is skipped; a sample no correctness function applies to gets ``r_min`` (a failure).
    """
    cols = rewards_per_func[:, indices]
    none_applies = torch.isnan(cols).all(dim=1)
    out = cols.nansum(dim=1)
    out[none_applies] = r_min
    return out
