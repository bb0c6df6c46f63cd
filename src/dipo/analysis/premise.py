"""DiPO's premise measured on samples: does perplexity separate right answers from wrong ones, and what
would PSD and BRR do with them?

Plain functions of per-sample log-PPL, verifier correctness, group (prompt) ids and batch ids, shared by
`dipo probe` (any model and data) and the testbed's competence check (`dipo testbed --check`):
`auroc`, `group_shares`, `perplexity_regime`, `queue_validity`, `premise_summary`, and the Fig. 1b-style
plot `plot_logppl_by_correctness`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def auroc(logppl: np.ndarray, correct: np.ndarray) -> float:
    """Probability that a wrong answer has a higher log-PPL than a correct one (ties count half):
    the AUROC of log-PPL as a detector of wrong answers. NaN when either class is empty."""
    logppl, correct = np.asarray(logppl, dtype=np.float64), np.asarray(correct, dtype=bool)
    n_right, n_wrong = int(correct.sum()), int((~correct).sum())
    if not n_right or not n_wrong:
        return float("nan")
    _, inverse, counts = np.unique(logppl, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    ranks = (upper - (counts - 1) / 2.0)[inverse]  # average 1-based ranks
    return float((ranks[~correct].sum() - n_wrong * (n_wrong + 1) / 2.0) / (n_right * n_wrong))


def group_shares(correct: np.ndarray, group_ids: np.ndarray) -> dict[str, float]:
    """Shares of easy (all right), normal and hard (all wrong) groups."""
    groups = np.unique(group_ids)
    acc = np.array([correct[group_ids == g].mean() for g in groups])
    return {"frac_easy": float(np.mean(acc == 1.0)), "frac_normal": float(np.mean((acc > 0) & (acc < 1))),
            "frac_hard": float(np.mean(acc == 0.0)), "n_groups": int(len(groups))}


def perplexity_regime(logppl: np.ndarray, correct: np.ndarray, group_ids: np.ndarray, confidence: float = 0.95) -> dict:
    """PSD on all samples, then which share of the hard and easy groups BRR would fire on (group
    rule 'mean'), the median log-PPL of correct and wrong samples, and the share of wrong samples
    below the threshold (confidently wrong)."""
    from dipo.core import reallocate_rewards, split_perplexity_space

    split = split_perplexity_space(logppl, correct, confidence=confidence)
    realloc = reallocate_rewards(correct.astype(np.float64), logppl, group_ids, split)
    n_hard, n_easy = realloc.count("hard"), realloc.count("easy")
    return {
        "threshold": float(split.threshold), "split_valid": bool(split.valid), "split_reason": split.reason,
        "logppl_correct_median": float(np.median(logppl[correct])) if correct.any() else float("nan"),
        "logppl_wrong_median": float(np.median(logppl[~correct])) if (~correct).any() else float("nan"),
        # confidently wrong: wrong samples on the low-perplexity side of the split
        "wrong_below_threshold": float(np.mean(logppl[~correct] < split.threshold)) if (~correct).any() else 0.0,
        "brr_hard_fired": realloc.count("hard", fired=True) / n_hard if n_hard else 0.0,
        "brr_easy_fired": realloc.count("easy", fired=True) / n_easy if n_easy else 0.0,
    }


def queue_validity(logppl: np.ndarray, correct: np.ndarray, batch_of: np.ndarray, queue_batches: int,
                   confidence: float = 0.95) -> dict[str, float]:
    """PSD on every window of `queue_batches` consecutive batches (the queue a trainer would hold at
    each step): the share of steps whose split is valid and the median threshold of those windows."""
    from dipo.core import split_perplexity_space

    n_batches = int(batch_of.max()) + 1 if len(batch_of) else 0
    valid, thresholds = [], []
    for end in range(queue_batches, n_batches + 1):
        window = (batch_of >= end - queue_batches) & (batch_of < end)
        split = split_perplexity_space(logppl[window], correct[window], confidence=confidence)
        valid.append(bool(split.valid))
        thresholds.append(float(split.threshold))
    return {"queue_batches": queue_batches, "steps": len(valid),
            "valid_share": float(np.mean(valid)) if valid else float("nan"),
            "threshold_median": float(np.median(thresholds)) if thresholds else float("nan")}


def premise_summary(logppl: np.ndarray, correct: np.ndarray, group_ids: np.ndarray, batch_of: np.ndarray,
                    confidence: float = 0.95, queues: tuple[int, ...] = (1, 2, 4)) -> dict[str, Any]:
    """Everything `dipo probe` reports, from per-sample log-PPL, verifier correctness, group and batch ids:
    sample count, accuracy, group shares, AUROC, `perplexity_regime` and `queue_validity` per queue length."""
    logppl, correct = np.asarray(logppl, dtype=np.float64), np.asarray(correct, dtype=bool)
    return {
        "samples": int(len(logppl)), "accuracy": float(correct.mean()) if len(correct) else float("nan"),
        **group_shares(correct, group_ids),
        "auroc_logppl_wrong": auroc(logppl, correct),
        "regime": perplexity_regime(logppl, correct, group_ids, confidence=confidence),
        "queues": [queue_validity(logppl, correct, batch_of, q, confidence) for q in queues],
    }


def plot_logppl_by_correctness(logppl: np.ndarray, correct: np.ndarray, threshold: float, title: str,
                               out_stem: Path) -> list[Path]:
    """Fig. 1b-style: histograms of log-PPL for correct and wrong answers, tau* marked. Writes
    `out_stem`.png and .svg; returns both paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    bins = np.histogram_bin_edges(logppl, bins=40) if len(logppl) else 10
    ax.hist(logppl[correct], bins=bins, alpha=0.6, color="tab:green", label=f"correct (n={int(correct.sum())})")
    ax.hist(logppl[~correct], bins=bins, alpha=0.6, color="tab:red", label=f"wrong (n={int((~correct).sum())})")
    if np.isfinite(threshold):
        ax.axvline(threshold, color="black", linestyle="--", label=f"tau* = {threshold:.3f}")
    ax.set_xlabel("log-perplexity of the completion")
    ax.set_ylabel("samples")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths = [out_stem.with_suffix(".png"), out_stem.with_suffix(".svg")]
    for path in paths:
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return paths
