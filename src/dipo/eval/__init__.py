"""Evaluation: mean@k, maj@k (math-verify equivalence), unbiased pass@k; BFCL AST accuracy.

`evaluate_math(model, tokenizer, rows, k=...)` and `evaluate_bfcl(...)` work on a model already in
memory (the trainer's periodic held-out evaluation); `dipo eval` (`dipo.eval.cli`) loads a model
and benchmark files and writes JSON plus a table.
"""

from dipo.eval.generation import Completion, VLLMGenerator, generate_transformers, vllm_available
from dipo.eval.harness import evaluate_bfcl, evaluate_math, prompt_text, score_math
from dipo.eval.metrics import cluster_answers, maj_at_k, majority_index, mean_at_k, mean_pass_at_k, pass_at_k

__all__ = [
    "Completion",
    "VLLMGenerator",
    "cluster_answers",
    "evaluate_bfcl",
    "evaluate_math",
    "generate_transformers",
    "maj_at_k",
    "majority_index",
    "mean_at_k",
    "mean_pass_at_k",
    "pass_at_k",
    "prompt_text",
    "score_math",
    "vllm_available",
]
