"""Periodic held-out evaluation during training: mean@k and pass@k, logged as `eval/accuracy` etc.

Generation is `dipo.eval.generate_transformers` and the metrics are `dipo.eval`'s; the completions
are scored with the trainer's correctness reward functions (`correctness_reward_funcs`; a completion is
correct when their summed raw reward reaches `r_max`; format or shaping rewards never count), so maths
and tool calls are judged exactly as the training step judges correctness. Each process
evaluates its share of the problems (parameters gathered first under ZeRO-3) and the results are
gathered, so every rank logs the same numbers.
"""

from __future__ import annotations

from accelerate.utils import gather_object
from trl.models.utils import unwrap_model_for_generation

from dipo.data import render_prompt
from dipo.engines.kit import is_correct
from dipo.eval import generate_transformers, mean_at_k, mean_pass_at_k


def _prompt_text(prompt, tokenizer) -> str:
    return prompt if isinstance(prompt, str) else render_prompt(prompt, tokenizer)


def heldout_metrics(trainer) -> dict[str, float]:
    """`{"eval/accuracy": mean@k, "eval/pass@k": ..., "eval/mean_length": ...}` on the held-out set."""
    args, accelerator = trainer.args, trainer.accelerator
    rows = list(trainer.heldout_dataset)[: args.heldout_max_problems]
    shard = rows[accelerator.process_index:: accelerator.num_processes]
    k, tokenizer = args.heldout_k, trainer.processing_class
    correct: list[list[bool]] = []
    lengths: list[int] = []
    if shard:
        prompts = [_prompt_text(row["prompt"], tokenizer) for row in shard]
        with unwrap_model_for_generation(trainer.model_wrapped, accelerator,
                                         gather_deepspeed3_params=args.ds3_gather_for_generation) as model:
            samples = generate_transformers(model, tokenizer, prompts, k=k, temperature=args.temperature,
                                            top_p=args.top_p, max_new_tokens=args.max_completion_length,
                                            batch_size=args.per_device_eval_batch_size * k, seed=args.seed,
                                            progress=accelerator.is_main_process and not args.disable_tqdm,
                                            desc="held-out eval")
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
