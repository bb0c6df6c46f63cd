"""Classification evaluation (the paper's risk prediction): accuracy, precision / recall / F1 of the
positive class, per-label counts, mean@k and maj@k over k samples per case.

Definitions (n cases, k samples each; a sample's label is `dipo.rewards.extract_label`'s, None
when it gives none):

- `mean@k` (= `accuracy`): the share of a case's samples whose label is the gold label, averaged
  over cases. A sample without a label is wrong.
- `maj@k`: per case, the label most samples give (ties: the one that appears first, as for
  maths' maj@k; samples without a label do not vote) is the case's vote; the share of cases
  whose vote is the gold label. A case with no labelled sample has no vote and is wrong.
- `pass@k`: the unbiased estimator over the k samples (as for maths).
- For the positive class P, counted over every sample (`precision`, `recall`, `f1`) and over the
  votes (`maj@k_precision`, ...): TP = predicted P and gold P, FP = predicted P and gold not P,
  FN = gold P and predicted anything else (no label included).
  `precision = TP / (TP + FP)`, `recall = TP / (TP + FN)`, `f1 = 2 TP / (2 TP + FP + FN)`; a
  ratio with a zero denominator is None (undefined), not 0.
- `per_label`: the same three numbers for every label (over samples), and `counts`: gold labels
  per case, predicted labels per sample ("none" for no label), and the confusion matrix
  `confusion[gold][predicted]` over samples.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dipo.eval.generation import Completion
from dipo.eval.harness import GenerateFn, _default_generate, prompt_text
from dipo.eval.metrics import mean_at_k, mean_pass_at_k
from dipo.rewards.label import LabelSet, extract_label, parse_synonyms

NO_LABEL = "none"  # how a sample without a label is counted


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def positive_class_scores(gold: Sequence[str], predicted: Sequence[str | None], positive: str) -> dict:
    """`{"precision", "recall", "f1", "tp", "fp", "fn"}` for class `positive` (module doc);
    `gold[i]`, `predicted[i]`: one prediction each (None = no label)."""
    if len(gold) != len(predicted):
        raise ValueError(f"positive_class_scores: {len(gold)} gold labels for {len(predicted)} predictions")
    tp = sum(g == positive and p == positive for g, p in zip(gold, predicted))
    fp = sum(g != positive and p == positive for g, p in zip(gold, predicted))
    fn = sum(g == positive and p != positive for g, p in zip(gold, predicted))
    return {"precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn), "f1": _ratio(2 * tp, 2 * tp + fp + fn),
            "tp": tp, "fp": fp, "fn": fn}


def vote(labels: Sequence[str | None]) -> str | None:
    """The majority label of one case's samples (ties: the one that appears first; None votes
    nothing); None when no sample has a label."""
    counts = Counter(label for label in labels if label is not None)
    return counts.most_common(1)[0][0] if counts else None  # most_common keeps first-seen order on ties


def classification_metrics(gold: Sequence[str], predicted: Sequence[Sequence[str | None]],
                           labels: Sequence[str], positive: str | None = None) -> dict:
    """The metrics of the module doc. gold: n labels; predicted: n lists of k labels (None = no
    label); labels: the label set; positive: the positive class (None: no top-level P/R/F1)."""
    if len(gold) != len(predicted) or not gold:
        raise ValueError(f"classification_metrics: {len(gold)} gold labels for {len(predicted)} sample lists")
    if positive is not None and positive not in labels:
        raise ValueError(f"positive label {positive!r} is not one of {list(labels)}")
    k = max(len(p) for p in predicted)
    correct = [[p == g for p in samples] for g, samples in zip(gold, predicted)]
    flat_gold = [g for g, samples in zip(gold, predicted) for _ in samples]
    flat_pred = [p for samples in predicted for p in samples]
    votes = [vote(samples) for samples in predicted]
    result: dict[str, Any] = {
        "n": len(gold), "k": k,
        f"mean@{k}": mean_at_k(correct),
        f"maj@{k}": float(np.mean([v == g for v, g in zip(votes, gold)])),
        f"pass@{k}": mean_pass_at_k(correct, k),
        "accuracy": mean_at_k(correct),
        "answered": float(np.mean([p is not None for p in flat_pred])),
        "positive_label": positive,
    }
    if positive is not None:
        samples = positive_class_scores(flat_gold, flat_pred, positive)
        voted = positive_class_scores(gold, votes, positive)
        result.update({name: samples[name] for name in ("precision", "recall", "f1")})
        result.update({f"maj@{k}_{name}": voted[name] for name in ("precision", "recall", "f1")})
    result["per_label"] = {
        label: {name: v for name, v in positive_class_scores(flat_gold, flat_pred, label).items()
                if name in ("precision", "recall", "f1")} for label in labels}
    shown = [NO_LABEL if p is None else p for p in flat_pred]
    confusion = {g: {p: 0 for p in [*labels, NO_LABEL]} for g in labels}
    for g, p in zip(flat_gold, shown):
        row = confusion.setdefault(g, {})
        row[p] = row.get(p, 0) + 1
    result["counts"] = {"gold": dict(Counter(gold)), "predicted": dict(Counter(shown)), "confusion": confusion}
    return result


def _row_label_set(row: dict) -> LabelSet:
    return LabelSet(list(row["labels"]), parse_synonyms(row.get("label_synonyms")))


def score_classification(rows: Sequence[dict], completions: Sequence[Sequence[Completion]], k: int,
                         positive_label: str | None = None) -> dict:
    """Metrics (`classification_metrics`) plus per-sample records for generated completions.
    rows: `dipo.data.load_label_dataset` or `testbed:risk` rows (`answer`, `labels`, optional
    `label_synonyms`, `positive_label`); all rows share one label set."""
    label_sets = [_row_label_set(row) for row in rows]
    labels = list(rows[0]["labels"])
    if any(list(row["labels"]) != labels for row in rows):
        raise ValueError("score_classification: rows with different label sets; evaluate them separately")
    positive = positive_label or rows[0].get("positive_label") or None
    gold = [label_set.lookup(str(row["answer"])) for row, label_set in zip(rows, label_sets)]
    for row, g in zip(rows, gold):
        if g is None:
            raise ValueError(f"row {row.get('id', '?')}: gold label {row['answer']!r} is not one of {labels}")
    predicted = [[extract_label(c.text, label_set) for c in samples] for samples, label_set in zip(completions, label_sets)]
    metrics = classification_metrics(gold, predicted, labels, positive)
    records = []
    for p, (row, samples) in enumerate(zip(rows, completions)):
        majority = vote(predicted[p])
        for j, sample in enumerate(samples):
            records.append({"id": row.get("id", str(p)), "sample": j, "gold": gold[p], "label": predicted[p][j],
                            "correct": predicted[p][j] == gold[p], "vote": majority, "length": sample.length,
                            "truncated": sample.truncated, "completion": sample.text})
    lengths = [s.length for group in completions for s in group]
    metrics["mean_length"] = float(np.mean(lengths))
    metrics["truncated"] = float(np.mean([s.truncated for group in completions for s in group]))
    metrics["records"] = records
    return metrics


def evaluate_classification(model: Any, tokenizer: Any, rows: Sequence[dict], k: int = 8, temperature: float = 0.6,
                            top_p: float = 0.95, max_new_tokens: int = 1024, batch_size: int = 16, seed: int = 0,
                            progress: bool = True, generate_fn: GenerateFn | None = None,
                            positive_label: str | None = None, desc: str = "classification") -> dict:
    """Sample k completions per case and score them (`score_classification`)."""
    rows = list(rows)
    if not rows:
        raise ValueError("evaluate_classification: no rows")
    prompts = [prompt_text(row, tokenizer) for row in rows]
    generate: Callable = generate_fn or _default_generate(model, tokenizer, temperature, top_p, max_new_tokens,
                                                          batch_size, seed, progress, desc)
    return score_classification(rows, generate(prompts, k), k, positive_label)
