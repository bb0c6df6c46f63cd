"""DiPO's term for verl's advantages, on plain tensors (no ``DataProto``), after verl computed its own ``A(R)``.

Why the DiPO term is *added to verl's advantages* rather than fed in as rewards: GRPO divides by the
group std, so ``GRPO(alpha * R_r) == GRPO(R_r)`` and no reward vector can carry ``alpha``. verl's
``A(R)`` comes from the shaped score (DAPO's overlong penalty), which varies inside groups whose
verifier rewards do not; DAPO's filter drops those groups, so Eq. 10 has ``A(R) = 0`` there: the
adapter zeroes verl's advantage in verifier-flat groups (``shaped_flat_groups`` keeps it, as an
ablation) and adds ``alpha * A(R_r)``, which is exactly Eq. 10 (the two terms never share a group, so
one token-level loss is their sum). Groups whose verifier rewards vary keep verl's ``A(R)`` bit for
bit, from verl's own estimator (KL-in-reward, rollout correction, multi-turn broadcasting).

All math (log-PPL, queue, PSD, BRR, ``alpha * A(R_r)``) is :mod:`dipo.core`; this module only moves tensors:
:func:`dipo_term` returns the ``[N]`` term and :func:`add_term` applies it to verl's ``[N, T]`` advantages.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dipo.core import DiPO, DiPOStep, sequence_logppl

LOGPROB_KEYS = {"rollout": "rollout_log_probs", "old": "old_log_probs"}


@dataclass(frozen=True)
class BatchDiPO:
    """DiPO's result on one verl batch of ``N`` rows.

    ``step`` covers the participating rows only; ``extra`` is the ``[N]`` per-sequence term
    ``alpha * A(R_r)`` (the core's ``step.extra_advantages``, taken by every row from its session's final
    output; 0 for padding); ``flat`` is ``[N]`` bool, Eq. 10 sets the row's ``A(R)`` to 0.
    """

    step: DiPOStep
    extra: torch.Tensor
    flat: torch.Tensor


def parse_key(key: str) -> tuple[str, str, int]:
    """verl V1's row key ``{uid}_{session}_{index}`` -> ``(uid, session, index)``; a uid may contain ``_``
    (split from the right, as verl's own ``compute_advantage_for_multi_trajectories`` does)."""
    parts = key.rsplit("_", 2)
    if len(parts) != 3 or not parts[2].isdigit():
        raise ValueError(f"verl key {key!r} is not verl's '{{uid}}_{{session}}_{{index}}'")
    return parts[0], parts[1], int(parts[2])


def participating_rows(keys: list[str] | None, is_padding: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows DiPO sees, and for every row the participating row whose term it takes.

    An agent loop may emit several outputs per session and verl's GRPO scores only the last one,
    broadcasting its advantage to the others. DiPO does the same. Padding rows (added to divide the
    batch across ranks) never participate and get no term.

    Returns ``(rows [M], source [N])`` with ``source[i]`` the batch position of row ``i``'s final
    output, or -1 for padding.
    """
    n = len(is_padding)
    if keys is None:
        rows = np.flatnonzero(~is_padding)
        source = np.where(is_padding, -1, np.arange(n))
        return rows, source
    if len(keys) != n:
        raise ValueError(f"participating_rows: {len(keys)} keys but {n} rows")
    final: dict[tuple[str, str], tuple[int, int]] = {}
    session_of = []
    for i, key in enumerate(keys):
        uid, session, index = parse_key(key)
        session_of.append((uid, session))
        if not is_padding[i] and (session_of[-1] not in final or final[session_of[-1]][0] < index):
            final[session_of[-1]] = (index, i)
    source = np.array([-1 if is_padding[i] else final[s][1] for i, s in enumerate(session_of)], dtype=np.int64)
    rows = np.array(sorted(row for _, row in final.values()), dtype=np.int64)
    return rows, source


def dipo_term(
    dipo: DiPO,
    scores: torch.Tensor,
    logprobs: torch.Tensor,
    mask: torch.Tensor,
    uids,
    *,
    verifier_rewards: np.ndarray | None = None,
    rows: np.ndarray | None = None,
    source: np.ndarray | None = None,
    new_batch: bool = True,
) -> BatchDiPO:
    """Run one DiPO step on plain tensors and return the per-row term to add to verl's ``A(R)``.

    Args:
        dipo: the stateful :class:`dipo.core.DiPO` (the queue lives on the driver; pushed once here).
        scores: ``[N]`` sequence scores (verl's ``rm_scores`` summed over tokens).
        logprobs / mask: ``[N, T]`` rollout (or recomputed) log-probs and the response mask.
        uids: ``[N]`` group ids.
        verifier_rewards: ``[N]`` verifier rewards (e.g. ``acc``) for group kinds and correctness;
            ``None`` = the scores.
        rows / source: from :func:`participating_rows` (default: every row takes part for itself).
        new_batch: passed to ``DiPO.step`` (False: this batch joins the queue batch the group filter's
            evicted groups of the same step opened).
    """
    n = scores.shape[0]
    rows = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    source = np.arange(n) if source is None else np.asarray(source, dtype=np.int64)
    idx = torch.as_tensor(rows)
    logppl = sequence_logppl(logprobs[idx], mask[idx])
    verifier = None if verifier_rewards is None else np.asarray(verifier_rewards, dtype=np.float64)[rows]
    step = dipo.step(scores[idx].float(), logppl, np.asarray(uids)[rows], verifier_rewards=verifier,
                     new_batch=new_batch)
    # every row takes its session's final output's values through `source` (padding, -1: nothing)
    src = torch.as_tensor(source)
    has_src = src >= 0
    term = torch.zeros(n, dtype=torch.float32)
    term[idx] = step.extra_advantages.float().cpu()
    flat_rows = torch.zeros(n, dtype=torch.bool)
    flat_rows[idx] = step.verifier_flat.cpu()
    extra = torch.where(has_src, term[src.clamp(min=0)], torch.zeros_like(term))
    return BatchDiPO(step=step, extra=extra, flat=has_src & flat_rows[src.clamp(min=0)])


def add_term(advantages: torch.Tensor, mask: torch.Tensor, term: BatchDiPO) -> torch.Tensor:
    """``[N, T]`` verl advantages with Eq. 10 applied: ``A(R) = 0`` on ``term.flat`` rows, plus ``term.extra``
    on every response token. Rows whose verifier rewards vary keep verl's ``A(R)`` bit for bit."""
    adv = torch.where(term.flat.to(advantages.device).unsqueeze(-1), torch.zeros_like(advantages), advantages)
    return adv + term.extra.to(adv.device, adv.dtype).unsqueeze(-1) * mask.to(adv.dtype)


def verifier_from_extra_fields(extra_fields, key: str, skip: np.ndarray) -> np.ndarray:
    """``[N]`` floats of ``reward_extra_info[key]`` from TransferQueue's ``extra_fields`` column
    (NaN where ``skip``: padding rows, which DiPO never reads)."""
    values = []
    for i, item in enumerate(extra_fields):
        if skip[i]:
            values.append(float("nan"))
            continue
        item = getattr(item, "data", item)
        info = item.get("reward_extra_info", {}) if isinstance(item, dict) else {}
        if key not in info:
            raise KeyError(
                f"dipo.correct_key={key!r}: sample {i} has no reward_extra_info[{key!r}] "
                f"(has {sorted(info)}); use a reward manager that reports it (e.g. 'dapo') or set dipo.correct_key=null"
            )
        values.append(float(info[key]))
    return np.asarray(values, dtype=np.float64)
