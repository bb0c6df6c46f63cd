"""Verifiable rewards: maths answers (boxed + math-verify) and function calls (BFCL AST rules).

Every `*_reward` function has TRL's reward-function signature
`f(completions, **dataset_columns) -> list[float]` and returns 0 for bad model output. The reward registry
(`registry`: a name or dotted path -> such a function) is what every engine resolves `reward_funcs` with.
"""

from dipo.rewards.bfcl import BFCLResult, ToolCallParseError, bfcl_ast_check, parse_function_calls
from dipo.rewards.grader import MathGrader, default_grader, quick_verdict, verify_answer
from dipo.rewards.label import extract_label, label_reward, make_label_reward
from dipo.rewards.maths import completion_text, extract_boxed, math_correct, math_reward
from dipo.rewards.registry import REWARD_FUNCTIONS, reward_function, reward_functions, reward_target
from dipo.rewards.tool import make_tool_call_reward, tool_call_reward, toolrl_score

__all__ = [
    "REWARD_FUNCTIONS", "reward_function", "reward_functions", "reward_target",
    "extract_label", "label_reward", "make_label_reward",
    "BFCLResult",
    "ToolCallParseError",
    "bfcl_ast_check",
    "make_tool_call_reward",
    "parse_function_calls",
    "tool_call_reward",
    "toolrl_score",
    "MathGrader",
    "completion_text",
    "default_grader",
    "extract_boxed",
    "math_correct",
    "math_reward",
    "quick_verdict",
    "verify_answer",
]
