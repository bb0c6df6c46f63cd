"""DiPO on a verl ``DataProto`` after verl has computed its own GRPO advantages.

Why the DiPO term is *added to verl's advantages* rather than fed in as rewards: GRPO divides by the
group std, so ``GRPO(alpha * R_r) == GRPO(R_r)`` and no reward vector can carry ``alpha``. verl's
``A(R)`` comes from the shaped score (DAPO's overlong penalty), which varies inside groups whose
verifier rewards do not; DAPO's filter drops those groups, so Eq. 10 has ``A(R) = 0`` there: the
adapter zeroes verl's advantage in verifier-flat groups (``shaped_flat_groups`` keeps it, as an
ablation) and adds ``alpha * A(R_r)``, which is exactly Eq. 10 (the two terms never share a group, so
one token-level loss is their sum). Groups whose verifier rewards vary keep verl's ``A(R)`` bit for
bit, from verl's own estimator (KL-in-reward, rollout correction, multi-turn broadcasting).

All math (log-PPL, queue, PSD, BRR, ``A(R_r)``) is :mod:`dipo.core`; this module only moves tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dipo.core import DiPO, DiPOStep, group_varies, sequence_logppl

LOGPROB_KEYS = {"rollout": "rollout_log_probs", "old": "old_log_probs"}


@dataclass(frozen=True)
class BatchDiPO:
    """DiPO's result on one verl batch.

    ``step`` covers the participating rows only (``rows``, positions in the batch); ``extra`` is the
    ``[N]`` per-sequence term ``alpha * A(R_r)`` added to every row of the batch (0 elsewhere);
    ``flat`` is ``[N]`` bool, the row's group has constant verifier rewards (its ``A(R)`` was zeroed).
    """

    step: DiPOStep
    rows: np.ndarray
    extra: torch.Tensor
    flat: torch.Tensor


def sequence_scores(token_level_scores: torch.Tensor) -> torch.Tensor:
    """``[N, T] -> [N]`` sequence reward, summed over tokens as verl's GRPO does (outcome reward)."""
    return token_level_scores.sum(dim=-1)


def participating_rows(keys: list[str] | None, is_padding: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows DiPO sees, and for every row the participating row whose term it takes.

    verl V1 keys are ``{uid}_{session}_{index}``; an agent loop may emit several outputs per session
    and verl's GRPO scores only the last one, broadcasting its advantage to the others. DiPO does the
    same. Padding rows (added to divide the batch across ranks) never participate and get no term.

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
    final: dict[str, tuple[int, int]] = {}
    session_of = []
    for i, key in enumerate(keys):
        parts = key.rsplit("_", 2)
        if len(parts) != 3 or not parts[2].isdigit():
            raise ValueError(f"participating_rows: key {key!r} is not verl's '{{uid}}_{{session}}_{{index}}'")
        session, index = f"{parts[0]}_{parts[1]}", int(parts[2])
        session_of.append(session)
        if not is_padding[i] and (session not in final or final[session][0] < index):
            final[session] = (index, i)
    source = np.array([-1 if is_padding[i] else final[s][1] for i, s in enumerate(session_of)], dtype=np.int64)
    rows = np.array(sorted(row for _, row in final.values()), dtype=np.int64)
    return rows, source


def apply_dipo(
    data,
    dipo: DiPO,
    *,
    logprob_key: str = "rollout_log_probs",
    verifier_rewards: np.ndarray | None = None,
    rows: np.ndarray | None = None,
    source: np.ndarray | None = None,
    new_batch: bool = True,
) -> BatchDiPO:
    """Run one DiPO step on ``data`` and add ``alpha * A(R_r)`` to ``data.batch['advantages']``.

    Args:
        data: ``DataProto`` with ``batch['advantages']`` (verl's ``A(R)``, ``[N, T]``),
            ``batch['token_level_scores']`` (``[N, T]``, raw scores, left untouched),
            ``batch['response_mask']`` (``[N, T]``), ``batch[logprob_key]`` (``[N, T]``) and
            ``non_tensor_batch['uid']`` (``[N]`` group ids).
        dipo: the stateful :class:`dipo.core.DiPO` (the queue lives on the driver; pushed once here).
        verifier_rewards: ``[N]`` verifier rewards (e.g. ``acc``) for group kinds and correctness;
            ``None`` = the summed scores.
        rows / source: from :func:`participating_rows` (default: every row takes part for itself).
        new_batch: passed to ``DiPO.step`` (False: this batch joins the queue batch the group filter's
            evicted groups of the same step opened).

    Returns:
        :class:`BatchDiPO`. ``data.batch['advantages']`` and ``['returns']`` are updated in place
        (GRPO's returns equal its advantages).
    """
    batch = data.batch
    for key in ("advantages", "token_level_scores", "response_mask", logprob_key):
        if key not in batch.keys():
            raise KeyError(f"apply_dipo: the batch has no {key!r} (fields: {sorted(batch.keys())})")
    n = batch["advantages"].shape[0]
    rows = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    source = np.arange(n) if source is None else np.asarray(source, dtype=np.int64)
    mask = batch["response_mask"]
    idx = torch.as_tensor(rows)
    scores = sequence_scores(batch["token_level_scores"][idx].float())
    logppl = sequence_logppl(batch[logprob_key][idx], mask[idx])
    uid = np.asarray(data.non_tensor_batch["uid"])[rows]
    verifier = None if verifier_rewards is None else np.asarray(verifier_rewards, dtype=np.float64)[rows]

    step = dipo.step(scores, logppl, uid, verifier_rewards=verifier, new_batch=new_batch)
    # per participating row: alpha * A(R_r), and whether its group's verifier rewards are flat
    term = torch.zeros(n, dtype=torch.float32)
    term[idx] = dipo.config.alpha * step.realloc_advantages.float().cpu()
    flat_rows = torch.zeros(n, dtype=torch.bool)
    if not dipo.config.shaped_flat_groups:
        flat_rows[idx] = torch.as_tensor(~group_varies(step.verifier_rewards, uid)[step.realloc.group_index])
    # ... then to every row through `source` (padding, -1: nothing)
    src = torch.as_tensor(source)
    has_src = src >= 0
    extra = torch.where(has_src, term[src.clamp(min=0)], torch.zeros_like(term))
    flat = has_src & flat_rows[src.clamp(min=0)]

    adv = batch["advantages"]
    adv = torch.where(flat.to(adv.device).unsqueeze(-1), torch.zeros_like(adv), adv)  # Eq. 10: A(R) = 0 there
    adv = adv + extra.to(adv.device, adv.dtype).unsqueeze(-1) * mask.to(adv.dtype)
    batch["advantages"] = adv
    batch["returns"] = adv.clone()
    return BatchDiPO(step=step, rows=rows, extra=extra, flat=flat)


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
