"""Bidirectional Reward Reallocation (BRR, paper Algorithm 2).

Builds a reallocated reward vector ``R_r`` beside the verifier's ``R`` (which is never edited).
Only zero-variance groups are touched:

- hard group (all at ``r_min``) lying in the exploitation space (confidently wrong): its
  maximum-PPL sample gets ``r_max``, the others ``r_min`` -- *maximum-PPL reward* (explore);
- easy group (all at ``r_max``) lying in the exploration space (uncertain right): its maximum-PPL
  sample gets ``r_min``, the others ``r_max`` -- *maximum-PPL penalty* (exploit);
- every other group: ``R_r = 0`` for all samples (zero advantage).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dipo.core._util import group_index, to_numpy, to_tensor
from dipo.core.config import GROUP_RULES
from dipo.core.psd import PerplexitySplit

CORRECT_TOL = 1e-6  # float slack of "the verifier gave r_max" (rewards summed over functions, cast to float32)


def is_correct(verifier_rewards, r_max: float = 1.0, tol: float = CORRECT_TOL) -> np.ndarray:
    """The project's one correctness rule: ``[N]`` bool, ``verifier_reward >= r_max - tol``.

    Group kinds, the PPL queue's labels, BRR, ``dipo/accuracy`` and held-out accuracy all use it."""
    return to_numpy(verifier_rewards).astype(np.float64).reshape(-1) >= r_max - tol


@dataclass(frozen=True)
class Reallocation:
    """Result of BRR on one batch of ``N`` samples in ``n_groups`` groups.

    Per sample: ``rewards`` (``R_r``, float tensor ``[N]``), ``group_index`` (dense ``[N]``).
    Per group (indexed by ``group_index``): ``group_kind`` ("easy" | "normal" | "hard"),
    ``fired`` (BRR reallocated it), ``chosen`` (batch index of its max-PPL sample, -1 if not fired).
    """

    rewards: torch.Tensor
    group_index: np.ndarray
    group_kind: np.ndarray
    fired: np.ndarray
    chosen: np.ndarray

    @property
    def sample_kind(self) -> np.ndarray:
        return self.group_kind[self.group_index]

    @property
    def sample_fired(self) -> np.ndarray:
        return self.fired[self.group_index]

    @property
    def sample_chosen(self) -> np.ndarray:
        out = np.zeros(self.group_index.size, dtype=bool)
        out[self.chosen[self.chosen >= 0]] = True
        return out

    def count(self, kind: str, fired: bool | None = None) -> int:
        sel = self.group_kind == kind
        if fired is not None:
            sel &= self.fired == fired
        return int(sel.sum())


def classify_groups(rewards, group_ids, r_min: float = 0.0, r_max: float = 1.0, tol: float = CORRECT_TOL):
    """Group kinds from verifier rewards: "hard" if every reward <= r_min, "easy" if every reward >=
    r_max (both within ``tol``), else "normal". Returns ``(group_index [N], kinds [n_groups])``."""
    r = to_numpy(rewards).astype(np.float64).reshape(-1)
    gidx, n_groups = group_index(group_ids)
    if gidx.size != r.size:
        raise ValueError(f"classify_groups: {r.size} rewards but {gidx.size} group ids")
    all_low = np.bincount(gidx, weights=~(r <= r_min + tol), minlength=n_groups) == 0
    all_high = np.bincount(gidx, weights=~is_correct(r, r_max, tol), minlength=n_groups) == 0
    kinds = np.where(all_low, "hard", np.where(all_high, "easy", "normal")).astype(object)
    return gidx, kinds


def reallocate_rewards(
    rewards,
    logppl,
    group_ids,
    split: PerplexitySplit | None,
    *,
    group_rule: str = "mean",
    hard_groups: bool = True,
    easy_groups: bool = True,
    use_psd: bool = True,
    r_min: float = 0.0,
    r_max: float = 1.0,
) -> Reallocation:
    """BRR (Algorithm 2): the reallocated reward vector ``R_r``.

    Args:
        rewards: ``[N]`` verifier rewards ``R`` (not modified).
        logppl: ``[N]`` log-PPLs; NaN samples are never chosen (a group with no finite log-PPL is
            never fired).
        group_ids: ``[N]`` group (prompt) ids, any order.
        split: the PSD result; required when ``use_psd``. An invalid split fires nothing.
        group_rule: a group lies in a space if its mean log-PPL ('mean'), every sample ('all') or
            some sample ('any') is on that side of ``tau*`` (low: ``< tau*``; high: ``>= tau*``).
        hard_groups / easy_groups: enable the maximum-PPL reward / maximum-PPL penalty.
        use_psd: False is the 'BRR without PSD' ablation: every extreme group fires.
        r_min / r_max: reward bounds defining hard and easy groups and the reallocated values.

    Returns:
        A :class:`Reallocation`; ``R_r`` has the dtype/device of ``rewards`` when it is a tensor.
    """
    if group_rule not in GROUP_RULES:
        raise ValueError(f"reallocate_rewards: group_rule={group_rule!r} must be one of {GROUP_RULES}")
    if use_psd and split is None:
        raise ValueError("reallocate_rewards: use_psd=True needs a PerplexitySplit")
    lp = to_numpy(logppl).astype(np.float64).reshape(-1)
    gidx, kinds = classify_groups(rewards, group_ids, r_min, r_max)
    if lp.size != gidx.size:
        raise ValueError(f"reallocate_rewards: {gidx.size} rewards but {lp.size} log-PPLs")
    n_groups = kinds.size
    finite = np.isfinite(lp)
    size = np.bincount(gidx, minlength=n_groups)
    n_finite = np.bincount(gidx, weights=finite, minlength=n_groups)

    # max-PPL sample per group (first index on ties), over finite log-PPLs only; O(N), no sort
    lp_or_neg = np.where(finite, lp, -np.inf)
    group_max = np.full(n_groups, -np.inf)
    np.maximum.at(group_max, gidx, lp_or_neg)
    at_max = np.flatnonzero(lp_or_neg == group_max[gidx])
    argmax = np.full(n_groups, lp.size, dtype=np.int64)
    np.minimum.at(argmax, gidx[at_max], at_max)  # every group has a sample at its max

    candidate = (size >= 2) & (n_finite >= 1)
    want_hard = (kinds == "hard") & hard_groups & candidate
    want_easy = (kinds == "easy") & easy_groups & candidate
    if use_psd:
        if split.valid:
            in_low, in_high = _group_spaces(lp, finite, gidx, n_groups, split.threshold, group_rule)
            want_hard &= in_low   # confidently wrong -> exploitation space
            want_easy &= in_high  # uncertain right -> exploration space
        else:
            want_hard[:] = False
            want_easy[:] = False
    fired = want_hard | want_easy

    r_r = np.zeros(lp.size, dtype=np.float64)
    hard_members = want_hard[gidx]
    easy_members = want_easy[gidx]
    r_r[hard_members] = r_min
    r_r[easy_members] = r_max
    r_r[argmax[want_hard]] = r_max
    r_r[argmax[want_easy]] = r_min
    chosen = np.where(fired, argmax, -1)

    if isinstance(rewards, torch.Tensor):
        out = torch.as_tensor(r_r, dtype=rewards.dtype if rewards.is_floating_point() else torch.float32,
                              device=rewards.device)
    else:
        out = to_tensor(r_r)
    return Reallocation(rewards=out, group_index=gidx, group_kind=kinds, fired=fired, chosen=chosen)


def _group_spaces(lp, finite, gidx, n_groups, tau, rule):
    """Per group: (lies in the low-PPL space, lies in the high-PPL space) under ``rule``."""
    low = finite & (lp < tau)
    high = finite & (lp >= tau)
    n_finite = np.bincount(gidx, weights=finite, minlength=n_groups)
    n_low = np.bincount(gidx, weights=low, minlength=n_groups)
    n_high = np.bincount(gidx, weights=high, minlength=n_groups)
    has = n_finite > 0
    if rule == "mean":
        mean = np.bincount(gidx, weights=np.where(finite, lp, 0.0), minlength=n_groups) / np.maximum(n_finite, 1)
        return has & (mean < tau), has & (mean >= tau)
    if rule == "all":
        return has & (n_low == n_finite), has & (n_high == n_finite)
    return n_low > 0, n_high > 0  # "any"
