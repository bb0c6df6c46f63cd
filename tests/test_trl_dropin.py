"""`DiPOTrainer` as a drop-in for `GRPOTrainer` (issue #23): the same signature, and TRL's own usage
patterns run with the class swapped, on the tiny offline model."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from trl_helpers import make_trainer, read_metrics, read_rollouts, text_hash_reward, tiny_dataset


def test_signature_is_grpo_trainers_plus_keyword_only_heldout():
    from trl import GRPOTrainer

    from dipo.engines.trl import DiPOTrainer

    grpo = inspect.signature(GRPOTrainer.__init__).parameters
    dipo = inspect.signature(DiPOTrainer.__init__).parameters
    positional = [p for p in dipo.values() if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    assert [(p.name, p.kind, p.default) for p in positional] == [(p.name, p.kind, p.default) for p in grpo.values()]
    extra = [p.name for p in dipo.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert extra == ["heldout_dataset"]


def test_no_reward_funcs_gives_trls_own_error(tiny_model_dir, tmp_path):
    from dipo.engines.trl import DiPOConfig, DiPOTrainer

    args = DiPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, num_generations=4,
                      per_device_train_batch_size=8, max_completion_length=8, report_to=[])
    with pytest.raises(ValueError, match="No reward source provided"):
        DiPOTrainer(model=str(tiny_model_dir), args=args, train_dataset=tiny_dataset())


def test_beam_search_is_refused_at_config_time_in_one_line(tmp_path):
    from dipo.engines.trl import DiPOConfig

    with pytest.raises(ValueError, match=r"generation_kwargs\['num_beams'\]=2: beam search") as err:
        DiPOConfig(output_dir=str(tmp_path), use_cpu=True, num_generations=4, per_device_train_batch_size=8,
                   generation_kwargs={"num_beams": 2, "do_sample": True})
    assert "\n" not in str(err.value)
    DiPOConfig(output_dir=str(tmp_path), use_cpu=True, num_generations=4, per_device_train_batch_size=8,
               generation_kwargs={"num_beams": 1, "repetition_penalty": 1.1})


def test_beam_search_from_the_cli_exits_2(capsys):
    from dipo.cli import main as dipo

    code = dipo(["train", "--config", "configs/trl/testbed_math_dipo.yaml", "--dry_run",
                 "--generation_kwargs", '{"num_beams": 2}'])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "num_beams" in err[0]


def test_streaming_dataset_trains_with_dynamic_sampling_and_refills_from_the_stream(tiny_model_dir, tmp_path):
    """A `datasets` streaming dataset: refill rounds draw fresh prompts from the stream (no refusal)."""
    stream = tiny_dataset(32).to_iterable_dataset()
    trainer = make_trainer(tiny_model_dir, tmp_path, dataset=stream, method="dipo", max_steps=2,
                           max_refill_rounds=2, dynamic_sampling=True, save_strategy="no")
    seen = []
    original = trainer._next_refill_batch

    def spy():
        batch = original()
        seen.append([row["id"] for row in batch])
        return batch

    trainer._next_refill_batch = spy
    trainer.train()
    metrics = [m for m in read_metrics(tmp_path) if "loss" in m]
    assert [m["step"] for m in metrics] == [1, 2]
    assert any(m["dynamic_sampling/rounds"] > 1 for m in metrics), "no refill round ran: the test shows nothing"
    assert seen and all(len(ids) == 8 for ids in seen)  # 2 prompts x G=4 per refill batch
    known = set(tiny_dataset(32)["id"])
    assert all(i in known for ids in seen for i in ids)
    assert all(len(set(ids[k:k + 4])) == 1 for ids in seen for k in range(0, 8, 4))  # whole groups


def test_normalize_then_sum_matches_trls_advantages_and_keeps_the_verifiers_kinds(tiny_model_dir, tmp_path):
    """`multi_objective_aggregation="normalize_then_sum"`: A(R) is TRL's per-function normalisation (same
    numbers as GRPOTrainer computes), while group kinds still come from the verifier's raw reward."""
    from trl import GRPOConfig, GRPOTrainer

    from dipo.engines.trl.trainer import normalize_then_sum_advantages

    def length_reward(completions, **kwargs):
        return [len(c) / 10.0 for c in completions]

    def always_right(completions, **kwargs):
        return [1.0] * len(completions)

    rewards = [always_right, length_reward]
    # TRL's own advantages for one batch
    args = GRPOConfig(output_dir=str(tmp_path / "trl"), use_cpu=True, bf16=False, seed=0, num_generations=4,
                      per_device_train_batch_size=8, max_completion_length=8, max_steps=1, report_to=[],
                      multi_objective_aggregation="normalize_then_sum", reward_weights=[1.0, 0.5],
                      save_strategy="no", disable_tqdm=True)
    grpo = GRPOTrainer(model=str(tiny_model_dir), reward_funcs=rewards, args=args, train_dataset=tiny_dataset())
    captured = {}
    scores = grpo._calculate_rewards

    def keep(*a, **k):
        captured["per_func"] = scores(*a, **k)
        return captured["per_func"]

    grpo._calculate_rewards = keep
    batch = grpo._generate_and_score_completions(next(iter(grpo.get_train_dataloader())))
    ours = normalize_then_sum_advantages(captured["per_func"].cpu(), torch.tensor([1.0, 0.5]), 4)
    torch.testing.assert_close(ours, batch["advantages"].cpu(), rtol=1e-5, atol=1e-5)

    # DiPO with the same aggregation: every group is verifier-easy (always_right decides), whatever length says
    trainer = make_trainer(tiny_model_dir, tmp_path / "dipo", reward=rewards, method="dipo", max_steps=1,
                           multi_objective_aggregation="normalize_then_sum", reward_weights=[1.0, 0.5],
                           dynamic_sampling=False, overlong_shaping=False, use_psd=False)
    trainer.train()
    rec = read_rollouts(tmp_path / "dipo", 1)
    assert (rec["group_kind"] == "easy").all()
    # A(R) is zero in verifier-flat groups (Eq. 10), so what remains is alpha * A(R_r) alone
    extra = rec["advantage"].to_numpy()
    chosen = rec["chosen"].to_numpy()
    assert (extra[chosen] < 0).all() and (extra[~chosen] > 0).all()



# -- TRL's documented GRPOTrainer usage, with the class swapped (one optimizer step each) ------------


def _conversational(n: int = 16):
    from datasets import Dataset

    rows = tiny_dataset(n)
    return Dataset.from_list([{"id": r["id"], "prompt": [{"role": "user", "content": r["prompt"]}],
                               "answer": r["answer"]} for r in rows])


def _format_reward(completions, **kwargs):
    texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
    return [0.5 if "boxed" in t else 0.0 for t in texts]


def _hash_reward(completions, **kwargs):
    texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
    return text_hash_reward(texts)


def _fixed_rollout(prompts, trainer):
    """A custom `rollout_func` (TRL's contract: prompt_ids, completion_ids, logprobs): sample with
    transformers and return the sampled tokens' log-probs at the sampling temperature."""
    tokenizer = trainer.processing_class
    model = trainer.accelerator.unwrap_model(trainer.model)
    prompt_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    completion_ids, logprobs = [], []
    for ids in prompt_ids:
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), do_sample=True, max_new_tokens=6, top_k=0,
                                 temperature=trainer.temperature, output_scores=True, return_dict_in_generate=True,
                                 pad_token_id=tokenizer.pad_token_id)
        new = out.sequences[0, len(ids):].tolist()
        scores = torch.stack(out.scores)[:, 0].float().log_softmax(-1)
        completion_ids.append(new)
        logprobs.append([scores[t, tok].item() for t, tok in enumerate(new)])
    return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": logprobs}


def _lora():
    from peft import LoraConfig

    return LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")


DROPIN_CASES = {
    "conversational": dict(dataset=_conversational, reward=[_hash_reward]),
    "several_rewards_weighted": dict(reward=[_hash_reward, _format_reward], args=dict(reward_weights=[1.0, 0.5])),
    "num_iterations_2": dict(args=dict(num_iterations=2)),
    "steps_per_generation_2": dict(args=dict(steps_per_generation=2, per_device_train_batch_size=4)),
    "peft_lora": dict(trainer=dict(peft_config=_lora)),
    "beta_kl": dict(args=dict(beta=0.04)),
    "loss_grpo": dict(args=dict(loss_type="grpo")),
    "loss_bnpo": dict(args=dict(loss_type="bnpo")),
    "loss_dr_grpo": dict(args=dict(loss_type="dr_grpo")),
    "loss_cispo": dict(args=dict(loss_type="cispo")),
    # the tiny model never stops within 8 tokens: every completion is truncated, so all are masked and nothing moves
    "mask_truncated_completions": dict(args=dict(mask_truncated_completions=True), frozen=True),
    "top_entropy_quantile": dict(args=dict(top_entropy_quantile=0.5)),
    "rollout_func": dict(trainer=dict(rollout_func=lambda: _fixed_rollout)),
}


@pytest.mark.parametrize("case", list(DROPIN_CASES))
def test_grpo_usage_runs_with_the_class_swapped(tiny_model_dir, tmp_path, case):
    from dipo.engines.trl import DiPOConfig, DiPOTrainer

    spec = DROPIN_CASES[case]
    settings = dict(output_dir=str(tmp_path), use_cpu=True, bf16=False, seed=0, per_device_train_batch_size=8,
                    num_generations=4, max_completion_length=8, max_steps=1, learning_rate=1e-3, report_to=[],
                    save_strategy="no", disable_tqdm=True, logging_steps=1, method="dipo", use_psd=False)
    settings.update(spec.get("args", {}))
    extra = {k: v() for k, v in spec.get("trainer", {}).items()}
    dataset = spec.get("dataset", tiny_dataset)()
    trainer = DiPOTrainer(model=str(tiny_model_dir), reward_funcs=spec.get("reward", text_hash_reward),
                          args=DiPOConfig(**settings), train_dataset=dataset, **extra)
    before = {k: v.detach().clone() for k, v in trainer.model.named_parameters() if v.requires_grad}
    trainer.train()
    after = {k: v for k, v in trainer.model.named_parameters() if v.requires_grad}
    moved = any(not torch.equal(before[k], after[k]) for k in before)
    logged = [m for m in read_metrics(tmp_path) if "loss" in m]
    if spec.get("frozen"):
        assert not moved and logged[0]["completions/clipped_ratio"] == 1.0
    else:
        assert moved, "no trainable weight moved"
    assert logged and "dipo/frac_hard" in logged[0] and np.isfinite(logged[0]["loss"])
    rec = read_rollouts(tmp_path, 1)
    assert np.isfinite(rec["logppl"]).any()


def test_tools_behave_as_in_grpo_trainer(tiny_model_dir, tmp_path):
    """`tools=[...]` goes through TRL's own tool loop: on a chat template without tool calling, both classes
    refuse it with TRL's same error (a template with tools runs TRL's loop; DiPO masks tool tokens out of PPL)."""
    from trl import GRPOConfig, GRPOTrainer

    from dipo.engines.trl import DiPOConfig, DiPOTrainer

    def get_weather(city: str) -> str:
        """Get the weather.

        Args:
            city: the city
        """
        return "sunny"

    common = dict(use_cpu=True, bf16=False, num_generations=4, per_device_train_batch_size=8,
                  max_completion_length=8, max_steps=1, report_to=[], save_strategy="no")
    errors = []
    for trainer_cls, config_cls in ((GRPOTrainer, GRPOConfig), (DiPOTrainer, DiPOConfig)):
        with pytest.raises(ValueError) as err:
            trainer_cls(model=str(tiny_model_dir), reward_funcs=_hash_reward, tools=[get_weather],
                        args=config_cls(output_dir=str(tmp_path / trainer_cls.__name__), **common),
                        train_dataset=_conversational())
        errors.append(str(err.value))
    assert errors[0] == errors[1] and "does not support tool calling" in errors[0]
