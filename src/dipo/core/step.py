"""One DiPO step over a training batch: queue -> PSD -> BRR -> combined advantage.

Engines (TRL, verl) call :meth:`DiPO.step` once per batch with the batch gathered from every
process, so the queue is identical on all ranks; they never reimplement these pieces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from dipo.core._util import to_numpy, to_tensor
from dipo.core.advantages import group_advantages
from dipo.core.brr import Reallocation, reallocate_rewards
from dipo.core.config import DiPOConfig
from dipo.core.psd import QUADRANTS, PerplexitySplit, split_perplexity_space
from dipo.core.queue import PerplexityQueue


@dataclass(frozen=True)
class DiPOStep:
    """Everything one step produced. Tensors are ``[N]``, on the device of the input rewards."""

    advantages: torch.Tensor          # A(R) + alpha * A(R_r)
    base_advantages: torch.Tensor     # A(R)
    realloc_advantages: torch.Tensor  # A(R_r)
    verifier_rewards: torch.Tensor    # R used for group kinds, correctness and the queue
    logppl: torch.Tensor
    correct: np.ndarray
    realloc: Reallocation
    split: PerplexitySplit
    metrics: dict[str, float]

    def records(self) -> dict[str, np.ndarray]:
        """Per-sample columns for rollout records (the engine adds step, prompt id, length...)."""
        return {
            "group_id": self.realloc.group_index.astype(np.int64),
            "group_kind": self.realloc.sample_kind.astype(str),
            "reward": to_numpy(self.verifier_rewards).astype(np.float64),
            "realloc_reward": to_numpy(self.realloc.rewards).astype(np.float64),
            "advantage": to_numpy(self.advantages).astype(np.float64),
            "logppl": to_numpy(self.logppl).astype(np.float64),
            "quadrant": self.split.quadrants(to_numpy(self.logppl), self.correct).astype(str),
            "fired": self.realloc.sample_fired.astype(bool),
            "chosen": self.realloc.sample_chosen,
        }


class DiPO:
    """Stateful DiPO: owns the PPL queue; :meth:`step` runs Eqs. 4-10 on one batch."""

    def __init__(self, config: DiPOConfig | None = None) -> None:
        self.config = config or DiPOConfig()
        self.queue = PerplexityQueue(self.config.queue_batches)

    def step(self, rewards, logppl, group_ids, verifier_rewards=None, push: bool = True) -> DiPOStep:
        """Run one step.

        Args:
            rewards: ``[N]`` training rewards for ``A(R)`` (may include shaping such as DAPO's overlong
                penalty).
            logppl: ``[N]`` sequence log-PPLs from the rollout (NaN for empty completions).
            group_ids: ``[N]`` prompt/group ids.
            verifier_rewards: ``[N]`` the verifier's rewards, used for group kinds, correctness
                (``>= r_max``) and the queue; defaults to ``rewards``.
            push: add this batch to the queue first (False to re-run a step without side effects).
        """
        cfg = self.config
        r = to_tensor(rewards)
        vr = r if verifier_rewards is None else to_tensor(verifier_rewards, device=r.device)
        lp = to_tensor(logppl, device=r.device)
        if not (r.numel() == vr.numel() == lp.numel()):
            raise ValueError(
                f"DiPO.step: rewards ({r.numel()}), verifier_rewards ({vr.numel()}) and logppl ({lp.numel()}) "
                "must have the same length"
            )
        correct = to_numpy(vr).astype(np.float64) >= cfg.r_max - 1e-6
        if push:
            self.queue.push(to_numpy(lp), correct)
        split = split_perplexity_space(self.queue.logppl, self.queue.correct, cfg.confidence)
        realloc = reallocate_rewards(
            vr, lp, group_ids, split,
            group_rule=cfg.group_rule,
            hard_groups=cfg.hard_groups and cfg.reallocate,
            easy_groups=cfg.easy_groups and cfg.reallocate,
            use_psd=cfg.use_psd,
            r_min=cfg.r_min,
            r_max=cfg.r_max,
        )
        base = group_advantages(r, group_ids, cfg.scale, cfg.eps)
        extra = group_advantages(realloc.rewards, group_ids, cfg.scale, cfg.eps)
        combined = base + cfg.alpha * extra
        return DiPOStep(
            advantages=combined,
            base_advantages=base,
            realloc_advantages=extra,
            verifier_rewards=vr,
            logppl=lp,
            correct=correct,
            realloc=realloc,
            split=split,
            metrics=step_metrics(realloc, split, to_numpy(lp), correct, len(self.queue)),
        )

    def state_dict(self) -> dict:
        return {"queue": self.queue.state_dict(), "config": self.config.to_dict()}

    def load_state_dict(self, state: dict) -> None:
        if not isinstance(state, dict) or "queue" not in state:
            raise ValueError("DiPO.load_state_dict: expected a dict with a 'queue' entry (from DiPO.state_dict())")
        self.queue.load_state_dict(state["queue"])


def step_metrics(realloc: Reallocation, split: PerplexitySplit, logppl: np.ndarray, correct: np.ndarray,
                 queue_size: int) -> dict[str, float]:
    """DiPO's per-step metrics (keys are the project-wide contract, see README)."""
    n_groups = max(realloc.group_kind.size, 1)
    finite = np.isfinite(logppl)
    low = split.is_low(logppl)

    def mean_or_nan(sel):
        return float(logppl[sel].mean()) if sel.any() else math.nan

    metrics = {
        "dipo/frac_easy": realloc.count("easy") / n_groups,
        "dipo/frac_normal": realloc.count("normal") / n_groups,
        "dipo/frac_hard": realloc.count("hard") / n_groups,
        "dipo/fired_hard": float(realloc.count("hard", fired=True)),
        "dipo/fired_easy": float(realloc.count("easy", fired=True)),
        "dipo/threshold": float(split.threshold),
        "dipo/split_valid": float(split.valid),
        "dipo/split_error": float(split.error_rate),
        "dipo/logppl_correct": mean_or_nan(finite & correct),
        "dipo/logppl_wrong": mean_or_nan(finite & ~correct),
        "dipo/accuracy": float(correct.mean()) if correct.size else math.nan,
        "dipo/queue_size": float(queue_size),
    }
    has_split = finite & np.isfinite(split.threshold)
    for q, sel in zip(QUADRANTS, (correct & low, correct & ~low, ~correct & low, ~correct & ~low)):
        metrics[f"dipo/quadrant_{q}"] = float((has_split & sel).sum())
    return metrics
