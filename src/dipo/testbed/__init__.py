"""Offline CPU testbed: a tiny Qwen3 model, synthetic graded tasks, and an SFT warm start.

Import cost is kept low: heavy libraries (torch, transformers, TRL) load inside the functions.
"""

from dipo.testbed.model import TinyModelConfig, build_tiny_model, build_tokenizer, chat_prompt, weights_hash

__all__ = ["TinyModelConfig", "build_tiny_model", "build_tokenizer", "chat_prompt", "weights_hash"]
