"""Shared pytest fixtures."""

from __future__ import annotations

import pytest


def pytest_configure(config):
    """One torch thread: on a small shared CPU, more threads make the tiny-model tests much slower."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A random tiny Qwen3 model + offline tokenizer (dipo.testbed.build_tiny_model, seed 0),
    built once per test session. Load it with AutoModelForCausalLM/AutoTokenizer.from_pretrained."""
    import torch

    torch.set_num_threads(1)
    from dipo.testbed import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_model"), seed=0)
