"""The tiny testbed model: a loadable HF directory, deterministic by seed, a usable tokenizer."""

from __future__ import annotations

import pytest

from dipo.testbed import TinyModelConfig, build_tiny_model, chat_prompt, weights_hash


def test_loads_with_auto_classes_and_generates(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.model_type == "qwen3"
    n_params = sum(p.numel() for p in model.parameters())
    assert 100_000 < n_params < 2_000_000
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|pad|>"
    assert tok.pad_token_id != tok.eos_token_id
    assert model.config.eos_token_id == tok.eos_token_id
    batch = tok([chat_prompt("Tom has 3 apples."), chat_prompt("What is 2+2?")], return_tensors="pt",
                padding=True)
    torch.manual_seed(0)
    out = model.generate(**batch, max_new_tokens=5, do_sample=True)
    assert out.shape[0] == 2 and out.shape[1] <= batch["input_ids"].shape[1] + 5


def test_chat_template_matches_plain_prompt(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = "Tom has 3 apples. How many?"
    rendered = tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                       add_generation_prompt=True)
    assert rendered == chat_prompt(text)


@pytest.mark.parametrize("text", [
    "3+14=17. 17-2=15. \\boxed{15}",
    '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}</tool_call>',
    "Unseen wörds & symbols ~ still encode: €5 [x] (y) 0.25",
])
def test_tokenizer_round_trips_and_splits_digits(tiny_model_dir, text):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert all(len(t.strip("Ġ")) <= 1 for t in tok.convert_ids_to_tokens(ids) if any(c.isdigit() for c in t))


def test_same_seed_same_weights_other_seed_differs(tmp_path, tiny_model_dir):
    small = TinyModelConfig(hidden_size=32, num_hidden_layers=1, intermediate_size=64)
    a = build_tiny_model(tmp_path / "a", seed=1, config=small)
    b = build_tiny_model(tmp_path / "b", seed=1, config=small)
    c = build_tiny_model(tmp_path / "c", seed=2, config=small)
    assert weights_hash(a) == weights_hash(b) != weights_hash(c)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()
    assert weights_hash(tiny_model_dir) != weights_hash(a)


def test_invalid_config_names_the_field():
    with pytest.raises(ValueError, match="num_attention_heads"):
        TinyModelConfig(hidden_size=30, num_attention_heads=4)
    with pytest.raises(ValueError, match="vocab_size"):
        TinyModelConfig(vocab_size=10)
