"""Offline CPU testbed: a tiny Qwen3 model, synthetic graded tasks, and an SFT warm start.

Import cost is kept low: heavy libraries (torch, transformers, TRL) load inside the functions.
"""

from dipo.testbed.model import TinyModelConfig, build_tiny_model, build_tokenizer, chat_prompt, weights_hash

__all__ = ["TinyModelConfig", "build_tiny_model", "build_tokenizer", "chat_prompt", "weights_hash"]
from dipo.testbed.build import TestbedConfig, build_testbed  # noqa: E402
from dipo.testbed.tasks import make_math_tasks, make_tool_tasks  # noqa: E402

__all__ += ["TestbedConfig", "build_testbed", "make_math_tasks", "make_tool_tasks"]
import dipo.testbed.datasets  # noqa: E402,F401  (registers testbed:math, testbed:tool, testbed:risk, testbed:arith)
