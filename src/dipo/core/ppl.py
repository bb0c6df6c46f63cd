"""Sequence perplexity from per-token log-probabilities (paper Eq. 3)."""

from __future__ import annotations

import torch


def sequence_logppl(token_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of each completion over its masked tokens.

    ``logppl_i = -(1/T_i) * sum_t mask_{i,t} * l_{i,t}`` with ``T_i = sum_t mask_{i,t}``, and
    ``PPL_i = exp(logppl_i)``. DiPO works in log space throughout: thresholds compare log-PPLs.

    Args:
        token_logprobs: ``[N, T]`` log-probs of the sampled tokens under the sampling policy, at the
            sampling temperature. Values under ``mask == 0`` are ignored (may be anything, even NaN).
        mask: ``[N, T]`` 1 for completion tokens, 0 for padding and tool/environment tokens.

    Returns:
        ``[N]`` float tensor; a completion with no masked tokens gets NaN (excluded downstream).
    """
    if token_logprobs.shape != mask.shape or token_logprobs.dim() != 2:
        raise ValueError(
            f"sequence_logppl: token_logprobs {tuple(token_logprobs.shape)} and mask {tuple(mask.shape)} "
            "must both be [N, T]"
        )
    m = mask.to(dtype=torch.bool)
    lp = torch.where(m, token_logprobs.float(), torch.zeros((), dtype=torch.float32, device=token_logprobs.device))
    count = m.sum(dim=1)
    total = -lp.sum(dim=1)
    out = total / count.clamp(min=1)
    return torch.where(count > 0, out, torch.full_like(out, float("nan")))
