"""Reward shaping: DAPO's overlong penalty and CDE's perplexity (actor-curiosity) bonus baseline."""

from __future__ import annotations

import math

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


CDE_SCHEDULES = ("staircase", "linear", "cosine", "constant")


def perplexity_bonus(rewards, logppl, weight: float = 0.1, kappa: float = 2.0, a: float = 1.0,
                     r_min: float = 0.0, r_max: float = 1.0, verifier_rewards=None) -> torch.Tensor:
    """CDE's actor-curiosity reward (Dai et al. 2025, arXiv 2509.09675, Eq. 2), ``[N] -> [N]``.

    CDE shapes a verifier reward on the +-1 scale: ``r~ = r + w_t * min(|r| / kappa, a * B)`` with
    ``r in {-1, +1}`` (their Appendix D) and ``B`` the response's log-PPL (Eq. 1). On that scale a wrong
    answer is *not* bonus-free: every response gets ``min(1/kappa, a * logppl)``, so among wrong
    answers the confident (low-PPL) ones are penalised most (their Theorem 3.1). Here the verifier's
    ``[r_min, r_max]`` reward is mapped to +-1 (``r_pm = 2 (v - r_min) / (r_max - r_min) - 1``), the
    bonus computed there and mapped back by the same affine map, i.e. added as
    ``w * (r_max - r_min) / 2 * min(|r_pm| / kappa, a * logppl)`` to ``rewards`` (GRPO's group
    normalisation is invariant to that map, so this trains exactly as CDE on +-1 rewards).

    Args:
        rewards: ``[N]`` training rewards the bonus is added to.
        logppl: ``[N]`` log-PPLs; a NaN log-PPL gets no bonus.
        weight: ``w_t`` at this step (see :func:`cde_weight`). kappa: cap ``|r| / kappa``, > 1 keeps the
            sign of the reward. a: slope on the log-PPL.
        verifier_rewards: ``[N]`` the correctness rewards ``|r|`` is taken from (default ``rewards``).
    """
    r = to_tensor(rewards)
    v = r if verifier_rewards is None else to_tensor(verifier_rewards, device=r.device)
    lp = to_tensor(logppl, device=r.device)
    r_pm = 2.0 * (v - r_min) / (r_max - r_min) - 1.0
    bonus = torch.minimum(r_pm.abs() / kappa, a * lp)
    bonus = torch.where(torch.isfinite(bonus), bonus, torch.zeros_like(bonus))
    return r + weight * (r_max - r_min) / 2.0 * bonus


def cde_weight(step: int, total_steps: int, initial: float, schedule: str = "staircase",
               decay_fraction: float = 0.5) -> float:
    """CDE's bonus weight ``w_t`` at training step ``step`` of ``total_steps`` (CDE §4.3, Fig. 7, Table 2).

    CDE compares four schedules and finds that decay is necessary and that the staircase, which keeps
    the full weight early and then removes the bonus abruptly, works best:

    - ``staircase``: ``initial`` while ``step < decay_fraction * total_steps``, then 0 (CDE's best);
    - ``linear`` / ``cosine``: from ``initial`` down to 0 at ``total_steps``;
    - ``constant``: ``initial`` throughout (CDE's "no decay" ablation).
    """
    if schedule not in CDE_SCHEDULES:
        raise ValueError(f"cde_weight: schedule={schedule!r} must be one of {CDE_SCHEDULES}")
    progress = min(max(step / max(total_steps, 1), 0.0), 1.0)
    if schedule == "constant":
        return float(initial)
    if schedule == "staircase":
        return float(initial) if progress < decay_fraction else 0.0
    if schedule == "linear":
        return float(initial) * (1.0 - progress)
    return float(initial) * 0.5 * (1.0 + math.cos(math.pi * progress))
