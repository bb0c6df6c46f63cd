"""Periodic held-out evaluation during training: mean@k and pass@k, logged as `eval/accuracy` etc.

Sampling is the eval protocol's, not the training sampler's: `heldout_k`, `heldout_temperature`,
`heldout_top_p` and `heldout_max_new_tokens` (defaults: `dipo eval`'s, `dipo.eval.generation.PAPER_SAMPLING`;
the token limit is capped to the model's context). The generator is the one training uses: TRL's vLLM
engine when `use_vllm` (colocate or server; its weights synced to the current step first), else
`dipo.eval.generate_transformers` on the policy. Either way `per_device_eval_batch_size` prompts go
into one generation call and a progress bar counts them.

The completions are scored with the trainer's correctness reward functions (`correctness_reward_funcs`; a
completion is correct when their summed raw reward reaches `r_max`; format or shaping rewards never
count), so maths and tool calls are judged exactly as the training step judges correctness. Each process
evaluates its share of the problems (parameters gathered first under ZeRO-3) and the results are
gathered, so every rank logs the same numbers.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

from accelerate.utils import gather_object
from tqdm.auto import tqdm
from trl.models.utils import unwrap_model_for_generation

from dipo.engines.kit import is_correct
from dipo.eval import Completion, generate_transformers, mean_at_k, mean_pass_at_k, prompt_text
from dipo.eval.generation import completion_from_ids


@dataclass(frozen=True)
class HeldoutSampling:
    """The held-out sampler's settings (from the trainer config's `heldout_*` fields)."""

    k: int
    temperature: float
    top_p: float
    max_new_tokens: int


def _context_limit(trainer) -> int | None:
    """Tokens the generator can hold (prompt + completion): the model's positions, or vLLM's own limit."""
    limits = [getattr(trainer.model.config, "max_position_embeddings", None)]
    if trainer.use_vllm:
        limits.append(getattr(trainer.vllm_generation, "max_model_length", None))
    limits = [n for n in limits if n]
    return min(limits) if limits else None


def heldout_sampling(trainer, prompts: list[str]) -> HeldoutSampling:
    """The config's held-out settings, the token limit capped so the longest prompt plus it fits the context."""
    args, tokenizer = trainer.args, trainer.processing_class
    max_new_tokens = args.heldout_max_new_tokens
    context = _context_limit(trainer)
    if context and prompts:
        longest = max(len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"])
        max_new_tokens = max(1, min(max_new_tokens, context - longest))
    return HeldoutSampling(args.heldout_k, args.heldout_temperature, args.heldout_top_p, max_new_tokens)


@contextmanager
def vllm_sampling(vllm_generation, sampling: HeldoutSampling):
    """TRL's `VLLMGeneration` reads its sampling settings from attributes when it builds vLLM's
    `SamplingParams` (colocate) or the server request (server mode); set the held-out ones for the
    duration, then restore the training sampler's. The training `generation_kwargs` (which override
    them in colocate mode) are left out."""
    held = {"temperature": sampling.temperature, "top_p": sampling.top_p if sampling.temperature > 0 else 1.0,
            "top_k": 0, "min_p": 0.0, "repetition_penalty": 1.0,
            "max_completion_length": sampling.max_new_tokens, "generation_kwargs": {}}
    saved = {name: getattr(vllm_generation, name) for name in held}
    for name, value in held.items():
        setattr(vllm_generation, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(vllm_generation, name, value)


def generate_vllm(trainer, prompts: list[str], share: int, filler: str, per_call: int, sampling: HeldoutSampling,
                  progress: bool) -> list[list[Completion]]:
    """`sampling.k` completions per prompt from the trainer's vLLM engine, `per_call` prompts per call.

    Every process makes the same calls with the same number of prompts (server mode gathers them on the
    main process and hands each process back its slice; tensor-parallel colocate gathers them too): calls
    for `share` prompts (the largest share of any process), a process with fewer padding its calls with
    `filler` and dropping those completions.
    """
    tokenizer, vllm_generation = trainer.processing_class, trainer.vllm_generation
    if trainer.state.global_step != trainer._last_loaded_step:  # as TRL does before a training generation
        vllm_generation.sync_weights()
        trainer._last_loaded_step = trainer.state.global_step
    eos_ids = set()
    for eos in (trainer.model.generation_config.eos_token_id, tokenizer.eos_token_id):  # vLLM stops at either
        eos_ids |= set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    k = sampling.k
    results: list[list[Completion]] = []
    bar = tqdm(total=len(prompts), desc="held-out eval (vLLM)", disable=not progress, unit="prompt")
    with vllm_sampling(vllm_generation, sampling):
        for start in range(0, share, per_call):
            chunk = prompts[start:start + per_call]
            size = min(per_call, share - start)
            padded = chunk + [filler] * (size - len(chunk))
            ids = tokenizer(padded, add_special_tokens=False)["input_ids"]
            _, completion_ids, _, _ = vllm_generation.generate([p for p in ids for _ in range(k)], None, k)
            for i in range(len(chunk)):
                results.append([completion_from_ids(c, eos_ids, sampling.max_new_tokens, tokenizer)
                                for c in completion_ids[i * k:(i + 1) * k]])
            bar.update(len(chunk))
    bar.close()
    return results


def heldout_metrics(trainer) -> dict[str, float]:
    """`{"eval/accuracy": mean@k, "eval/pass@k": ..., "eval/mean_length": ...}` on the held-out set."""
    args, accelerator, tokenizer = trainer.args, trainer.accelerator, trainer.processing_class
    rows = list(trainer.heldout_dataset)[: args.heldout_max_problems]
    shard = rows[accelerator.process_index:: accelerator.num_processes]
    all_prompts = [prompt_text(row["prompt"], tokenizer) for row in rows]
    prompts = all_prompts[accelerator.process_index:: accelerator.num_processes]
    sampling = heldout_sampling(trainer, all_prompts)
    k, per_call = sampling.k, args.per_device_eval_batch_size
    progress = accelerator.is_main_process and not args.disable_tqdm
    samples: list[list[Completion]] = []
    if trainer.use_vllm:  # every process takes part in every call, also one without problems
        share = math.ceil(len(rows) / accelerator.num_processes)
        samples = generate_vllm(trainer, prompts, share, all_prompts[0], per_call, sampling, progress) if rows else []
    elif shard:
        with unwrap_model_for_generation(trainer.model_wrapped, accelerator,
                                         gather_deepspeed3_params=args.ds3_gather_for_generation) as model:
            samples = generate_transformers(model, tokenizer, prompts, k=k, temperature=sampling.temperature,
                                            top_p=sampling.top_p, max_new_tokens=sampling.max_new_tokens,
                                            batch_size=per_call * k, seed=args.seed, progress=progress,
                                            desc="held-out eval")
    correct: list[list[bool]] = []
    lengths: list[int] = []
    if shard:
        texts = [s.text for group in samples for s in group]
        columns = {key: [row[key] for row in shard for _ in range(k)] for key in shard[0] if key != "prompt"}
        total = [0.0] * len(texts)
        for index in trainer.correctness_funcs:
            values = trainer.reward_funcs[index](prompts=[p for p in prompts for _ in range(k)], completions=texts,
                                                 **columns)
            total = [t + (v or 0.0) for t, v in zip(total, values)]  # None: does not apply to this sample
        hits = is_correct(total, args.r_max).tolist()
        correct = [hits[i * k:(i + 1) * k] for i in range(len(shard))]
        lengths = [s.length for group in samples for s in group]
    correct = [c for part in gather_object([correct]) for c in part]
    lengths = [n for part in gather_object([lengths]) for n in part]
    return {"eval/accuracy": mean_at_k(correct), f"eval/pass@{k}": mean_pass_at_k(correct, k),
            "eval/mean_length": sum(lengths) / max(len(lengths), 1)}
