"""Group-relative advantages (GRPO/DAPO) and DiPO's combined advantage (paper Eq. 10)."""

from __future__ import annotations

import torch

from dipo.core._util import group_index, require_finite, to_tensor
from dipo.core.config import ADVANTAGE_SCALES
from dipo.core.sampling import group_varies


def group_advantages(rewards, group_ids, scale: str = "group", eps: float = 1e-4) -> torch.Tensor:
    """GRPO advantage ``A_i = (r_i - mean_g(r)) / (std + eps)``.

    ``std`` is the unbiased std of the sample's group (``scale="group"``, GRPO/DAPO), of the whole
    batch (``"batch"``), or 1 with no ``eps`` (``"none"``, Dr. GRPO). Groups of one sample get 0.
    NaN or infinite rewards raise ``ValueError`` (they would silently poison their whole group).

    Args:
        rewards: ``[N]`` rewards.
        group_ids: ``[N]`` group ids, any order.
    Returns:
        ``[N]`` float tensor on the device of ``rewards``.
    """
    if scale not in ADVANTAGE_SCALES:
        raise ValueError(f"group_advantages: scale={scale!r} must be one of {ADVANTAGE_SCALES}")
    r = to_tensor(rewards, dtype=torch.float64)
    require_finite(r, "group_advantages")
    gidx_np, n_groups = group_index(group_ids)
    if gidx_np.size != r.numel():
        raise ValueError(f"group_advantages: {r.numel()} rewards but {gidx_np.size} group ids")
    gidx = torch.as_tensor(gidx_np, device=r.device)
    count = torch.zeros(n_groups, dtype=r.dtype, device=r.device).index_add_(0, gidx, torch.ones_like(r))
    mean = torch.zeros_like(count).index_add_(0, gidx, r) / count
    centred = r - mean[gidx]
    if scale == "group":
        sq = torch.zeros_like(count).index_add_(0, gidx, centred * centred)
        std = torch.sqrt(sq / (count - 1).clamp(min=1))
        adv = centred / (std[gidx] + eps)
    elif scale == "batch":
        adv = centred / (r.std() + eps) if r.numel() > 1 else torch.zeros_like(r)
    else:
        adv = centred
    adv = torch.where(count[gidx] > 1, adv, torch.zeros_like(adv))
    out_dtype = rewards.dtype if isinstance(rewards, torch.Tensor) and rewards.is_floating_point() else torch.float32
    return adv.to(out_dtype)


def flat_group_advantages(rewards, verifier_rewards, group_ids, scale: str = "group",
                          eps: float = 1e-4) -> torch.Tensor:
    """``A(R)`` of Eq. 10 under reward shaping, shape ``[N]``.

    ``A_i = group_advantages(rewards)_i`` if the verifier rewards vary within sample i's group, else 0.
    DAPO's dynamic sampling drops groups whose *verifier* rewards do not vary, so ``J_DAPO(A(R))``
    is zero there even when shaping (an overlong penalty, a format reward) makes ``rewards`` vary;
    without this, group-std normalisation would blow a 0.05 length penalty up to +-2.5 exactly in
    the groups BRR acts on.
    """
    base = group_advantages(rewards, group_ids, scale, eps)
    gidx, _ = group_index(group_ids)
    varies = torch.as_tensor(group_varies(verifier_rewards, group_ids)[gidx], device=base.device)
    return torch.where(varies, base, torch.zeros_like(base))


def dipo_advantages(rewards, realloc_rewards, group_ids, alpha: float = 0.1, scale: str = "group",
                    eps: float = 1e-4, verifier_rewards=None) -> torch.Tensor:
    """Combined DiPO advantage ``A(R) + alpha * A(R_r)``, shape ``[N]`` (paper Eq. 10).

    BRR only reallocates groups whose verifier rewards do not vary, where ``A(R) = 0`` (with shaped
    ``rewards``, pass ``verifier_rewards`` so :func:`flat_group_advantages` makes it so), and leaves
    ``R_r`` constant elsewhere (``A(R_r) = 0``). So one DAPO loss on this advantage equals
    ``J_DAPO(A(R)) + alpha * J_DAPO(A(R_r))``.
    """
    if verifier_rewards is None:
        base = group_advantages(rewards, group_ids, scale, eps)
    else:
        base = flat_group_advantages(rewards, verifier_rewards, group_ids, scale, eps)
    return base + alpha * group_advantages(realloc_rewards, group_ids, scale, eps)
