"""Held-out evaluation during training samples with its own settings (the eval protocol's), with TRL's vLLM
engine when training uses vLLM (a fake engine stands in: vLLM cannot be installed here) and with
transformers generation otherwise (for real, on the tiny model and on the testbed model)."""

from __future__ import annotations

import pytest
from trl_helpers import make_trainer, tiny_dataset

from dipo.engines.trl import heldout
from dipo.eval import prompt_text
from dipo.eval.generation import PAPER_SAMPLING


def exact_answer(completions, answer, **kwargs):
    """A verifier: the completion is the gold answer."""
    return [float(c.strip() == a) for c, a in zip(completions, answer)]


class FakeVLLMGeneration:
    """Stands in for TRL's `VLLMGeneration`: the same sampling attributes and `generate` signature.

    It answers the first of each prompt's k copies with the gold answer (then EOS) and the others
    wrongly, and records the sampling settings each call would have put into vLLM's SamplingParams."""

    SETTINGS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "max_completion_length",
                "generation_kwargs")

    def __init__(self, tokenizer, answers: dict[tuple, str], **training_sampler):
        self.tokenizer, self.answers = tokenizer, answers
        self.temperature, self.top_p, self.top_k, self.min_p = 1.0, 1.0, 0, 0.0
        self.repetition_penalty, self.max_completion_length, self.generation_kwargs = 1.0, 12, {}
        self.max_model_length = None
        for name, value in training_sampler.items():
            setattr(self, name, value)
        self.calls: list[dict] = []
        self.syncs = 0

    def sync_weights(self):
        self.syncs += 1

    def generate(self, prompts, images, num_generations):
        self.calls.append({"prompts": prompts, "n": num_generations,
                           **{name: getattr(self, name) for name in self.SETTINGS}})
        eos = self.tokenizer.eos_token_id
        completions = []
        for i, ids in enumerate(prompts):
            text = self.answers[tuple(ids)] if i % num_generations == 0 else "nope"
            completions.append(self.tokenizer(text, add_special_tokens=False)["input_ids"] + [eos])
        return prompts, completions, None, None


def _fake_vllm_trainer(tiny_model_dir, tmp_path, rows, **overrides):
    trainer = make_trainer(tiny_model_dir, tmp_path, reward=exact_answer, heldout=rows, temperature=1.0,
                           top_p=1.0, **overrides)
    tokenizer = trainer.processing_class
    answers = {tuple(tokenizer(prompt_text(r["prompt"], tokenizer), add_special_tokens=False)["input_ids"]):
               r["answer"] for r in rows}
    trainer.use_vllm = True
    trainer.vllm_generation = FakeVLLMGeneration(tokenizer, answers, generation_kwargs={"temperature": 1.3})
    trainer._last_loaded_step = -1
    trainer.state.global_step = 4
    return trainer


def test_heldout_sampling_defaults_are_the_eval_protocol_not_the_training_sampler(tiny_model_dir, tmp_path):
    trainer = make_trainer(tiny_model_dir, tmp_path, temperature=1.0, top_p=1.0, max_completion_length=12)
    args = trainer.args
    assert (args.heldout_k, args.heldout_temperature, args.heldout_top_p, args.heldout_max_new_tokens) == (
        PAPER_SAMPLING["k"], PAPER_SAMPLING["temperature"], PAPER_SAMPLING["top_p"], PAPER_SAMPLING["max_new_tokens"])
    sampling = heldout.heldout_sampling(trainer, ["a short prompt"])
    assert (sampling.temperature, sampling.top_p) == (0.6, 0.95)
    context = trainer.model.config.max_position_embeddings
    assert context - 10 < sampling.max_new_tokens < context  # 32768 capped so prompt + completion fit


@pytest.mark.parametrize("field, value", [("heldout_temperature", -0.1), ("heldout_top_p", 0.0),
                                          ("heldout_top_p", 1.5), ("heldout_max_new_tokens", 0), ("heldout_k", 0)])
def test_bad_heldout_sampling_settings_are_refused_naming_the_field(field, value, tmp_path):
    from dipo.engines.trl import DiPOConfig

    with pytest.raises(ValueError, match=rf"DiPOConfig\.{field}="):
        DiPOConfig(output_dir=str(tmp_path), num_generations=2, use_cpu=True, report_to=[], **{field: value})


def test_with_vllm_heldout_generates_with_the_trainers_vllm_engine_and_its_own_sampling(tiny_model_dir, tmp_path,
                                                                                          capfd):
    rows = tiny_dataset(5)
    trainer = _fake_vllm_trainer(tiny_model_dir, tmp_path, rows, heldout_k=3, per_device_eval_batch_size=2,
                                 disable_tqdm=False)
    fake = trainer.vllm_generation
    metrics = heldout.heldout_metrics(trainer)
    assert metrics["eval/accuracy"] == pytest.approx(1 / 3) and metrics["eval/pass@3"] == 1.0
    assert fake.syncs == 1 and trainer._last_loaded_step == 4  # weights of the current step
    assert [len(call["prompts"]) for call in fake.calls] == [6, 6, 3]  # 2 + 2 + 1 prompts, k copies each
    longest = max(len(ids) for ids in fake.answers)
    for call in fake.calls:
        assert call["n"] == 3 and call["prompts"][0] == call["prompts"][2] != call["prompts"][3:4]
        assert (call["temperature"], call["top_p"], call["top_k"], call["min_p"]) == (0.6, 0.95, 0, 0.0)
        assert call["generation_kwargs"] == {}  # the training generation_kwargs would override the temperature
        assert call["max_completion_length"] == min(32768, trainer.model.config.max_position_embeddings - longest)
    assert (fake.temperature, fake.top_p, fake.max_completion_length, fake.generation_kwargs) == (
        1.0, 1.0, 12, {"temperature": 1.3})  # the training sampler is restored
    assert "held-out eval (vLLM)" in capfd.readouterr().err  # a progress bar
    heldout.heldout_metrics(trainer)
    assert fake.syncs == 1  # no second sync at the same step


def test_with_vllm_greedy_heldout_sends_top_p_one(tiny_model_dir, tmp_path):
    trainer = _fake_vllm_trainer(tiny_model_dir, tmp_path, tiny_dataset(2), heldout_k=2, heldout_temperature=0.0,
                                 heldout_max_new_tokens=7)
    heldout.heldout_metrics(trainer)
    call = trainer.vllm_generation.calls[0]
    assert (call["temperature"], call["top_p"], call["max_completion_length"]) == (0.0, 1.0, 7)


def test_a_process_with_fewer_heldout_problems_pads_its_vllm_calls(tiny_model_dir, tmp_path):
    """Server mode slices the gathered completions by equal shares: every process sends as many prompts."""
    rows = tiny_dataset(5)
    trainer = _fake_vllm_trainer(tiny_model_dir, tmp_path, rows, heldout_k=2)
    tokenizer = trainer.processing_class
    rows = list(rows)
    prompts = [prompt_text(r["prompt"], tokenizer) for r in rows[1::2]]  # rank 1 of 2: 2 of 5 problems
    sampling = heldout.HeldoutSampling(k=2, temperature=0.6, top_p=0.95, max_new_tokens=16)
    samples = heldout.generate_vllm(trainer, prompts, share=3, filler=prompts[0], per_call=2, sampling=sampling,
                                    progress=False)
    assert [len(call["prompts"]) for call in trainer.vllm_generation.calls] == [4, 2]  # the second call: filler only
    assert [[s.text for s in group] for group in samples] == [[rows[1]["answer"], "nope"], [rows[3]["answer"], "nope"]]
    assert not any(s.truncated for group in samples for s in group)


def test_without_vllm_heldout_generates_with_transformers_and_its_own_sampling(tiny_model_dir, tmp_path,
                                                                               monkeypatch):
    seen = []

    def spy(*args, **kwargs):
        samples = generate(*args, **kwargs)
        seen.append((kwargs, samples))
        return samples

    generate = heldout.generate_transformers
    monkeypatch.setattr(heldout, "generate_transformers", spy)
    trainer = make_trainer(tiny_model_dir, tmp_path, temperature=1.0, max_completion_length=12, heldout=tiny_dataset(3),
                           heldout_k=3, heldout_temperature=0.0, heldout_max_new_tokens=5)
    metrics = heldout.heldout_metrics(trainer)
    (kwargs, samples), = seen
    assert (kwargs["temperature"], kwargs["max_new_tokens"], kwargs["k"]) == (0.0, 5, 3)
    assert all(len({s.text for s in group}) == 1 for group in samples)  # greedy: the k copies agree
    assert all(s.length <= 5 for group in samples for s in group) and metrics["eval/mean_length"] <= 5
    assert metrics["eval/accuracy"] == metrics["eval/pass@3"]  # identical copies: mean@k = pass@k


@pytest.mark.slow
def test_greedy_heldout_on_the_testbed_model_scores_what_greedy_generation_answers(tmp_path):
    """The trainer's held-out accuracy equals the verifier's score of plain greedy generation on the warm-started
    testbed policy (well above zero on level-1 problems), whatever the training temperature."""
    from dipo.eval import generate_transformers
    from dipo.rewards import math_reward
    from dipo.testbed import build_testbed

    rows = tiny_dataset(8)
    trainer = make_trainer(build_testbed(), tmp_path, reward=math_reward, heldout=rows, temperature=1.5,
                           heldout_k=2, heldout_temperature=0.0, heldout_max_new_tokens=48)
    metrics = heldout.heldout_metrics(trainer)
    prompts = [prompt_text(r["prompt"], trainer.processing_class) for r in rows]
    greedy = generate_transformers(trainer.model, trainer.processing_class, prompts, k=1, temperature=0.0,
                                   max_new_tokens=48, progress=False)
    scores = math_reward([g[0].text for g in greedy], answer=[r["answer"] for r in rows])
    assert metrics["eval/accuracy"] == pytest.approx(sum(scores) / len(rows))
    assert metrics["eval/accuracy"] >= 0.5
