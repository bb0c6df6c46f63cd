"""Group-relative advantages (GRPO/DAPO). DiPO's combined advantage (paper Eq. 10) is `DiPO.step`'s."""

from __future__ import annotations

import torch

from dipo.core._util import group_index, require_finite, to_tensor
from dipo.core.config import ADVANTAGE_SCALES


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
