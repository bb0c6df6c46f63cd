"""Classification rows (text + label columns) for the label reward and `dipo eval`'s classification
metrics: the paper's risk-prediction task shape on the user's own data.

A row of the input file needs a text column (the case description) and a label column (the gold
label: a string, or an integer such as 0/1). The result has the columns `dipo.rewards.label_reward`
and `dipo.eval.classification` read: `id`, `prompt` (chat messages: the text plus an instruction
listing the labels), `answer` (the gold label), `labels` (the label set, one list per row),
`label_synonyms` (JSON text of `{surface: label}`, "" for none) and `positive_label` ("" for none).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dipo.data.io import DataError, load_records, require
from dipo.data.loaders import _maybe_dataset
from dipo.data.prompts import render_prompt

LABEL_INSTRUCTION = "Reason step by step, then give the final label within \\boxed{{}}: one of {labels}."


def label_instruction(labels: Sequence[str]) -> str:
    """The instruction appended to each text: it names every label, since a model cannot guess them."""
    return LABEL_INSTRUCTION.format(labels=", ".join(labels))


def label_messages(text: str, labels: Sequence[str], system_prompt: str | None = None) -> list[dict]:
    """One user turn `"{text}\\n{instruction}"` (after an optional system turn)."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return messages + [{"role": "user", "content": f"{text.strip()}\n{label_instruction(labels)}"}]


def _as_label(value: Any, source: str, index: int, field: str) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # Parquet/pandas often store 0/1 labels as floats
    if not isinstance(value, (str, int)) or not str(value).strip():
        raise DataError(f"{source}: row {index}: field {field!r} must be a non-empty label (text or integer), "
                        f"got {value!r}")
    return str(value).strip()


def _label_lookup(labels: Sequence[str], synonyms: Mapping[str, str], source: str) -> dict[str, str]:
    """Lower-cased label or synonym -> label (the reward compares case-insensitively too)."""
    lookup: dict[str, str] = {}
    for label in labels:
        if not label.strip() or label.lower() in lookup:
            raise DataError(f"{source}: labels {labels} must be non-empty and distinct ignoring case")
        lookup[label.lower()] = label
    for surface, label in synonyms.items():
        if label not in labels or lookup.get(str(surface).lower(), label) != label:
            raise DataError(f"{source}: synonym {surface!r} -> {label!r}: not a label of {labels}, or it names another")
        lookup[str(surface).lower()] = label
    return lookup


def load_label_dataset(path_or_id: str | Path, text_field: str = "text", label_field: str = "label",
                       labels: Sequence[str] | None = None, positive_label: str | None = None,
                       synonyms: Mapping[str, str] | None = None, id_field: str | None = "id",
                       split: str = "train", limit: int | None = None, system_prompt: str | None = None,
                       tokenizer: Any = None, as_dataset: bool = True):
    """Classification rows from a `.jsonl`/`.json`/`.parquet` file or a Hugging Face dataset id.

    labels: the label set (default: the distinct gold labels of the file, sorted; at least two);
    positive_label: the class precision/recall/F1 are reported for (must be in `labels`);
    synonyms: `{surface form: label}` the label reward also accepts (e.g. `{"1": "high"}`).
    Every error names the file, row and field: a missing or empty text, a missing label, a gold
    label outside `labels`. `prompt` is chat messages, or text rendered with `tokenizer`.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    source = str(path_or_id)
    records = load_records(source, split=split)[:limit]
    texts, golds = [], []
    for i, record in enumerate(records):
        text = require(record, text_field, source, i)
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{source}: row {i}: field {text_field!r} must be non-empty text")
        texts.append(text)
        golds.append(_as_label(require(record, label_field, source, i), source, i, label_field))
    if not records:
        raise DataError(f"{source}: no rows")
    labels = sorted(set(golds)) if labels is None else [str(label) for label in labels]
    if len(labels) < 2:
        raise DataError(f"{source}: a classification set needs at least two labels, got {labels} "
                        f"(pass the label set if the file holds only one)")
    lookup = _label_lookup(labels, synonyms or {}, source)
    if positive_label is not None and positive_label not in labels:
        raise DataError(f"{source}: positive label {positive_label!r} is not one of {labels}")
    rows = []
    for i, (record, text, gold) in enumerate(zip(records, texts, golds)):
        canonical = lookup.get(gold.lower())
        if canonical is None:
            raise DataError(f"{source}: row {i}: field {label_field!r}: label {gold!r} is not one of {labels}")
        row_id = record.get(id_field) if id_field else None
        messages = label_messages(text, labels, system_prompt)
        rows.append({"id": str(row_id) if row_id is not None else f"{Path(source).stem}-{i}", "text": text,
                     "prompt": render_prompt(messages, tokenizer) if tokenizer else messages,
                     "answer": canonical, "labels": list(labels),
                     "label_synonyms": json.dumps(dict(synonyms)) if synonyms else "",
                     "positive_label": positive_label or ""})
    return _maybe_dataset(rows, as_dataset)
