"""`final_number_reward`: 1.0 when the last number in the reply equals the gold number, else 0.0.

The verifier of the `arith` task (`dipo.data.arith`), whose prompt asks for just the number. It reads
the last integer or decimal in the text (thousands separators allowed: `1,024`), so "7 + 5 = 12" and
"The answer is 12." both count as 12; a reply with no number scores 0. It is not a maths verifier:
no LaTeX, fractions or expressions (use `math_reward` for those).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from dipo.rewards.maths import completion_text

_NUMBER = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?")
_MAX_CHARS = 20_000  # a runaway reply is cut, never scanned whole


def final_number(text: str) -> Decimal | None:
    """The last number written in `text`, or None."""
    matches = _NUMBER.findall(text[-_MAX_CHARS:])
    if not matches:
        return None
    try:
        return Decimal(matches[-1].replace(",", ""))
    except InvalidOperation:
        return None


def final_number_reward(completions: Sequence[Any], answer: Sequence[str] | str, **kwargs: Any) -> list[float]:
    """TRL reward function: 1.0 where the completion's last number equals `answer` (a number as text)."""
    answers = [answer] * len(completions) if isinstance(answer, (str, int, float)) else list(answer)
    if len(answers) != len(completions):
        raise ValueError(f"answer: {len(answers)} gold answers for {len(completions)} completions")
    rewards = []
    for completion, gold in zip(completions, answers):
        got, want = final_number(completion_text(completion)), final_number(str(gold))
        rewards.append(1.0 if got is not None and want is not None and got == want else 0.0)
    return rewards
