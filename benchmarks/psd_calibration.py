"""Size and power of PSD's validity test: the exact permutation test vs the former cross-fitted Wilson test.

Each cell draws `--replicates` queues of n samples (log-PPL ~ N(0, 1), wrong answers shifted by
`shift` standard deviations) and counts how often the split is judged valid at 95% confidence:

- null, p=0.5 / p=0.3: correctness independent of PPL (the size: should be close to 5%, never above);
- power, p=0.5 / p=0.3, shift 0.3: wrong answers 0.3 sigma more perplexed (higher is better);
- boundary: below the median log-PPL a coin flip, above it always wrong. No threshold beats predicting
  "wrong" for everyone, so the exploitation space is not mostly right (Eq. 6 fails by a hair) although
  labels do depend on PPL. A test of independence can accept here; the row shows how often each does.

    python benchmarks/psd_calibration.py [--replicates 2000]

Writes benchmarks/results/psd_calibration.json. Deterministic (seeded per cell).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from statistics import NormalDist

import numpy as np

from dipo.core.psd import _best_threshold_sorted, split_perplexity_space

SIZES = (256, 1024, 4096)
SCENARIOS = {  # name: (p_correct, shift, boundary)
    "null_p0.5": (0.5, 0.0, False),
    "null_p0.3": (0.3, 0.0, False),
    "power_p0.5_shift0.3": (0.5, 0.3, False),
    "power_p0.3_shift0.3": (0.3, 0.3, False),
    "boundary_eis_coin_flip": (None, 0.0, True),
}


def wilson_lower_bound(successes: int, n: int, confidence: float) -> float:
    """One-sided Wilson score lower bound (the former test's building block)."""
    if n <= 0:
        return 0.0
    z = NormalDist().inv_cdf(confidence)
    p = successes / n
    z2n = z * z / n
    return (p + z2n / 2 - z * math.sqrt(p * (1 - p) / n + z2n / (4 * n))) / (1 + z2n)


def cross_fitted_wilson_valid(logppl: np.ndarray, correct: np.ndarray, confidence: float) -> bool:
    """The validity test dipo used before (commit ecfed51): each half of the queue (even/odd
    positions) is labelled low/high by the threshold fitted on the other half; both one-sided
    Wilson lower bounds of the pooled out-of-fold counts must exceed 1/2."""
    order = np.argsort(logppl)
    v, c = logppl[order], correct[order]
    fold = order % 2
    low = np.empty(v.size, dtype=bool)
    for f in (0, 1):
        held_out = fold == f
        tau_f, _ = _best_threshold_sorted(v[~held_out], c[~held_out])
        low[held_out] = v[held_out] < tau_f
    exploit = wilson_lower_bound(int(c[low].sum()), int(low.sum()), confidence)
    explore = wilson_lower_bound(int((~c[~low]).sum()), int((~low).sum()), confidence)
    return exploit > 0.5 and explore > 0.5


def draw(rng: np.random.Generator, n: int, p_correct, shift: float, boundary: bool):
    x = rng.standard_normal(n)
    if boundary:
        return x, (x < 0) & (rng.random(n) < 0.5)
    correct = rng.random(n) < p_correct
    return x + np.where(correct, 0.0, shift), correct


def rate_with_ci(hits: int, total: int) -> dict:
    p = hits / total
    half = 1.96 * math.sqrt(max(p * (1 - p), 1e-12) / total)
    return {"rate": p, "ci95": [max(0.0, p - half), min(1.0, p + half)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=2000)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "psd_calibration.json"))
    args = parser.parse_args()
    rows = []
    t_old = t_new = 0.0
    for s_idx, (name, (p_correct, shift, boundary)) in enumerate(SCENARIOS.items()):
        for n in SIZES:
            rng = np.random.default_rng([s_idx, n])
            old = new = 0
            for _ in range(args.replicates):
                logppl, correct = draw(rng, n, p_correct, shift, boundary)
                t0 = time.perf_counter()
                old += cross_fitted_wilson_valid(logppl, correct, args.confidence)
                t1 = time.perf_counter()
                new += split_perplexity_space(logppl, correct, args.confidence).valid
                t_new += time.perf_counter() - t1
                t_old += t1 - t0
            row = {"scenario": name, "n": n, "old_cross_fitted_wilson": rate_with_ci(old, args.replicates),
                   "new_permutation": rate_with_ci(new, args.replicates)}
            rows.append(row)
            print(f"{name:24s} n={n:5d}  old {old / args.replicates:6.3f}   new {new / args.replicates:6.3f}",
                  flush=True)
    out = {"confidence": args.confidence, "replicates": args.replicates, "results": rows,
           "seconds_old_test": t_old, "seconds_new_test": t_new}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"test time: old {t_old:.1f} s, new {t_new:.1f} s; saved {args.out}")


if __name__ == "__main__":
    main()
