"""One DiPO step over a training batch: queue -> PSD -> BRR -> combined advantage.

Engines (TRL, verl) call :meth:`DiPO.step` once per batch with the batch gathered from every
process, so the queue is identical on all ranks; they never reimplement these pieces.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from dipo.core._util import require_finite, to_numpy, to_tensor
from dipo.core.advantages import group_advantages
from dipo.core.brr import CORRECT_TOL, Reallocation, is_correct, reallocate_rewards
from dipo.core.config import DiPOConfig
from dipo.core.psd import QUADRANTS, PerplexitySplit, split_perplexity_space
from dipo.core.queue import PerplexityQueue
from dipo.core.sampling import group_varies

logger = logging.getLogger(__name__)

# DiPO's per-step metrics, in `DiPOStep.metrics` and every run's metrics.jsonl (`dipo analyze` reads them)
STEP_METRIC_KEYS = (
    "dipo/frac_easy", "dipo/frac_normal", "dipo/frac_hard", "dipo/fired_hard", "dipo/fired_easy",
    "dipo/threshold", "dipo/split_valid", "dipo/split_error", "dipo/logppl_correct", "dipo/logppl_wrong",
    "dipo/accuracy", "dipo/queue_size", *(f"dipo/quadrant_{q}" for q in QUADRANTS),
    "dipo/correctness_out_of_range",
)


@dataclass(frozen=True)
class DiPOStep:
    """Everything one step produced. Tensors are ``[N]``, on the device of the input rewards."""

    advantages: torch.Tensor          # A(R) + alpha * A(R_r) = base_advantages + extra_advantages
    base_advantages: torch.Tensor     # A(R): 0 where verifier_flat (Eq. 10)
    realloc_advantages: torch.Tensor  # A(R_r)
    extra_advantages: torch.Tensor    # alpha * A(R_r): the term an engine adds to its own A(R)
    verifier_flat: torch.Tensor       # bool: Eq. 10 sets A(R) = 0 here (constant verifier rewards in the
                                      # sample's group); all False under shaped_flat_groups
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
        self._warned_out_of_range = False

    def step(self, rewards, logppl, group_ids, verifier_rewards=None, push: bool = True,
             new_batch: bool = True) -> DiPOStep:
        """Run one step.

        Args:
            rewards: ``[N]`` training rewards for ``A(R)`` (may include shaping such as DAPO's overlong
                penalty or a format reward). ``A(R)`` is 0 in groups whose verifier rewards do not vary
                (Eq. 10; ``config.shaped_flat_groups`` is the ablation that keeps it).
            logppl: ``[N]`` sequence log-PPLs from the rollout (NaN for empty completions).
            group_ids: ``[N]`` prompt/group ids.
            verifier_rewards: ``[N]`` the verifier's rewards, alone deciding group kinds, correctness
                (``>= r_max``), the queue labels and every metric; defaults to ``rewards``. Values
                outside ``[r_min, r_max]`` are counted (``dipo/correctness_out_of_range``) and warned
                about once, and classified by the same comparisons as any other value.
            push: add this batch to the queue first (False to re-run a step without side effects).
            new_batch: the batch starts a new queue batch (a new training step); False appends it to
                the newest one (a dynamic-sampling refill round of the same step).
        Raises:
            ValueError: a reward or verifier reward is NaN or infinite (named, with the count).
        """
        cfg = self.config
        float64 = isinstance(rewards, torch.Tensor) and rewards.dtype == torch.float64  # kept for exact checks
        r = to_tensor(rewards, dtype=torch.float64 if float64 else torch.float32)
        vr = r if verifier_rewards is None else to_tensor(verifier_rewards, dtype=r.dtype, device=r.device)
        lp = to_tensor(logppl, device=r.device)
        if not (r.numel() == vr.numel() == lp.numel()):
            raise ValueError(
                f"DiPO.step: rewards ({r.numel()}), verifier_rewards ({vr.numel()}) and logppl ({lp.numel()}) "
                "must have the same length"
            )
        require_finite(r, "DiPO.step")
        require_finite(vr, "DiPO.step", "verifier rewards")
        vr_np = to_numpy(vr).astype(np.float64)
        correct = is_correct(vr_np, cfg.r_max)
        out_of_range = int(((vr_np < cfg.r_min - CORRECT_TOL) | (vr_np > cfg.r_max + CORRECT_TOL)).sum())
        if out_of_range and not self._warned_out_of_range:
            self._warned_out_of_range = True
            logger.warning(
                "DiPO: %d of %d verifier rewards lie outside [r_min=%s, r_max=%s] (seen in [%s, %s]); they are "
                "classified as they compare (>= r_max correct) and counted in dipo/correctness_out_of_range. "
                "Set r_min/r_max to the verifier's scale. (Warned once.)",
                out_of_range, vr_np.size, cfg.r_min, cfg.r_max, vr_np.min(), vr_np.max(),
            )
        if push:
            self.queue.push(to_numpy(lp), correct, new_batch=new_batch)
        split = split_perplexity_space(*self.queue.sorted(), cfg.confidence, presorted=True)
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
        flat = torch.zeros(r.shape, dtype=torch.bool, device=r.device)
        if not cfg.shaped_flat_groups:
            flat = torch.as_tensor(~group_varies(vr, group_ids)[realloc.group_index], device=r.device)
            if verifier_rewards is not None:  # R = verifier: GRPO already gives 0 in flat groups
                base = torch.where(flat, torch.zeros_like(base), base)
        realloc_adv = _realloc_advantages(realloc, group_ids, cfg.scale, cfg.eps)
        extra = cfg.alpha * realloc_adv  # alpha is applied here, and only here
        metrics = step_metrics(realloc, split, to_numpy(lp), correct, len(self.queue))
        metrics["dipo/correctness_out_of_range"] = float(out_of_range)
        return DiPOStep(
            advantages=base + extra,
            base_advantages=base,
            realloc_advantages=realloc_adv,
            extra_advantages=extra,
            verifier_flat=flat,
            verifier_rewards=vr,
            logppl=lp,
            correct=correct,
            realloc=realloc,
            split=split,
            metrics=metrics,
        )

    def state_dict(self) -> dict:
        return {"queue": self.queue.state_dict(), "config": self.config.to_dict()}

    def load_state_dict(self, state: dict) -> None:
        if not isinstance(state, dict) or "queue" not in state:
            raise ValueError("DiPO.load_state_dict: expected a dict with a 'queue' entry (from DiPO.state_dict())")
        self.queue.load_state_dict(state["queue"])


def _realloc_advantages(realloc: Reallocation, group_ids, scale: str, eps: float) -> torch.Tensor:
    """``A(R_r)``, ``[N]``. ``R_r`` is constant outside fired groups, where ``A(R_r) = 0`` exactly, so with
    per-group (or no) normalisation only the fired groups' samples are normalised: the same values bit
    for bit (each group's sums run over the same samples in the same order), near-free when few fire."""
    if scale == "batch":  # the batch std involves every sample
        return group_advantages(realloc.rewards, group_ids, scale, eps)
    extra = torch.zeros_like(realloc.rewards)
    fired = realloc.sample_fired
    if fired.any():
        sel = torch.as_tensor(fired, device=extra.device)
        extra[sel] = group_advantages(realloc.rewards[sel], realloc.group_index[fired], scale, eps)
    return extra


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
