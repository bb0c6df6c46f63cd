"""DAPO's dynamic sampling filter, made DiPO-aware."""

from __future__ import annotations

import numpy as np
import torch

from dipo.core._util import group_index, to_numpy


def group_varies(values, group_ids, tol: float = 1e-8) -> np.ndarray:
    """``[n_groups]`` bool: the values differ within the group (max - min > tol)."""
    v = to_numpy(values).astype(np.float64).reshape(-1)
    gidx, n_groups = group_index(group_ids)
    hi = np.full(n_groups, -np.inf)
    lo = np.full(n_groups, np.inf)
    np.maximum.at(hi, gidx, v)
    np.minimum.at(lo, gidx, v)
    return (hi - lo) > tol


def dynamic_sampling_keep(rewards, group_ids, realloc_rewards=None, tol: float = 1e-8) -> torch.Tensor:
    """``[N]`` bool mask of samples whose group is kept by dynamic sampling.

    DAPO keeps a group when its rewards vary (``0 < acc < 1``). DiPO's targets are exactly the
    zero-variance groups, so with ``realloc_rewards`` a group is also kept when ``R_r`` varies in it.
    """
    gidx, _ = group_index(group_ids)
    keep = group_varies(rewards, group_ids, tol)
    if realloc_rewards is not None:
        keep |= group_varies(realloc_rewards, group_ids, tol)
    return torch.as_tensor(keep[gidx])
