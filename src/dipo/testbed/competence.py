"""How competent is a testbed policy, and is it in DiPO's regime?

A group is the G completions sampled for one prompt (at the RL sampling temperature): *easy*
if all are correct, *hard* if all are wrong, *normal* otherwise (the kinds DiPO's BRR targets).
`group_kind_mix` measures the mix RL starts from and, from each sample's log-perplexity, the
perplexity regime (`dipo.analysis.premise.perplexity_regime`): where PSD puts its threshold on all the
probe's samples (a large queue), whether the split is valid, and which share of hard / easy groups BRR
would touch. A policy whose correct answers are near-deterministic and whose wrong answers are all
uncertain gives DiPO nothing to do. Each sample's log-PPL is the sampler's own at the sampling temperature
(`dipo.eval.generate_transformers(..., logprobs=True)`), over the sampled tokens and the end-of-turn token
that ended them, as the trainers record it.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from dipo.analysis.premise import perplexity_regime
from dipo.testbed.tasks import RL_LEVELS, RL_TEMPERATURE


def group_kind_mix(model_dir: str | Path, n_prompts: int = 100, group_size: int = 8, split: str = "train",
                   temperature: float = RL_TEMPERATURE, max_new_tokens: int = 80, seed: int = 0,
                   levels: tuple[int, ...] = RL_LEVELS, progress: bool = False, num_threads: int | None = 1) -> dict:
    """Sample `group_size` maths completions for `n_prompts` testbed prompts (`levels` in equal
    shares; by default the levels `dipo demo` trains on) and score them with the real maths verifier.

    Returns `{"accuracy", "frac_easy", "frac_normal", "frac_hard", "accuracy_by_level": {level: acc},
    "regime": perplexity_regime(...), "n_prompts", "group_size", "split"}`. `num_threads` sets
    torch's CPU threads (1 is fastest for the tiny model on a shared machine; None leaves it alone).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from dipo.eval import generate_transformers, prompt_text, score_math
    from dipo.testbed.tasks import make_math_tasks

    if num_threads:
        torch.set_num_threads(num_threads)

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    rows = make_math_tasks(n_prompts, seed=seed, levels=levels, split=split)
    completions = generate_transformers(model, tokenizer, [prompt_text(row, tokenizer) for row in rows], k=group_size,
                                        temperature=temperature, top_p=1.0, max_new_tokens=max_new_tokens,
                                        batch_size=64, seed=seed, progress=progress, desc="competence", logprobs=True)
    records = score_math(rows, completions, group_size)["records"]
    logppl = np.array([c.logppl for group in completions for c in group])
    per_prompt: dict[str, list[bool]] = defaultdict(list)
    for record in records:
        per_prompt[record["id"]].append(record["correct"])
    level_of = {row["id"]: row["difficulty"] for row in rows}
    acc = {pid: float(np.mean(c)) for pid, c in per_prompt.items()}
    by_level: dict[int, list[float]] = defaultdict(list)
    for pid, a in acc.items():
        by_level[level_of[pid]].append(a)
    values = np.array(list(acc.values()))
    correct = np.array([r["correct"] for r in records])
    group_ids = np.array([r["id"] for r in records])
    return {
        "accuracy": float(values.mean()),
        "frac_easy": float(np.mean(values == 1.0)),
        "frac_hard": float(np.mean(values == 0.0)),
        "frac_normal": float(np.mean((values > 0) & (values < 1))),
        "accuracy_by_level": {level: float(np.mean(v)) for level, v in sorted(by_level.items())},
        "regime": perplexity_regime(logppl, correct, group_ids),
        "n_prompts": len(rows), "group_size": group_size, "split": split,
    }
