"""Small conversions shared by the core modules (numpy <-> torch, group indexing)."""

from __future__ import annotations

import numpy as np
import torch


def to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def to_tensor(x, dtype=torch.float32, device=None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(dtype=dtype, device=device if device is not None else x.device)
    return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)


def group_index(group_ids) -> tuple[np.ndarray, int]:
    """Dense group index ``[N]`` in ``0..n_groups-1`` (in order of first appearance) and ``n_groups``.

    Group ids may be any sortable values (ints, strings such as verl's ``uid``) in any order.
    """
    ids = to_numpy(group_ids).reshape(-1)
    if ids.size and ids.dtype.kind in "biuU":  # fast path, O(N): each group one contiguous run (TRL, verl)
        new_run = np.empty(ids.size, dtype=bool)
        new_run[0] = True
        np.not_equal(ids[1:], ids[:-1], out=new_run[1:])
        heads = np.sort(ids[new_run])  # (np.unique hashes: ~50x slower here in numpy 2.4)
        if not (heads[1:] == heads[:-1]).any():
            return np.cumsum(new_run) - 1, int(heads.size)
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    # relabel so that groups are numbered in order of first appearance (stable, readable records)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[inverse.reshape(-1)], int(order.size)


def require_finite(values: torch.Tensor, where: str, what: str = "rewards") -> None:
    """Raise ``ValueError`` naming ``where`` and the count if ``values`` holds NaN or +-inf.

    One non-finite reward would turn its whole group's mean and std, hence every advantage of the
    group, into NaN without a word; a caller must map unscorable samples to a number (e.g. ``r_min``).
    """
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        n_nan = int(torch.isnan(values).sum())
        raise ValueError(
            f"{where}: {int(bad.sum())} of {values.numel()} {what} are not finite ({n_nan} NaN, "
            f"{int(bad.sum()) - n_nan} inf); give unscorable samples a number such as r_min"
        )
