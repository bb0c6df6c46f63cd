"""Reward shaping: DAPO's overlong penalty and the CDE-style perplexity bonus baseline."""

from __future__ import annotations

import torch

from dipo.core._util import to_tensor


def overlong_penalty(lengths, max_length: int, buffer_length: int, factor: float = 1.0) -> torch.Tensor:
    """DAPO's soft overlong punishment (DAPO Eq. 13), ``[N]`` values in ``[-factor, 0]``.

    ``0`` if ``L <= L_max - L_cache``; ``((L_max - L_cache) - L) / L_cache`` if
    ``L_max - L_cache < L <= L_max``; ``-1`` beyond ``L_max``; all times ``factor``.
    """
    if buffer_length <= 0 or buffer_length > max_length:
        raise ValueError(
            f"overlong_penalty: buffer_length={buffer_length} must lie in (0, max_length={max_length}]"
        )
    length = to_tensor(lengths, dtype=torch.float32)
    start = max_length - buffer_length
    pen = torch.clamp((start - length) / buffer_length, min=-1.0, max=0.0)
    return pen * factor


def perplexity_bonus(rewards, logppl, weight: float = 0.1, kappa: float = 2.0, a: float = 1.0) -> torch.Tensor:
    """CDE-style perplexity reward shaping baseline: ``r + w * min(|r| / kappa, a * logppl)``.

    The bonus grows with the answer's log-PPL (curiosity) but is capped by ``|r| / kappa`` so it never
    outweighs the verifier; a NaN log-PPL gets no bonus. Shapes ``[N] -> [N]``.
    """
    r = to_tensor(rewards)
    lp = to_tensor(logppl, device=r.device)
    bonus = torch.minimum(r.abs() / kappa, a * lp)
    bonus = torch.where(torch.isfinite(bonus), bonus, torch.zeros_like(bonus))
    return r + weight * bonus
