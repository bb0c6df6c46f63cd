"""`arith`: small-number addition for real small LMs ("What is 7 + 5? Answer with just the number.").

A task of its own, not a loosened maths benchmark: the prompt asks for the bare number and its
verifier is `dipo.rewards.final_number_reward` (the last number in the reply equals the sum). It is
short enough that SmolLM2-135M-Instruct answers in a few tokens and partly right (about a third at
temperature 0.7), so DAPO/DiPO see easy, normal and hard groups on a CPU.

Levels: 1 = one digit + one digit, 2 = two digits + one digit, 3 = two digits + two digits,
4 = three terms of one digit. Rows: `id`, `prompt` (chat messages, one user turn), `answer` (the
sum as text), `difficulty`, `task` ("arith"). Train and test rows are disjoint (split by a hash of
the question), deterministic by seed.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

ARITH_LEVELS = (1, 2, 3, 4)
ARITH_INSTRUCTION = "Answer with just the number."


def _terms(rng: random.Random, level: int) -> list[int]:
    if level == 1:
        return [rng.randint(1, 9), rng.randint(1, 9)]
    if level == 2:
        return [rng.randint(10, 99), rng.randint(1, 9)]
    if level == 3:
        return [rng.randint(10, 99), rng.randint(10, 99)]
    if level == 4:
        return [rng.randint(1, 9) for _ in range(3)]
    raise ValueError(f"arith level {level}: choose from {ARITH_LEVELS}")


def _split_of(question: str) -> str:
    return "test" if hashlib.sha256(question.encode()).digest()[0] % 4 == 0 else "train"


def arith_question(terms: Sequence[int]) -> str:
    return f"What is {' + '.join(str(t) for t in terms)}? {ARITH_INSTRUCTION}"


def make_arith_tasks(n: int, seed: int = 0, levels: Sequence[int] = (1,), split: str = "train") -> list[dict]:
    """`n` distinct addition questions of the given `levels` (equal shares, fixed order) from `split`."""
    if n < 1 or split not in ("train", "test") or not levels or any(lv not in ARITH_LEVELS for lv in levels):
        raise ValueError(f"arith: need n >= 1, split train|test and levels from {ARITH_LEVELS}; "
                         f"got n={n}, split={split!r}, levels={tuple(levels)}")
    rng = random.Random(f"arith-{seed}")
    rows: list[dict] = []
    seen: set[str] = set()
    for _ in range(1000 * n):
        if len(rows) == n:
            return rows
        level = levels[len(rows) % len(levels)]
        terms = _terms(rng, level)
        question = arith_question(terms)
        if question in seen or _split_of(question) != split:
            continue
        seen.add(question)
        rows.append({"id": f"arith-{split}-{seed}-{len(rows):05d}", "prompt": [{"role": "user", "content": question}],
                     "answer": str(sum(terms)), "difficulty": level, "task": "arith"})
    raise ValueError(f"arith: only {len(rows)} distinct {split} questions at levels {tuple(levels)}; ask for fewer")
