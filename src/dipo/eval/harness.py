"""Generation + scoring on maths benchmarks and BFCL, for `dipo eval` and for in-training
held-out evaluation (`evaluate_math(model, tokenizer, rows, ...)` on a model already in memory).

Scoring never stops on a sample: whatever a model wrote scores 0 or 1 (rewards' guarantees, see
docs/rewards.md), samples whose grading hit the deadline or whose BFCL entry could not be checked
are counted in the results, and `write_eval_outputs` writes any text (lone surrogates included).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dipo.data.prompts import math_prompt, render_prompt
from dipo.eval.generation import Completion, generate_transformers
from dipo.eval.metrics import majority_votes, mean_at_k, mean_pass_at_k, vote_accuracy
from dipo.rewards import BFCLResult, default_grader, extract_boxed
from dipo.rewards.bfcl import check_entry

# (prompts, k) -> k completions per prompt; lets callers plug in vLLM or a fake generator.
GenerateFn = Callable[[list[str], int], list[list[Completion]]]


def prompt_text(item: Any, tokenizer: Any) -> str:
    """The text a model is prompted with: a text prompt as it is, chat messages rendered with the tokenizer's
    template; a row (dict): its `prompt` (text or messages), else its maths `problem` in the standard prompt."""
    if isinstance(item, str):
        return item
    if not isinstance(item, dict):
        return render_prompt(item, tokenizer)
    prompt = item.get("prompt")
    if isinstance(prompt, (str, list)):
        return prompt_text(prompt, tokenizer)
    if "problem" in item:
        return math_prompt(item["problem"], tokenizer)
    raise ValueError(f"row {item.get('id', '?')}: needs a 'prompt' (text or chat messages) or a 'problem'")




def _default_generate(model, tokenizer, temperature, top_p, max_new_tokens, batch_size, seed, progress, desc) -> GenerateFn:
    def generate(prompts: list[str], k: int) -> list[list[Completion]]:
        return generate_transformers(model, tokenizer, prompts, k=k, temperature=temperature, top_p=top_p,
                                     max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed,
                                     progress=progress, desc=desc)
    return generate


def score_math(rows: Sequence[dict], completions: Sequence[Sequence[Completion]], k: int, grader=None) -> dict:
    """mean@k, maj@k, pass@k (and pass@1) plus per-sample records for generated completions."""
    grader = grader or default_grader()
    timeouts, crashes = grader.timeouts, grader.crashes
    answers = [[extract_boxed(c.text) for c in samples] for samples in completions]
    flat = grader.grade([(a, str(row["answer"])) for row, group in zip(rows, answers) for a in group])
    correct, pos = [], 0
    for group in answers:
        correct.append(flat[pos : pos + len(group)])
        pos += len(group)
    votes = majority_votes(answers, grader)
    records = []
    for p, (row, samples) in enumerate(zip(rows, completions)):
        for j, sample in enumerate(samples):
            records.append({"id": row.get("id", str(p)), "sample": j, "gold": str(row["answer"]),
                            "answer": answers[p][j], "correct": bool(correct[p][j]), "majority": votes[p] == j,
                            "length": sample.length, "truncated": sample.truncated, "completion": sample.text})
    lengths = [s.length for group in completions for s in group]
    return {
        "n": len(rows), "k": k,
        f"mean@{k}": mean_at_k(correct),
        f"maj@{k}": vote_accuracy(votes, correct),
        f"pass@{k}": mean_pass_at_k(correct, k),
        "pass@1": mean_pass_at_k(correct, 1),
        "accuracy": mean_at_k(correct),
        "answered": float(np.mean([a is not None for group in answers for a in group])),
        "mean_length": float(np.mean(lengths)),
        "truncated": float(np.mean([s.truncated for group in completions for s in group])),
        # items scored 0 because grading (or majority-vote comparisons) passed the deadline or crashed
        "grading_timeouts": grader.timeouts - timeouts,
        "grading_crashes": grader.crashes - crashes,
        "records": records,
    }


def evaluate_math(model: Any, tokenizer: Any, rows: Sequence[dict], k: int = 8, temperature: float = 0.6,
                  top_p: float = 0.95, max_new_tokens: int = 1024, batch_size: int = 16, seed: int = 0,
                  progress: bool = True, generate_fn: GenerateFn | None = None, grader=None,
                  desc: str = "maths") -> dict:
    """Sample k completions per problem and score them.

    rows: dicts with `answer` and `prompt` (text, or chat messages rendered with the tokenizer's
    template) or `problem` (`dipo.data.load_math_dataset` rows work as they are).
    Returns `{"n", "k", "mean@k", "maj@k", "pass@k", "pass@1", "accuracy" (= mean@k),
    "answered", "mean_length", "truncated", "grading_timeouts", "grading_crashes", "records"}`
    with one record per sample.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("evaluate_math: no rows")
    prompts = [prompt_text(row, tokenizer) for row in rows]
    generate = generate_fn or _default_generate(model, tokenizer, temperature, top_p, max_new_tokens,
                                                batch_size, seed, progress, desc)
    return score_math(rows, generate(prompts, k), k, grader)


def evaluate_bfcl(model: Any, tokenizer: Any, rows: Sequence[dict], max_new_tokens: int = 256,
                  batch_size: int = 16, temperature: float = 0.0, seed: int = 0, progress: bool = True,
                  generate_fn: GenerateFn | None = None, desc: str = "bfcl", grader=None) -> dict:
    """BFCL AST accuracy (one completion per entry, greedy by default, as BFCL does) per
    category, their mean and over all entries. rows: `dipo.data.load_bfcl` rows (any mix of categories).
    Returns `{"categories": {name: {"n", "accuracy"}}, "ast_mean" (unweighted mean over the AST
    categories evaluated; not BFCL's leaderboard Overall, which also weighs live and multi-turn
    categories), "micro" (over all entries), "errors" (entries scored 0 because the check
    itself failed: a malformed entry, a check past the grading deadline, or model output the
    checker could not handle), "records"}`. Checks run on `grader`'s pool (default: the
    process-wide one) under its per-item deadline."""
    rows = list(rows)
    if not rows:
        raise ValueError("evaluate_bfcl: no rows")
    prompts = [prompt_text(row, tokenizer) for row in rows]
    generate = generate_fn or _default_generate(model, tokenizer, temperature, 1.0, max_new_tokens,
                                                batch_size, seed, progress, desc)
    completions = generate(prompts, 1)
    results = _check_bfcl_rows(rows, [samples[0].text for samples in completions], grader or default_grader())
    records, by_category = [], {}
    for row, samples, result in zip(rows, completions, results):
        by_category.setdefault(row["category"], []).append(result.valid)
        records.append({"id": row["id"], "category": row["category"], "valid": result.valid,
                        "error_type": result.error_type, "errors": result.errors[:3], "completion": samples[0].text})
    categories = {c: {"n": len(v), "accuracy": float(np.mean(v))} for c, v in by_category.items()}
    return {"categories": categories,
            "ast_mean": float(np.mean([c["accuracy"] for c in categories.values()])),
            "micro": float(np.mean([r["valid"] for r in records])),
            "errors": sum(r["error_type"] in _CHECK_ERRORS for r in records), "records": records}


_CHECK_ERRORS = ("checker_error", "entry_error", "grading_timeout")


def _check_bfcl_rows(rows: Sequence[dict], texts: Sequence[Any], grader) -> list[BFCLResult]:
    """bfcl_ast_check per row on the grading pool; a malformed entry (which it would refuse
    with ValueError) and a check past the deadline are invalid, with their own error types."""
    results: list[BFCLResult | None] = [None] * len(rows)
    todo = []
    for i, row in enumerate(rows):
        try:
            check_entry(row["possible_answer"], row["category"])
            todo.append(i)
        except (ValueError, KeyError) as exc:
            results[i] = BFCLResult(False, [f"entry {row.get('id', '?')} cannot be checked: {exc}"], "entry_error")
    late = BFCLResult(False, ["no verdict within the grading deadline"], "grading_timeout")
    checked = grader.run("bfcl", [(rows[i]["functions"], texts[i], rows[i]["possible_answer"], rows[i]["category"])
                                  for i in todo], late)
    for i, result in zip(todo, checked):
        results[i] = result
    return results


def _json_line(record: dict) -> bytes:
    # Text a model wrote may hold lone surrogates (e.g. \ud800), which UTF-8 cannot encode:
    # write them as JSON escapes, which json.loads reads back unchanged.
    return (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8", "backslashreplace")


def write_eval_outputs(out: str | Path, results: dict, samples: Sequence[dict]) -> tuple[Path, Path]:
    """Write `out/results.json` and `out/samples.jsonl` (one JSON object per sample), each to a
    temporary file renamed into place, so a crash never leaves a torn file. Returns both paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = out / "results.json", out / "samples.jsonl"
    contents = (json.dumps(results, indent=2).encode("utf-8"), b"".join(_json_line(r) for r in samples))
    for path, data in zip(paths, contents):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return paths
