"""Perplexity Space Disentangling (PSD, paper Eqs. 5-7, Algorithm 1).

Find the log-PPL threshold ``tau*`` that best separates correct (low PPL) from wrong (high PPL)
samples in the PPL queue, then check at a given confidence that the two spaces it defines really
are an exploitation space (EiS: mostly right) and an exploration space (ErS: mostly wrong).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from dipo.core._util import to_numpy

QUADRANTS = ("CL", "CH", "EL", "EH")  # Correct/Error x Low/High perplexity


def wilson_lower_bound(successes: int, n: int, confidence: float) -> float:
    """One-sided Wilson score lower bound for a binomial proportion.

    ``(p + z^2/2n - z*sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)`` with ``p = successes/n`` and
    ``z = Phi^-1(confidence)``. Returns 0.0 for ``n == 0`` (no evidence).
    """
    if n <= 0:
        return 0.0
    z = NormalDist().inv_cdf(confidence)
    p = successes / n
    z2n = z * z / n
    centre = p + z2n / 2
    margin = z * math.sqrt(p * (1 - p) / n + z2n / (4 * n))
    return (centre - margin) / (1 + z2n)


def best_threshold(logppl: np.ndarray, correct: np.ndarray) -> tuple[float, float]:
    """Exact minimiser of the misclassification rate (paper Eq. 5), in O(n log n).

    ``tau* = argmin_tau (1/n) * sum_i |r_i - 1[logppl_i < tau]|`` where a sample is predicted
    correct when its log-PPL is below ``tau``. Sorting gives every distinct labelling: cut ``k``
    labels the ``k`` lowest samples correct and is realised by any ``tau`` in ``(v_{k-1}, v_k]``.
    Consecutive optimal cuts form one optimal interval; ties pick the middle of that interval
    (with several separate optimal intervals, the middle one of them). A half-infinite optimal
    interval is represented by its finite end (one space is then empty or balanced, and the split
    cannot be valid).

    Args:
        logppl: ``[n]`` finite log-PPLs, ``n >= 1``.
        correct: ``[n]`` bools.

    Returns:
        ``(tau, error_rate)``.
    """
    order = np.argsort(logppl)
    return _best_threshold_sorted(logppl[order], correct[order])


def _best_threshold_sorted(v: np.ndarray, correct_sorted: np.ndarray) -> tuple[float, float]:
    """:func:`best_threshold` on log-PPLs ``v`` already sorted ascending (labels in the same order)."""
    c = correct_sorted.astype(np.int64)
    n = v.size
    correct_before = np.concatenate(([0], np.cumsum(c)))  # correct among the k lowest
    wrong_before = np.arange(n + 1) - correct_before
    errors = wrong_before + (correct_before[-1] - correct_before)
    realisable = np.ones(n + 1, dtype=bool)
    realisable[1:n] = v[1:] > v[:-1]  # a cut inside a run of equal values labels nothing new
    errors = np.where(realisable, errors, np.iinfo(np.int64).max)
    best = errors.min()
    optimal = np.flatnonzero(errors == best)
    # Group optimal cuts into runs that form one interval: consecutive realisable cuts.
    realisable_idx = np.flatnonzero(realisable)
    rank = np.searchsorted(realisable_idx, optimal)
    run_starts = np.flatnonzero(np.diff(np.concatenate(([-2], rank))) != 1)
    run_ends = np.concatenate((run_starts[1:], [optimal.size])) - 1
    mid = run_starts.size // 2
    first, last = optimal[run_starts[mid]], optimal[run_ends[mid]]
    lower = v[first - 1] if first > 0 else -math.inf
    upper = v[last] if last < n else math.inf
    if math.isinf(lower) and math.isinf(upper):
        tau = float(v[0])  # everything equal and both one-space labellings tie: all 'high'
    elif math.isinf(lower):
        tau = float(upper)
    elif math.isinf(upper):
        tau = float(np.nextafter(lower, math.inf))
    else:
        tau = float((lower + upper) / 2)
        if not lower < tau <= upper:  # float rounding on near-equal neighbours
            tau = float(upper)
    return tau, float(best) / n


@dataclass(frozen=True)
class PerplexitySplit:
    """Result of PSD on the queue.

    ``threshold`` is ``tau*`` in log-PPL; samples with ``logppl < threshold`` are 'low' (EiS side).
    ``valid`` is True only when both judgements hold at ``confidence``:
    ``Pr(R=1 | low) > 1/2`` (EiS) and ``Pr(R=0 | high) > 1/2`` (ErS), each by a one-sided Wilson
    lower bound computed out of sample (2-fold cross-fitting, see ``split_perplexity_space``).
    ``n_low``/``correct_low``/... are the in-sample counts of the full-queue threshold.
    """

    threshold: float
    valid: bool
    error_rate: float
    confidence: float
    n: int
    n_low: int
    n_high: int
    correct_low: int
    wrong_high: int
    exploit_lower_bound: float  # cross-fitted Wilson lower bound of Pr(R=1 | low)
    explore_lower_bound: float  # cross-fitted Wilson lower bound of Pr(R=0 | high)
    reason: str = ""  # why the split is invalid ("" when valid)

    def is_low(self, logppl) -> np.ndarray:
        """``[N]`` bool: sample lies in the low-PPL (exploitation) space. NaN -> False."""
        lp = np.asarray(to_numpy(logppl), dtype=np.float64)
        with np.errstate(invalid="ignore"):
            return lp < self.threshold if math.isfinite(self.threshold) else np.zeros(lp.shape, dtype=bool)

    def quadrants(self, logppl, correct) -> np.ndarray:
        """``[N]`` labels "CL", "CH", "EL", "EH" (Correct/Error x Low/High PPL); "" for NaN log-PPL
        or when there is no threshold (empty queue)."""
        lp = np.asarray(to_numpy(logppl), dtype=np.float64)
        ok = np.asarray(to_numpy(correct)).astype(bool)
        low = self.is_low(lp)
        out = np.where(ok, np.where(low, "CL", "CH"), np.where(low, "EL", "EH")).astype(object)
        out[~np.isfinite(lp) | (not math.isfinite(self.threshold))] = ""
        return out


def split_perplexity_space(logppl, correct, confidence: float = 0.95) -> PerplexitySplit:
    """PSD (Algorithm 1): the optimal threshold and its validity.

    ``tau*`` is the exact minimiser of the misclassification rate on the whole queue (Eq. 5,
    :func:`best_threshold`). The split is valid when the low side is mostly correct (EiS, Eq. 6) and
    the high side mostly wrong (ErS, Eq. 7) at ``confidence``, judged by one-sided Wilson lower bounds
    > 1/2 on cross-fitted labels (queue positions of even/odd parity are labelled by the threshold
    fitted on the other parity), so that choosing the threshold does not inflate the confidence.

    Args:
        logppl: ``[n]`` log-PPLs of the queue (NaNs are ignored).
        correct: ``[n]`` bools, verifier correctness.
        confidence: confidence level of both advantage judgements, in (0, 1).

    Returns:
        A :class:`PerplexitySplit`. With an empty queue, ``threshold`` is NaN and ``valid`` False.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"split_perplexity_space: confidence={confidence!r} must lie in (0, 1)")
    lp = np.asarray(to_numpy(logppl), dtype=np.float64).reshape(-1)
    ok = np.asarray(to_numpy(correct)).reshape(-1).astype(bool)
    if lp.shape != ok.shape:
        raise ValueError(f"split_perplexity_space: {lp.size} log-PPLs but {ok.size} correctness labels")
    keep = np.isfinite(lp)
    lp, ok = lp[keep], ok[keep]
    if lp.size == 0:
        return PerplexitySplit(math.nan, False, math.nan, confidence, 0, 0, 0, 0, 0, 0.0, 0.0, "empty queue")
    order = np.argsort(lp)  # one sort serves the full fit and both cross-fitting folds
    v, c = lp[order], ok[order]
    tau, err = _best_threshold_sorted(v, c)
    low = lp < tau
    n_low, n_high = int(low.sum()), int((~low).sum())
    correct_low, wrong_high = int(ok[low].sum()), int((~ok[~low]).sum())
    # The judgements are made out of sample: tau* was chosen to make the spaces look pure, so
    # in-sample Wilson bounds are optimistic (on PPL-independent labels they pass ~5-9% of the
    # time at 95%, whatever n). Cross-fitting fixes that: each half of the queue (even / odd
    # positions) is labelled low/high by the threshold fitted on the other half, and the pooled
    # counts are tested.
    if lp.size >= 2:
        fold = order % 2  # fold of each sorted sample; subsetting keeps the sort
        low_oof = np.empty(lp.size, dtype=bool)
        for f in (0, 1):
            held_out = fold == f
            tau_f, _ = _best_threshold_sorted(v[~held_out], c[~held_out])
            low_oof[held_out] = v[held_out] < tau_f
        ok_oof = c
    else:
        low_oof, ok_oof = low, ok
    exploit = wilson_lower_bound(int(ok_oof[low_oof].sum()), int(low_oof.sum()), confidence)
    explore = wilson_lower_bound(int((~ok_oof[~low_oof]).sum()), int((~low_oof).sum()), confidence)
    reasons = []
    if not exploit > 0.5:
        reasons.append(f"EiS not mostly correct at {confidence:.0%} (lower bound {exploit:.3f})")
    if not explore > 0.5:
        reasons.append(f"ErS not mostly wrong at {confidence:.0%} (lower bound {explore:.3f})")
    return PerplexitySplit(
        threshold=tau,
        valid=not reasons,
        error_rate=err,
        confidence=confidence,
        n=int(lp.size),
        n_low=n_low,
        n_high=n_high,
        correct_low=correct_low,
        wrong_high=wrong_high,
        exploit_lower_bound=exploit,
        explore_lower_bound=explore,
        reason="; ".join(reasons),
    )

