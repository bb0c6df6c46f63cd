"""Hand-built verl batches for the verl-environment tests (imported only after importorskip("verl")).

Not a conftest: the main environment collects tests/ without verl and must skip these cleanly."""

from __future__ import annotations

import numpy as np
import torch
from verl.protocol import DataProto

from dipo.core import DiPO, DiPOConfig

torch.set_num_threads(1)

# A clean history for the PPL queue: correct answers at log-PPL 0.2-0.6, wrong ones at 1.4-1.8,
# so PSD finds a valid split near 1.0 at 95% confidence.
PRIOR_LOGPPL = np.concatenate([np.linspace(0.2, 0.6, 60), np.linspace(1.4, 1.8, 60)])
PRIOR_CORRECT = np.concatenate([np.ones(60, bool), np.zeros(60, bool)])


def primed_dipo(**overrides) -> DiPO:
    """A DiPO whose queue already holds one clean batch (queue_batches=2), verl's GRPO epsilon."""
    dipo = DiPO(DiPOConfig(**{"eps": 1e-6, **overrides}))
    dipo.queue.push(PRIOR_LOGPPL, PRIOR_CORRECT)
    return dipo


def token_logprobs(logppl: list[float], lengths: list[int], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[N, width]`` log-probs whose masked mean NLL is ``logppl`` and the matching response mask."""
    n = len(logppl)
    mask = torch.zeros(n, width, dtype=torch.int64)
    lp = torch.full((n, width), float("nan"))  # padding values must be ignored
    for i, (value, length) in enumerate(zip(logppl, lengths)):
        mask[i, :length] = 1
        lp[i, :length] = -value
    return lp, mask


def outcome_scores(scores: list[float], mask: torch.Tensor) -> torch.Tensor:
    """verl's token-level scores: the sequence score on its last response token."""
    out = torch.zeros(mask.shape, dtype=torch.float32)
    last = mask.sum(-1) - 1
    out[torch.arange(len(scores)), last] = torch.tensor(scores, dtype=torch.float32)
    return out


def make_batch(groups: list[tuple[str, list[float], list[float]]], width: int = 6) -> DataProto:
    """DataProto of ``(uid, scores, logppls)`` groups with rollout log-probs, as verl V1 builds it."""
    uids, scores, logppls, lengths = [], [], [], []
    for g, (uid, s, lp) in enumerate(groups):
        uids += [uid] * len(s)
        scores += s
        logppls += lp
        lengths += [2 + (g + i) % (width - 2) for i in range(len(s))]
    lp, mask = token_logprobs(logppls, lengths, width)
    data = DataProto.from_dict(
        tensors={"rollout_log_probs": lp, "response_mask": mask},
        non_tensors={"uid": np.array(uids, dtype=object)},
    )
    data.batch["token_level_scores"] = outcome_scores(scores, mask)
    data.batch["token_level_rewards"] = data.batch["token_level_scores"]
    return data
