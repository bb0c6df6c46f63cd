"""Prompts: the paper's maths instruction, BFCL's function-calling instruction, chat rendering."""

from __future__ import annotations

import json
from typing import Any

# The instruction used by the DiPO paper (and Qwen2.5-Math / DAPO evaluations).
MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

BFCL_SYSTEM_PROMPT = (
    "You are an expert in composing functions. You are given a question and a set of possible "
    "functions. Based on the question, make one or more function calls to achieve the purpose. "
    "If none of the functions can be used, say so and do not call any. If the question lacks "
    "parameters the function requires, say so too.\n\n"
    "If you call functions, reply only with the calls, in the format "
    "[func_name1(param_name1=value1, param_name2=value2), func_name2(param=value)] and no other text.\n\n"
    "Here is the list of functions in JSON format that you can invoke:\n{functions}\n"
)


def math_messages(problem: str, instruction: str = MATH_INSTRUCTION, system_prompt: str | None = None) -> list[dict]:
    """One user turn `"{problem}\\n{instruction}"` (after an optional system turn)."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    content = f"{problem.strip()}\n{instruction}" if instruction else problem.strip()
    return messages + [{"role": "user", "content": content}]


def render_prompt(messages: list[dict], tokenizer: Any = None) -> str:
    """The prompt text a model sees: the tokenizer's chat template (with the assistant header)
    when it has one, else the turns' contents separated by blank lines."""
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(m["content"] for m in messages) + "\n\n"


def math_prompt(problem: str, tokenizer: Any = None, instruction: str = MATH_INSTRUCTION,
                system_prompt: str | None = None) -> str:
    """Prompt text for a maths problem, rendered with the tokenizer's chat template when present."""
    return render_prompt(math_messages(problem, instruction, system_prompt), tokenizer)


def bfcl_messages(question: list[dict], functions: list[dict]) -> list[dict]:
    """BFCL prompting-mode messages: a system turn listing the functions, then the question
    (any system turn of the question is merged into ours)."""
    system = BFCL_SYSTEM_PROMPT.format(functions=json.dumps(functions, ensure_ascii=False))
    extra = [m["content"] for m in question if m.get("role") == "system"]
    if extra:
        system = system + "\n" + "\n".join(extra)
    return [{"role": "system", "content": system}] + [m for m in question if m.get("role") != "system"]
