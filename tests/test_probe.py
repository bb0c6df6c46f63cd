"""`dipo probe`: the measurements (AUROC, queue-window validity, group shares), the log-PPL of sampled
completions (equal to what the sampler itself computed, left padding included), and the command end to end
on the tiny model with its outputs and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dipo import probe
from dipo.analysis.premise import auroc, group_shares, queue_validity


def test_auroc_matches_pairwise_counting_with_ties():
    rng = np.random.default_rng(0)
    logppl = np.round(rng.normal(size=60), 1)  # many ties
    correct = rng.random(60) < 0.4
    right, wrong = logppl[correct], logppl[~correct]
    pairs = (wrong[:, None] > right[None, :]).mean() + 0.5 * (wrong[:, None] == right[None, :]).mean()
    assert auroc(logppl, correct) == pytest.approx(pairs)
    assert auroc(np.array([0.1, 0.2, 0.9]), np.array([True, True, False])) == 1.0
    assert np.isnan(auroc(np.array([0.1, 0.2]), np.array([True, True])))


def test_queue_windows_and_group_shares():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(32), 8)  # 32 prompts x G=8, 4 prompts per batch -> 8 batches
    correct = rng.random(256) < 0.5
    separable = np.where(correct, rng.uniform(0.1, 0.2, 256), rng.uniform(0.3, 0.4, 256))
    batch_of = groups // 4
    for q, steps in ((1, 8), (2, 7), (4, 5)):
        got = queue_validity(separable, correct, batch_of, q)
        assert (got["steps"], got["valid_share"]) == (steps, 1.0)
        assert 0.2 <= got["threshold_median"] <= 0.3
    noise = queue_validity(rng.uniform(0, 1, 256), correct, batch_of, 4)
    assert noise["valid_share"] < 1.0
    shares = group_shares(np.repeat([True, False, True], 4) | np.tile([False, False, False, True], 3),
                          np.repeat([0, 1, 2], 4))
    assert shares == {"frac_easy": pytest.approx(2 / 3), "frac_normal": pytest.approx(1 / 3), "frac_hard": 0.0,
                      "n_groups": 3}


def test_sampled_logppl_is_the_samplers_own_at_the_temperature(tiny_model_dir):
    """One forward pass over the sampled ids at T gives the log-probs generate() sampled from (raw logits / T),
    with left-padded prompts of different lengths."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from dipo.core import sequence_logppl

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    prompts = ["1+1=", "What is 12 plus 30, then times 2?"]
    samples = probe.sample_transformers(model, tokenizer, prompts, group_size=3, temperature=0.7, top_p=1.0,
                                        max_new_tokens=12, batch_size=6, seed=3, progress=False)
    torch.manual_seed(3)
    tokenizer.padding_side = "left"  # as the sampler pads (it restores the tokenizer's own side afterwards)
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    out = model.generate(**enc, do_sample=True, temperature=0.7, top_p=1.0, top_k=0, max_new_tokens=12,
                         num_return_sequences=3, pad_token_id=tokenizer.pad_token_id, output_logits=True, return_dict_in_generate=True)
    logits = torch.stack(out.logits, dim=1).float() / 0.7
    new = out.sequences[:, enc["input_ids"].shape[1]:]
    token_lp = torch.log_softmax(logits, -1).gather(-1, new[..., None]).squeeze(-1)
    lengths = torch.tensor([s.length for s in samples])
    mask = torch.arange(new.shape[1])[None, :] < lengths[:, None]
    expected = sequence_logppl(token_lp, mask)
    assert [s.prompt_index for s in samples] == [0, 0, 0, 1, 1, 1]
    assert np.allclose([s.logppl for s in samples], expected.numpy(), atol=1e-4)


def test_probe_command_writes_summary_plot_and_samples(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "p"
    code = probe.main(["--model", str(tiny_model_dir), "--dataset", "testbed:math", "--prompts", "6",
                       "--group-size", "3", "--batch_prompts", "2", "--max_new_tokens", "8", "--out", str(out),
                       "--no_progress"])
    assert code == 0
    summary = json.loads((out / "probe.json").read_text())
    assert summary["samples"] == 18 and summary["n_groups"] == 6 and summary["reward"] == "math"
    assert [q["steps"] for q in summary["queues"]] == [3, 2, 0]
    assert summary["frac_easy"] + summary["frac_normal"] + summary["frac_hard"] == pytest.approx(1.0)
    assert {"threshold", "split_valid", "brr_hard_fired", "brr_easy_fired"} <= set(summary["regime"])
    assert len((out / "samples.jsonl").read_text().splitlines()) == 18
    assert (out / "probe.png").stat().st_size > 0 and (out / "probe.svg").stat().st_size > 0
    assert "AUROC" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["--group_size", "1"], "--group_size=1: must be >= 2"),
    (["--reward", "bleu"], "--reward 'bleu'"),
    (["--temperature", "0"], "--temperature must be > 0"),
])
def test_bad_arguments_fail_in_one_line(argv, message, tmp_path, capsys):
    code = probe.main(["--model", str(tmp_path), "--dataset", "testbed:math", "--out", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]
