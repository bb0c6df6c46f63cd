"""Perplexity Space Disentangling (PSD, paper Eqs. 5-7, Algorithm 1).

Find the log-PPL threshold ``tau*`` that best separates correct (low PPL) from wrong (high PPL)
samples in the PPL queue, then check at a given confidence that the two spaces it defines are an
exploitation space (EiS: mostly right) and an exploration space (ErS: mostly wrong): an exact test
of how many errors ``tau*`` saves over predicting one class everywhere, against coin-flip labels
independent of perplexity (the hardest case where both judgments fail). Size and power of the test:
docs/psd.md, measured by benchmarks/psd_calibration.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dipo.core._util import to_numpy

QUADRANTS = ("CL", "CH", "EL", "EH")  # Correct/Error x Low/High perplexity


def separation_p_value(n: int, n_correct: int, n_errors: int) -> float:
    """Exact p-value of PSD's validity test, ``Pr(D >= d)`` under coin-flip labels.

    Statistic: ``d = min(n_correct, n_wrong) - E*``, the errors the best threshold saves over
    predicting one class for everyone (``E*`` = :func:`best_threshold`'s error rate times ``n``).
    At ``tau*`` the two judgments' margins are ``correct_low - wrong_low = n_correct - E*`` and
    ``wrong_high - correct_high = n_wrong - E*``, so ``d`` is the smaller of them: both spaces lean
    the right way exactly when ``d > 0``.

    Null: labels i.i.d. fair coin flips, independent of perplexity, the case where both judgments
    sit on their boundary (``Pr(R=1 | low) = Pr(R=0 | high) = 1/2``). Walk along the sorted queue,
    +1 per correct and -1 per wrong label: ``d = max_j S_j - max(0, S_n)``, and the reflection
    principle gives, exactly,

        ``Pr(D >= d) = F(floor(n/2) - d) + F(ceil(n/2) - 1 - d)``,  ``F`` the Bin(n, 1/2) CDF.

    Tied log-PPLs leave fewer cuts, ``E*`` can only grow, and the p-value is conservative.
    ``d <= 0`` gives 1. Cost O(sqrt(n)).
    """
    d = min(n_correct, n - n_correct) - n_errors
    if n <= 0 or d <= 0:
        return 1.0
    below = _log_binomial_half_cdf(n, n // 2 - d)
    above = _log_binomial_half_cdf(n, (n + 1) // 2 - 1 - d)
    return min(1.0, math.exp(below) + math.exp(above))


def _log_binomial_half_cdf(n: int, k: int) -> float:
    """``log Pr(Bin(n, 1/2) <= k)``, exact to ~1e-12 relative: the terms ``C(n, i)`` for ``i <= k``
    summed in log space over the ``12 sqrt(n) + 50`` nearest to ``k`` (farther ones are below e^-140
    of the largest)."""
    if k < 0:
        return -math.inf
    if k >= n:
        return 0.0
    if 2 * k >= n:  # the mass lies below k: take the other (symmetric) tail
        return math.log1p(-math.exp(_log_binomial_half_cdf(n, n - k - 1)))
    m = np.arange(min(k, int(12 * math.sqrt(n)) + 50))
    log_ratio = np.log(k - m) - np.log(n - k + m + 1.0)  # log C(n, i-1) / C(n, i) for i = k, k-1, ...
    log_top = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)  # log C(n, k)
    log_terms = log_top + np.concatenate(([0.0], np.cumsum(log_ratio)))
    top = float(log_terms.max())
    return top + math.log(float(np.exp(log_terms - top).sum())) - n * math.log(2.0)


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
    n = v.size
    dtype = np.int32 if n < 2**30 else np.int64  # half the memory traffic of int64 on big queues
    correct_before = np.zeros(n + 1, dtype=dtype)  # correct among the k lowest
    np.cumsum(correct_sorted, dtype=dtype, out=correct_before[1:])
    # errors of cut k = wrong among the k lowest + correct above them = k - 2 * correct_before + n_correct
    errors = np.arange(n + 1, dtype=dtype)
    errors -= correct_before
    errors -= correct_before
    errors += correct_before[-1]
    tied = v[1:] == v[:-1]  # a cut inside a run of equal values labels nothing new: not realisable
    has_ties = bool(tied.any())
    if has_ties:
        errors[1:n][tied] = np.iinfo(dtype).max
    best = errors.min()
    optimal = np.flatnonzero(errors == best)
    # Group optimal cuts into runs that form one interval: consecutive realisable cuts.
    if has_ties:
        realisable_idx = np.flatnonzero(np.concatenate(([True], ~tied, [True])))
        rank = np.searchsorted(realisable_idx, optimal)
    else:
        rank = optimal
    run_starts = np.flatnonzero(np.diff(rank, prepend=-2) != 1)
    run_ends = np.concatenate((run_starts[1:], [optimal.size])) - 1
    mid = run_starts.size // 2
    return _middle_of_cuts(v, optimal[run_starts[mid]], optimal[run_ends[mid]]), float(best) / n


def _middle_of_cuts(v: np.ndarray, first: int, last: int) -> float:
    """The threshold in the middle of the interval realising cuts ``first..last`` of sorted ``v``."""
    lower = v[first - 1] if first > 0 else -math.inf
    upper = v[last] if last < v.size else math.inf
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
    return tau


@dataclass(frozen=True)
class PerplexitySplit:
    """Result of PSD on the queue.

    ``threshold`` is ``tau*`` in log-PPL; samples with ``logppl < threshold`` are 'low' (EiS side).
    ``valid`` is True only when both advantage judgments hold at ``confidence``: the exact p-value
    of :func:`separation_p_value` (errors saved by ``tau*`` over predicting one class, against
    coin-flip labels) is at most ``1 - confidence``. A valid split always has both judgments in
    sample: ``correct_low > n_low / 2`` (EiS, Eq. 6) and ``wrong_high > n_high / 2`` (ErS, Eq. 7).
    ``n_low``/``correct_low``/... are the in-sample counts of the threshold.
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
    p_value: float  # Pr(a threshold saves this many errors | coin-flip labels independent of PPL), exact
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


def split_perplexity_space(logppl, correct, confidence: float = 0.95,
                           presorted: bool = False) -> PerplexitySplit:
    """PSD (Algorithm 1): the optimal threshold and its validity.

    ``tau*`` is the exact minimiser of the misclassification rate on the whole queue (Eq. 5,
    :func:`best_threshold`). The split is valid when the low side is mostly correct (EiS, Eq. 6) and
    the high side mostly wrong (ErS, Eq. 7) at ``confidence``: ``tau*`` must save more errors over
    predicting one class everywhere than it would with a probability ``1 - confidence`` on fair
    coin-flip labels independent of perplexity (:func:`separation_p_value`, exact). On such labels
    the test accepts at most ``1 - confidence`` of the time, and close to it (see docs/psd.md for
    measured size and power); on PPL-independent labels of any other base rate, where one judgment
    fails by a margin, almost never. A valid split satisfies both judgments in sample.

    Args:
        logppl: ``[n]`` log-PPLs of the queue (NaNs are ignored).
        correct: ``[n]`` bools, verifier correctness.
        confidence: confidence level of the judgment, in (0, 1).
        presorted: ``logppl`` is already ascending (e.g. ``PerplexityQueue.sorted()``): skip the
            O(n log n) sort. Checked in O(n).

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
    if not keep.all():
        lp, ok = lp[keep], ok[keep]
    if lp.size == 0:
        return PerplexitySplit(math.nan, False, math.nan, confidence, 0, 0, 0, 0, 0, 1.0, "empty queue")
    if presorted:
        if (lp[1:] < lp[:-1]).any():
            raise ValueError("split_perplexity_space: presorted=True but the log-PPLs are not ascending")
        v, c = lp, ok
    else:
        order = np.argsort(lp, kind="stable")
        v, c = lp[order], ok[order]
    tau, err = _best_threshold_sorted(v, c)
    n = int(v.size)
    n_low = int(np.searchsorted(v, tau, side="left"))  # samples with logppl < tau
    n_correct = int(np.count_nonzero(c))
    correct_low = int(np.count_nonzero(c[:n_low]))
    wrong_high = (n - n_low) - (n_correct - correct_low)
    n_errors = (n_low - correct_low) + (n_correct - correct_low)
    p_value = separation_p_value(n, n_correct, n_errors)
    valid = p_value <= 1.0 - confidence
    reason = "" if valid else (
        f"EiS/ErS not both established at {confidence:.0%}: the threshold saves "
        f"{min(n_correct, n - n_correct) - n_errors} errors of {n} over one class everywhere "
        f"(p = {p_value:.3g})"
    )
    return PerplexitySplit(
        threshold=tau,
        valid=valid,
        error_rate=err,
        confidence=confidence,
        n=n,
        n_low=n_low,
        n_high=n - n_low,
        correct_low=correct_low,
        wrong_high=wrong_high,
        p_value=p_value,
        reason=reason,
    )
