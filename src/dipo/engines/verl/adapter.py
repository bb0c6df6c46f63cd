"""DiPO on a verl ``DataProto`` after verl has computed its own GRPO advantages.

Why the DiPO term is *added to verl's advantages* rather than fed in as rewards: GRPO divides by the
group std, so ``GRPO(alpha * R_r) == GRPO(R_r)`` and no reward vector can carry ``alpha``; and with
DAPO's overlong shaping an all-wrong group need not have zero variance in the shaped reward. Adding
``alpha * A(R_r)`` to verl's ``A(R)`` is exactly Eq. 10 (one token-level loss is linear in the
advantage), leaves every group BRR did not fire bit-for-bit as verl computed it, and keeps verl's own
estimator (KL-in-reward, rollout correction, multi-turn broadcasting) as the source of ``A(R)``.

All math (log-PPL, queue, PSD, BRR, ``A(R_r)``) is :mod:`dipo.core`; this module only moves tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dipo.core import DiPO, DiPOStep, sequence_logppl

LOGPROB_KEYS = {"rollout": "rollout_log_probs", "old": "old_log_probs"}


@dataclass(frozen=True)
class BatchDiPO:
    """DiPO's result on one verl batch.

    ``step`` covers the participating rows only (``rows``, positions in the batch); ``extra`` is the
    ``[N]`` per-sequence term ``alpha * A(R_r)`` added to every row of the batch (0 elsewhere).
    """

    step: DiPOStep
    rows: np.ndarray
    extra: torch.Tensor


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

    step = dipo.step(scores, logppl, uid, verifier_rewards=verifier)
    # alpha * A(R_r) per participating row, then to every row through `source` (-1 -> 0)
    term = torch.zeros(n, dtype=torch.float32)
    term[idx] = dipo.config.alpha * step.realloc_advantages.float().cpu()
    src = torch.as_tensor(source)
    extra = torch.where(src >= 0, term[src.clamp(min=0)], torch.zeros_like(term))

    adv = batch["advantages"]
    adv = adv + extra.to(adv.device, adv.dtype).unsqueeze(-1) * mask.to(adv.dtype)
    batch["advantages"] = adv
    batch["returns"] = adv.clone()
    return BatchDiPO(step=step, rows=rows, extra=extra)
