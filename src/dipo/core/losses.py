"""The DAPO policy loss: token-level aggregation with decoupled clipping (clip-higher)."""

from __future__ import annotations

import torch

LOSS_AGGREGATIONS = ("token_mean", "seq_mean_token_mean")


def dapo_token_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    aggregation: str = "token_mean",
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped surrogate ``-min(rho*A, clip(rho, 1-eps_low, 1+eps_high)*A)`` per token.

    ``rho_{i,t} = exp(logprobs - old_logprobs)``. ``token_mean`` (DAPO) averages over all tokens of
    the batch, so long answers weigh by their length; ``seq_mean_token_mean`` (GRPO) averages per
    sequence first.

    Args:
        logprobs / old_logprobs: ``[N, T]`` current and behaviour-policy token log-probs.
        advantages: ``[N]`` sequence advantages (broadcast over tokens).
        mask: ``[N, T]`` 1 on completion tokens.
    Returns:
        ``(loss, stats)``: scalar loss and ``{"clip_frac_low", "clip_frac_high"}``.
    """
    if aggregation not in LOSS_AGGREGATIONS:
        raise ValueError(f"dapo_token_loss: aggregation={aggregation!r} must be one of {LOSS_AGGREGATIONS}")
    m = mask.to(logprobs.dtype)
    ratio = torch.exp(logprobs - old_logprobs)
    adv = advantages.to(logprobs.dtype).unsqueeze(1)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high) * adv
    per_token = -torch.minimum(unclipped, clipped)
    if aggregation == "token_mean":
        loss = (per_token * m).sum() / m.sum().clamp(min=1.0)
    else:
        per_seq = (per_token * m).sum(1) / m.sum(1).clamp(min=1.0)
        loss = per_seq.mean()
    with torch.no_grad():
        n_tok = m.sum().clamp(min=1.0)
        low = ((ratio < 1.0 - clip_low) & (adv < 0)).to(m.dtype)
        high = ((ratio > 1.0 + clip_high) & (adv > 0)).to(m.dtype)
        stats = {"clip_frac_low": float((low * m).sum() / n_tok), "clip_frac_high": float((high * m).sum() / n_tok)}
    return loss, stats
