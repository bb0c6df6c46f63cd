"""The vLLM environment's tests (`bash .ci/vllm-env.sh`): vLLM's CPU build through TRL, for real."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/trl_helpers.py


@pytest.fixture(scope="session")
def vllm_model_dir(tmp_path_factory):
    """A random tiny Qwen3 with head_dim 32: vLLM's CPU attention has no kernel for the testbed model's 16
    (nor the test fixture's 24): `Unsupported CPU attention configuration: head_dim=24`."""
    import torch

    torch.set_num_threads(1)
    from dipo.testbed import build_tiny_model
    from dipo.testbed.model import TinyModelConfig

    return build_tiny_model(tmp_path_factory.mktemp("vllm_model"), seed=0,
                            config=TinyModelConfig(hidden_size=64, num_attention_heads=2, num_key_value_heads=1))
