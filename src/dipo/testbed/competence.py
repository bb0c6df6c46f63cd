"""How competent is a testbed policy, and is it in DiPO's regime?

A group is the G completions sampled for one prompt (at the RL sampling temperature): *easy*
if all are correct, *hard* if all are wrong, *normal* otherwise (the kinds DiPO's BRR targets).
`group_kind_mix` measures the mix RL starts from and, from each sample's log-perplexity, the
perplexity regime: where PSD puts its threshold on all the probe's samples (a large queue), whether
the split is valid, and which share of hard / easy groups BRR would touch. A policy whose correct
answers are near-deterministic and whose wrong answers are all uncertain gives DiPO nothing to do.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from dipo.testbed.tasks import RL_LEVELS, RL_TEMPERATURE


def completion_logppl(model, tokenizer, prompts: list[str], completions: list[str], batch_size: int = 64,
                      temperature: float = 1.0) -> np.ndarray:
    """Log-PPL of each completion (its tokens plus the end-of-turn token) given its prompt:
    ``-(1/|y|) * sum_t log softmax(z_t / temperature)[y_t]`` over a teacher-forced forward pass, at
    the sampling temperature, as the trainers record it (TRL scales the logits the same way)."""
    import torch

    from dipo.core import sequence_logppl

    eos = tokenizer.eos_token
    out = []
    for start in range(0, len(prompts), batch_size):
        p_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts[start:start + batch_size]]
        c_ids = [tokenizer(c + eos, add_special_tokens=False)["input_ids"] for c in completions[start:start + batch_size]]
        width = max(len(p) + len(c) for p, c in zip(p_ids, c_ids))
        ids = torch.full((len(p_ids), width), tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros_like(ids)
        target = torch.zeros_like(ids, dtype=torch.bool)
        for i, (p, c) in enumerate(zip(p_ids, c_ids)):  # right padding: positions stay 0..len-1
            ids[i, :len(p) + len(c)] = torch.tensor(p + c)
            attention[i, :len(p) + len(c)] = 1
            target[i, len(p):len(p) + len(c)] = True
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1].float() / temperature
        token_lp = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        out.append(sequence_logppl(token_lp, target[:, 1:]).numpy())
    return np.concatenate(out) if out else np.zeros(0)


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

    from dipo.eval.harness import evaluate_math
    from dipo.testbed.tasks import make_math_tasks

    if num_threads:
        torch.set_num_threads(num_threads)

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    rows = make_math_tasks(n_prompts, seed=seed, levels=levels, split=split)
    result = evaluate_math(model, tokenizer, rows, k=group_size, temperature=temperature, top_p=1.0,
                           max_new_tokens=max_new_tokens, batch_size=64, seed=seed, progress=progress,
                           desc="competence")
    records = result["records"]
    prompt_of = {row["id"]: row["prompt"] for row in rows}
    logppl = completion_logppl(model, tokenizer, [prompt_of[r["id"]] for r in records],
                               [r["completion"] for r in records], temperature=temperature)
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
