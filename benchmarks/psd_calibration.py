"""Size and power of PSD's validity test: dipo's exact coin-flip test vs two alternatives.

Tests compared (all at 95%): `new` = dipo.core.split_perplexity_space (errors saved by tau* over one
class everywhere, exact p-value under fair coin-flip labels independent of PPL); `old` = the former
cross-fitted Wilson bounds; `permutation` = an exact permutation test of tau*'s error count given the
number of right answers (labels exchangeable), considered and rejected (see the eis45 rows).

Each cell draws `--replicates` queues of n samples (log-PPL ~ N(0, 1), wrong answers shifted by
`shift` standard deviations) and counts how often the split is judged valid:

- null, p=0.5: right half the time, independent of PPL: both judgments on their boundary. The size
  (should be close to 5%, never above);
- null, p=0.3: independent of PPL, 30% right: EiS fails by a margin (should be rare);
- power, p=0.5 / p=0.3: wrong answers `shift` sigma more perplexed (higher is better; with p=0.3 and
  shift 0.3 the population EiS is only the lowest 0.2% of log-PPLs, at 53% right: barely valid);
- boundary: below the median log-PPL right half the time, above it always wrong: Eq. 6 holds with
  equality, so accepting is a false positive (the hardest case: see docs/psd.md);
- eis45: the same with 45% right below the median: PPL predicts correctness, yet the low-PPL space is
  mostly wrong (Eq. 6 fails); a test of independence accepts it.

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

from dipo.core.psd import _best_threshold_sorted, best_threshold, split_perplexity_space

SIZES = (256, 1024, 4096)
SCENARIOS = {  # name: (p_correct, shift, p_correct below the median log-PPL (then always wrong above))
    "null_p0.5": (0.5, 0.0, None),
    "null_p0.3": (0.3, 0.0, None),
    "power_p0.5_shift0.3": (0.5, 0.3, None),
    "power_p0.3_shift0.3": (0.3, 0.3, None),
    "power_p0.3_shift1.0": (0.3, 1.0, None),
    "boundary_eis_coin_flip": (None, 0.0, 0.5),
    "eis45": (None, 0.0, 0.45),
}
TESTS = ("old_cross_fitted_wilson", "permutation", "new")


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


def permutation_valid(logppl: np.ndarray, correct: np.ndarray, confidence: float) -> bool:
    """Exact permutation test of tau*'s error count E* given n_c right answers:
    Pr(E* <= e) = C(n, e) / C(n, n_c) (reflection principle)."""
    n, n_c = logppl.size, int(correct.sum())
    errors = round(best_threshold(logppl, correct)[1] * n)
    if errors >= min(n_c, n - n_c):
        return False
    def log_comb(k: int) -> float:
        return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)

    return math.exp(log_comb(errors) - log_comb(n_c)) <= 1 - confidence


def draw(rng: np.random.Generator, n: int, p_correct, shift: float, p_low):
    x = rng.standard_normal(n)
    if p_low is not None:
        return x, (x < 0) & (rng.random(n) < p_low)
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
    seconds = dict.fromkeys(TESTS, 0.0)
    judges = {"old_cross_fitted_wilson": cross_fitted_wilson_valid, "permutation": permutation_valid,
              "new": lambda lp, ok, conf: split_perplexity_space(lp, ok, conf).valid}
    for s_idx, (name, (p_correct, shift, p_low)) in enumerate(SCENARIOS.items()):
        for n in SIZES:
            rng = np.random.default_rng([s_idx, n])
            hits = dict.fromkeys(TESTS, 0)
            for _ in range(args.replicates):
                logppl, correct = draw(rng, n, p_correct, shift, p_low)
                for test in TESTS:
                    t0 = time.perf_counter()
                    hits[test] += bool(judges[test](logppl, correct, args.confidence))
                    seconds[test] += time.perf_counter() - t0
            rows.append({"scenario": name, "n": n, **{t: rate_with_ci(hits[t], args.replicates) for t in TESTS}})
            print(f"{name:24s} n={n:5d}  " + "  ".join(f"{t} {hits[t] / args.replicates:6.3f}" for t in TESTS),
                  flush=True)
    out = {"confidence": args.confidence, "replicates": args.replicates, "results": rows,
           "seconds_per_test": seconds}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print("test time: " + ", ".join(f"{t} {s:.1f} s" for t, s in seconds.items()) + f"; saved {args.out}")


if __name__ == "__main__":
    main()
