"""How competent is a testbed policy: per-level accuracy and the group-kind mix RL would see.

A group is the G completions sampled for one prompt (at the RL sampling temperature): *easy*
if all are correct, *hard* if all are wrong, *normal* otherwise (the kinds DiPO's BRR targets).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np


def group_kind_mix(model_dir: str | Path, n_prompts: int = 100, group_size: int = 8, split: str = "train",
                   temperature: float = 1.0, max_new_tokens: int = 64, seed: int = 0,
                   progress: bool = False, num_threads: int | None = 1) -> dict:
    """Sample `group_size` maths completions for `n_prompts` testbed prompts (levels in equal
    shares) and score them with the real maths verifier.

    Returns `{"accuracy", "frac_easy", "frac_normal", "frac_hard", "accuracy_by_level": {level: acc},
    "n_prompts", "group_size", "split"}`. `num_threads` sets torch's CPU threads (1 is fastest for the
    tiny model on a shared machine; None leaves the setting alone).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from dipo.eval.harness import evaluate_math
    from dipo.testbed.tasks import make_math_tasks

    if num_threads:
        torch.set_num_threads(num_threads)

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    rows = make_math_tasks(n_prompts, seed=seed, split=split)
    result = evaluate_math(model, tokenizer, rows, k=group_size, temperature=temperature, top_p=1.0,
                           max_new_tokens=max_new_tokens, batch_size=64, seed=seed, progress=progress,
                           desc="competence")
    per_prompt: dict[str, list[bool]] = defaultdict(list)
    for record in result["records"]:
        per_prompt[record["id"]].append(record["correct"])
    level_of = {row["id"]: row["difficulty"] for row in rows}
    acc = {pid: float(np.mean(c)) for pid, c in per_prompt.items()}
    by_level: dict[int, list[float]] = defaultdict(list)
    for pid, a in acc.items():
        by_level[level_of[pid]].append(a)
    values = np.array(list(acc.values()))
    return {
        "accuracy": float(values.mean()),
        "frac_easy": float(np.mean(values == 1.0)),
        "frac_hard": float(np.mean(values == 0.0)),
        "frac_normal": float(np.mean((values > 0) & (values < 1))),
        "accuracy_by_level": {level: float(np.mean(v)) for level, v in sorted(by_level.items())},
        "n_prompts": len(rows), "group_size": group_size, "split": split,
    }
