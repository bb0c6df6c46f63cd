"""Tool-call training rewards (TRL reward-function signature).

Two kinds of rows are supported, told apart by their columns:
- BFCL rows (`functions`, `possible_answer`, `category` columns): 1.0 when `bfcl_ast_check`
  accepts the completion, else 0.0;
- ToolRL and testbed rows (`answer`: the gold `<tool_call>` text as in
  `../shared/data/tool/rlla_*.jsonl`, bare JSON call(s), or calls already parsed): 1.0 when the completion calls the same functions with the
  same arguments (any order), else 0.0. A gold without `<tool_call>` means "answer without
  calling a tool": the completion scores 1.0 only with a real answer, as ToolRL's format rules
  ask: no `<tool_call>`/`</tool_call>` tag at all, and a `<response>...</response>` block (when
  the gold has one; otherwise the text outside `<think>`) holding at least one letter or digit.
  The empty string, NUL bytes or bare tags score 0.

`partial_credit=True` gives the ToolRL-style shaped reward (Qian et al., 2025) rescaled to 0..1:
`format_weight * format + (1 - format_weight) * (name + keys + values) / 3`, where `format` is 1
when the completion has a `<think>` block and a `<tool_call>` block exactly when the gold has
calls, `name` is the multiset Jaccard overlap of called function names, and `keys` / `values`
are, over gold calls paired greedily with predicted calls of the same name, the Jaccard overlap of
argument names and the fraction of gold arguments given the gold value, divided by
max(#gold, #predicted) calls. When the gold makes no call, `format` and the correctness term
also need the real answer described above. Bad or unparsable output scores 0 on the parts it
fails.

Every reward returns a number for any completion and never raises on model output: each
completion is scored in a grading worker under the hard per-item deadline of
`dipo.rewards.grader` (past it, or if scoring raises, it scores 0, counted in the grader's
`timeouts` / `errors`); output longer than `MAX_OUTPUT_CHARS` does not decode; parsing is
linear in the output's length.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from dipo.rewards.bfcl import (
    MAX_OUTPUT_CHARS,
    BFCLResult,
    ToolCallParseError,
    bfcl_ast_check,
    check_entry,
    parse_function_calls,
)
from dipo.rewards.grader import default_grader
from dipo.rewards.maths import completion_text


def _block(text: str, tag: str) -> str | None:
    """Content of the first `<tag>...</tag>` block, or None (like a lazy DOTALL regex search,
    in linear time)."""
    start = text.find(f"<{tag}>")
    if start < 0:
        return None
    end = text.find(f"</{tag}>", start + len(tag) + 2)
    return None if end < 0 else text[start + len(tag) + 2 : end]


def _has_words(text: str) -> bool:
    return any(char.isalnum() for char in text)


def answers_without_call(text: str, gold_answer: Any) -> bool:
    """Whether `text` is a real answer that calls no tool (see the module doc): no tool-call
    tag, and a `<response>` block (if the gold has one; else the text outside `<think>`) with at
    least one letter or digit."""
    if "<tool_call>" in text or "</tool_call>" in text or len(text) > MAX_OUTPUT_CHARS:
        return False
    if isinstance(gold_answer, str) and "<response>" in gold_answer:
        response = _block(text, "response")
        return response is not None and _has_words(response)
    think = _block(text, "think")
    outside = text if think is None else text.replace(f"<think>{think}</think>", "", 1)
    return _has_words(outside)


def _gold_calls(answer: Any) -> list[tuple[str, dict]]:
    """Gold calls from `<tool_call>` text, bare JSON call(s), or parsed calls; other text
    (e.g. a `<response>` only) means no call."""
    if isinstance(answer, str) and "<tool_call>" not in answer:
        try:
            answer = json.loads(answer)
        except json.JSONDecodeError:
            return []
        if not isinstance(answer, (dict, list)):
            return []
    return [next(iter(c.items())) for c in parse_function_calls(answer)]


def _predicted_calls(text: str) -> list[tuple[str, dict]] | None:
    """The completion's `<tool_call>` calls; [] without the tag, None when they do not decode."""
    if "<tool_call>" not in text:
        return []
    try:
        return [next(iter(c.items())) for c in parse_function_calls(text)]
    except ToolCallParseError:
        return None


def _same_value(a: Any, b: Any) -> bool:
    """Values match when equal, or when their text forms match ("1" and 1: ToolRL's gold
    stores every value as a string)."""
    return a == b or (not isinstance(a, (dict, list)) and str(a).strip() == str(b).strip())


def _same_call(pred: tuple[str, dict], gold: tuple[str, dict]) -> bool:
    return pred[0] == gold[0] and pred[1].keys() == gold[1].keys() and all(
        _same_value(pred[1][k], v) for k, v in gold[1].items())


def exact_tool_match(pred: list[tuple[str, dict]] | None, gold: list[tuple[str, dict]]) -> bool:
    """Same calls as the gold, in any order (a multiset match)."""
    if pred is None or len(pred) != len(gold):
        return False
    unused = list(pred)
    for call in gold:
        match = next((p for p in unused if _same_call(p, call)), None)
        if match is None:
            return False
        unused.remove(match)
    return True


def _jaccard(a: Counter, b: Counter) -> float:
    union = sum((a | b).values())
    return 1.0 if union == 0 else sum((a & b).values()) / union


def toolrl_score(text: str, gold: list[tuple[str, dict]], format_weight: float = 0.2,
                 gold_answer: Any = None) -> float:
    """ToolRL-style partial credit in 0..1 (see the module doc). `gold_answer`: the raw gold,
    read when `gold` has no call (does it ask for a `<response>` block?)."""
    pred = _predicted_calls(text)
    has_block = "<tool_call>" in text and "</tool_call>" in text
    answered = bool(gold) or answers_without_call(text, gold_answer)
    format_ok = _block(text, "think") is not None and has_block == bool(gold) and pred is not None and answered
    pred = pred or []
    if not gold:
        correctness = float(answered)
    else:
        names = _jaccard(Counter(n for n, _ in pred), Counter(n for n, _ in gold))
        keys = values = 0.0
        unused = list(pred)
        for name, args in gold:
            match = next((p for p in unused if p[0] == name), None)
            if match is None:
                continue
            unused.remove(match)
            keys += _jaccard(Counter(match[1].keys()), Counter(args.keys()))
            values += sum(_same_value(match[1].get(k), v) for k, v in args.items() if k in match[1]) / max(1, len(args))
        pairs = max(len(gold), len(pred))
        correctness = (names + keys / pairs + values / pairs) / 3
    return format_weight * float(format_ok) + (1 - format_weight) * correctness


def score_tool_call(text: str, gold_answer: Any, partial_credit: bool = False, format_weight: float = 0.2) -> float:
    """One completion's tool-call reward against one ToolRL/testbed gold (see the module doc).
    Pure and picklable: the reward functions run it in the grading workers."""
    gold = _gold_calls(gold_answer)
    if partial_credit:
        return toolrl_score(text, gold, format_weight, gold_answer)
    if not gold:
        return float(answers_without_call(text, gold_answer))
    return float(exact_tool_match(_predicted_calls(text), gold))


def _on_pool(task: str, items: list[tuple], text_index: int, default: Any, local: Callable[..., Any]) -> list:
    """`task` on the grading pool (hard per-item deadline), except items whose text is over
    `MAX_OUTPUT_CHARS`: those fail in linear time by construction and are scored here."""
    long = {i for i, item in enumerate(items) if len(item[text_index]) > MAX_OUTPUT_CHARS}
    pooled = [i for i in range(len(items)) if i not in long]
    results = [local(*items[i]) if i in long else None for i in range(len(items))]
    for i, result in zip(pooled, default_grader().run(task, [items[i] for i in pooled], default)):
        results[i] = result
    return results


def make_tool_call_reward(partial_credit: bool = False, format_weight: float = 0.2) -> Callable[..., list[float]]:
    """A TRL reward function for tool calls (see the module doc for the rows it reads).

    Each completion is scored in the grading pool of `dipo.rewards.grader` under its hard
    per-item deadline (DIPO_GRADER_TIMEOUT): past it, or if scoring raises, it scores 0."""
    if not 0.0 <= format_weight <= 1.0:
        raise ValueError(f"format_weight must be in [0, 1], got {format_weight}")

    def reward(completions: Sequence[Any], answer: Sequence[Any] | None = None, functions=None,
               possible_answer=None, category=None, **kwargs: Any) -> list[float]:
        n = len(completions)
        texts = [completion_text(c) for c in completions]
        if possible_answer is not None and functions is not None:
            categories = category if isinstance(category, (list, tuple)) else [category or "simple_python"] * n
            rows = list(zip(functions, texts, possible_answer, categories))
            for _, _, gold, name in rows:
                check_entry(gold, name)  # a bad entry is the dataset's fault: say so, do not score it 0
            return [float(r.valid) for r in _on_pool("bfcl", rows, 1, BFCLResult(False), bfcl_ast_check)]
        if answer is None:
            raise ValueError("tool_call_reward needs an `answer` column (or BFCL `functions` + `possible_answer`)")
        answers = [answer] * n if isinstance(answer, str) else list(answer)
        if len(answers) != n:
            raise ValueError(f"answer: got {len(answers)} values for {n} completions")
        items = [(text, gold, partial_credit, format_weight) for text, gold in zip(texts, answers)]
        return [float(r) for r in _on_pool("tool", items, 0, 0.0, score_tool_call)]

    reward.__name__ = "tool_call_partial_reward" if partial_credit else "tool_call_reward"
    return reward


tool_call_reward = make_tool_call_reward()
tool_call_reward.__doc__ = "Binary tool-call reward (BFCL AST rules or exact ToolRL match); see dipo.rewards.tool."
