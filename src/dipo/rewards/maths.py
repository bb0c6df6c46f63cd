"""Maths reward: the last `\\boxed{...}` answer of a completion, judged by math-verify.

`math_reward(completions, answer, **kwargs)` has TRL's reward-function signature: TRL passes the
completions (plain strings, or conversational lists of messages) plus every other dataset column
as keyword arguments, so a dataset with an `answer` column works as it is.

Bounds (see docs/rewards.md): only the last `MAX_COMPLETION_CHARS` characters of a completion
are read (a final answer that starts earlier scores 0); extraction is linear in that length; the
answer is then graded by `dipo.rewards.grader` under its hard per-item deadline.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from dipo.rewards.grader import MathGrader, default_grader

_BOXED = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_TOKEN = re.compile(r"[^\s$]+")
MAX_COMPLETION_CHARS = 100_000  # ~25k tokens of text; the final answer is at the end


def extract_boxed(text: str | None) -> str | None:
    """Content of the last `\\boxed{...}` / `\\fbox{...}` in `text`, or None.

    Braces nest (`\\boxed{\\frac{1}{2}}` gives `\\frac{1}{2}`); escaped braces `\\{`, `\\}` are
    content, not structure. `\\boxed 5` (no braces) gives the token after the space, up to the
    next space or `$`. The last occurrence decides: if it is unclosed (a truncated completion)
    the result is None. Empty content is None. Only the last `MAX_COMPLETION_CHARS` characters
    are read, in linear time.
    """
    if not text or not isinstance(text, str):
        return None
    text = text[-MAX_COMPLETION_CHARS:]
    matches = list(_BOXED.finditer(text))
    if not matches:
        return None
    pos = matches[-1].end()
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    if pos >= len(text):
        return None
    if text[pos] != "{":
        if pos == matches[-1].end():  # `\boxedx`: not a boxed answer
            return None
        token = _TOKEN.match(text, pos)
        return token.group(0).rstrip(".") if token else None
    depth, i = 0, pos
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2  # skip the escaped character (\{, \}, \\)
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                content = text[pos + 1 : i].strip()
                return content or None
        i += 1
    return None


def completion_text(completion: Any) -> str:
    """The generated text of one completion: a string, or a list of chat messages (TRL's
    conversational format; the assistant messages' contents are joined), or a message dict.
    Content given as a list of parts keeps the text parts. Anything else gives ""."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        content = completion.get("content", "")
        if isinstance(content, list):
            return "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return content if isinstance(content, str) else ""
    if isinstance(completion, (list, tuple)):
        messages = [m for m in completion if isinstance(m, dict)]
        assistant = [m for m in messages if m.get("role", "assistant") == "assistant"] or messages
        return "\n".join(completion_text(m) for m in assistant)
    return ""


def _broadcast(values: Any, n: int, name: str) -> list:
    if isinstance(values, (str, int, float)) or values is None:
        return [values] * n
    values = list(values)
    if len(values) != n:
        raise ValueError(f"{name}: got {len(values)} values for {n} completions")
    return values


def math_correct(completions: Sequence[Any], answers: Sequence[str] | str,
                 grader: MathGrader | None = None) -> list[bool]:
    """Whether each completion's last boxed answer equals its gold answer (math-verify)."""
    answers = _broadcast(answers, len(completions), "answer")
    preds = [extract_boxed(completion_text(c)) for c in completions]
    gold = [None if a is None else str(a) for a in answers]
    return (grader or default_grader()).grade(list(zip(preds, gold)))


def math_reward(completions: Sequence[Any], answer: Sequence[str] | str, **kwargs: Any) -> list[float]:
    """TRL reward function: 1.0 when the last `\\boxed{}` answer is judged equal to `answer`
    by math-verify, else 0.0 (no answer, unparsable, wrong, or grading past the deadline).

    `completions`: N strings or N conversational message lists; `answer`: N gold answers (the
    dataset's `answer` column, as TRL passes it) or one for all. Other keyword arguments
    (`prompts`, `completion_ids`, other columns) are ignored.
    """
    return [1.0 if ok else 0.0 for ok in math_correct(completions, answer)]
