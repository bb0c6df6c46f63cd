"""Evaluation metrics over k samples per problem: mean@k, maj@k, unbiased pass@k.

Shapes: `correct[p][j]` is whether sample j of problem p is right (k samples per problem, k may
differ between problems); `answers[p][j]` is the extracted answer (None when there is none).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al., 2021):
    `1 - C(n-c, k) / C(n, k)`, computed as `1 - prod_{i=n-c+1}^{n} (1 - k/i)` for stability."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_at_k(correct: Sequence[Sequence[bool]]) -> float:
    """Average accuracy over the samples of each problem, averaged over problems."""
    if not correct:
        raise ValueError("mean_at_k: no problems")
    return float(np.mean([np.mean(np.asarray(c, dtype=float)) for c in correct]))


def mean_pass_at_k(correct: Sequence[Sequence[bool]], k: int) -> float:
    """pass@k averaged over problems (each problem's n = its number of samples)."""
    return float(np.mean([pass_at_k(len(c), int(sum(c)), k) for c in correct]))


def cluster_answers(answers: Sequence[str | None], same: dict[tuple[int, int], bool]) -> list[int]:
    """Cluster label per answer (-1 for None): each answer joins the first earlier cluster
    whose first member it is equivalent to (`same[(i, j)]`, i < j), else starts one."""
    labels: list[int] = []
    representatives: list[int] = []
    for j, answer in enumerate(answers):
        if answer is None:
            labels.append(-1)
            continue
        label = next((c for c, i in enumerate(representatives) if same.get((i, j), False)), None)
        if label is None:
            label = len(representatives)
            representatives.append(j)
        labels.append(label)
    return labels


def majority_index(labels: Sequence[int]) -> int | None:
    """Index of the first member of the largest cluster (ties: the cluster formed first);
    None when no sample has an answer."""
    counts: dict[int, int] = {}
    for label in labels:
        if label >= 0:
            counts[label] = counts.get(label, 0) + 1
    if not counts:
        return None
    best = max(counts, key=lambda c: (counts[c], -c))
    return list(labels).index(best)


def maj_at_k(answers: Sequence[Sequence[str | None]], correct: Sequence[Sequence[bool]], grader=None) -> float:
    """Majority-vote accuracy: per problem, answers are grouped by math-verify equivalence
    (not string equality), the largest group's answer is the vote, and the problem counts as
    solved when that answer is correct. Problems without any answer count as wrong.
    `grader` is a `dipo.rewards.MathGrader` (default: the process-wide one)."""
    if len(answers) != len(correct):
        raise ValueError(f"maj_at_k: {len(answers)} answer lists for {len(correct)} correctness lists")
    return vote_accuracy(majority_votes(answers, grader), correct)


def vote_accuracy(votes: Sequence[int | None], correct: Sequence[Sequence[bool]]) -> float:
    """Fraction of problems whose voted sample is correct (no vote = wrong)."""
    return float(np.mean([v is not None and bool(c[v]) for v, c in zip(votes, correct)]))


def majority_votes(answers: Sequence[Sequence[str | None]], grader=None) -> list[int | None]:
    """The majority sample's index per problem (see `maj_at_k`); all equivalence checks of all
    problems go to the grader in one batch."""
    if grader is None:
        from dipo.rewards import default_grader

        grader = default_grader()
    pairs, where = [], []
    for p, group in enumerate(answers):
        for j in range(len(group)):
            for i in range(j):
                if group[i] is not None and group[j] is not None:
                    pairs.append((group[j], group[i]))
                    where.append((p, i, j))
    verdicts = grader.grade(pairs) if pairs else []
    same: list[dict[tuple[int, int], bool]] = [{} for _ in answers]
    for (p, i, j), verdict in zip(where, verdicts):
        same[p][(i, j)] = verdict
    return [majority_index(cluster_answers(group, same[p])) for p, group in enumerate(answers)]
