"""`DiPOTrainer`: TRL's `GRPOTrainer` with DiPO / DAPO / GRPO / CDE advantages (pinned to trl 1.16).

TRL does generation, reward calls, the loss (token-level `loss_type="dapo"`, clip-higher via
`epsilon_high`), accelerate/DeepSpeed, vLLM and logging. This subclass overrides a few of its
private hooks (they are private, hence the pin):

- `_generate_single_turn`: on the plain transformers path, record the sampled tokens' log-probs at
  the sampling temperature while generating (vLLM already returns them) — PPL costs no forward pass;
- `_generate` / `_calculate_rewards`: keep the rollout (token ids, log-probs, tool mask) and the
  rewards gathered from every process, which TRL computes but does not return;
- `_generate_and_score_completions`: after TRL built the batch, replace its advantages with
  `dipo.core.DiPO.step` on the gathered batch (so every rank pushes the same data to the queue),
  add DAPO's overlong shaping / CDE's bonus to the reward, run dynamic sampling (drop groups without
  signal, refill with new prompts), log DiPO's metrics into TRL's metrics and write rollout records;
- `_save_checkpoint` / `_load_optimizer_and_scheduler`: save and restore the PPL queue and the
  refill sampler's position with each checkpoint, written atomically (staged, then renamed) and
  refused on resume when incomplete (`dipo.engines.trl.checkpoints`); `log`: also append to `metrics.jsonl`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import gather_object
from datasets import IterableDataset
from transformers import TrainerCallback
from transformers.trainer_utils import rotate_checkpoints
from trl import GRPOTrainer
from trl.trainer.utils import RepeatSampler, nanstd, repeat_iterable_dataset

from dipo.core import (
    DiPO,
    cde_weight,
    dynamic_sampling_keep,
    overlong_penalty,
    perplexity_bonus,
    sequence_logppl,
)
from dipo.engines.kit import STATE_FILE, RunLog, load_state, save_state, step_records
from dipo.engines.kit.correctness import resolve_correctness_funcs, verifier_rewards
from dipo.engines.kit.reward_guard import guard_reward
from dipo.engines.trl.batch_ops import concat_batches, select_rows
from dipo.engines.trl.checkpoints import publish, resume_gaps, staging_dir
from dipo.engines.trl.config import DiPOConfig, check_vllm_server
from dipo.engines.trl.rollout_logprobs import SampledTokenLogprobs, extra_logits_processor

logger = logging.getLogger(__name__)



@dataclass
class _Rollout:
    """What `_generate` produced for this process (TRL does not return it from the scoring step)."""

    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    tool_mask: list[list[int]] | None
    logprobs: list[list[float]] | None


@dataclass
class _Round:
    """One generation round: TRL's local batch with DiPO advantages, plus gathered per-sample data."""

    batch: dict
    keep: torch.Tensor  # [N_global] bool: the sample's group survives dynamic sampling
    records: dict[str, np.ndarray]
    metrics: dict[str, float]  # DiPO's metrics of this round (combined per step by `_metrics_over_rounds`)


class DiPOTrainer(GRPOTrainer):
    """GRPO / DAPO / DiPO / CDE on TRL. Same constructor as `GRPOTrainer`, plus `heldout_dataset`.

    Args:
        args: a `DiPOConfig` (`method` selects the algorithm).
        heldout_dataset: optional held-out problems (columns `prompt`, `answer`) evaluated before the
            first update (step 0), every `args.heldout_eval_steps` steps and at the last step with
            `dipo.eval`, logged as `eval/accuracy` (mean@k).
        Other arguments are `trl.GRPOTrainer`'s. Callable reward functions are wrapped so that one
        that raises gives `r_min` and a counted warning instead of a dead run.
    """

    def __init__(self, model, reward_funcs=None, args: DiPOConfig | None = None, train_dataset=None,
                 eval_dataset=None, processing_class=None, reward_processing_classes=None, callbacks=None,
                 optimizers=(None, None), quantization_config=None, peft_config=None, tools=None, rollout_func=None,
                 environment_factory=None, *, heldout_dataset=None):
        # GRPOTrainer's parameters, in its order and with its defaults (tests/test_trl_dropin.py compares the
        # signatures), plus the keyword-only `heldout_dataset`
        if args is None:
            name = model if isinstance(model, str) else model.config._name_or_path
            args = DiPOConfig(output_dir=f"{str(name).split('/')[-1]}-DiPO")
        if not isinstance(args, DiPOConfig):
            raise TypeError(f"DiPOTrainer needs a DiPOConfig, got {type(args).__name__}")
        if reward_funcs is not None:
            funcs = reward_funcs if isinstance(reward_funcs, list) else [reward_funcs]
            reward_funcs = [guard_reward(f, fallback=args.r_min) for f in funcs]
        if args.use_vllm and args.vllm_mode == "server":
            check_vllm_server(args)  # before TRL connects (it would first fail on a CPU trainer without saying why)
        super().__init__(model=model, reward_funcs=reward_funcs, args=args, train_dataset=train_dataset,
                         eval_dataset=eval_dataset, processing_class=processing_class,
                         reward_processing_classes=reward_processing_classes, callbacks=callbacks,
                         optimizers=optimizers, quantization_config=quantization_config, peft_config=peft_config,
                         tools=tools, rollout_func=rollout_func, environment_factory=environment_factory)
        self.correctness_funcs = resolve_correctness_funcs(args.correctness_reward_funcs, self.reward_func_names)
        self._log_correctness_funcs()
        self.dipo = DiPO(args.core_config())
        self.heldout_dataset = heldout_dataset
        self.run_dir = Path(args.output_dir)
        self.run_log = RunLog(self.run_dir)
        self._rollout: _Rollout | None = None
        self._gathered_rewards: torch.Tensor | None = None
        self._refill_iter = None
        self._refill_draws = 0  # refill batches drawn so far (restored on resume)
        self.add_callback(_HeldoutAtStart(self))

    def _log_correctness_funcs(self) -> None:
        names = self.reward_func_names
        used = [names[i] for i in self.correctness_funcs]
        shaping = [n for i, n in enumerate(names) if i not in self.correctness_funcs]
        message = "DiPO: correctness (group kinds, PPL queue, BRR, dipo/* and eval/accuracy) from %s%s; %s"
        default = " (the first reward function: correctness_reward_funcs not set)" \
            if self.args.correctness_reward_funcs is None else ""
        rest = f"only the training reward A(R) uses {shaping}" if shaping else "no other reward function"
        (logger.warning if shaping and default else logger.info)(message, used, default, rest)

    # -- rollout log-probs ------------------------------------------------------------------------

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        if self.use_vllm:  # vLLM returns the sampled tokens' processed (temperature-scaled) log-probs
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                 has_tool_images)
        recorder = SampledTokenLogprobs(self.temperature)
        with extra_logits_processor(self.accelerator.unwrap_model(self.model), recorder):
            completion_ids, _ = super()._generate_single_turn(prompt_ids, images, multimodal_fields,
                                                              num_generations, has_tool_images)
        return completion_ids, recorder.per_sequence(completion_ids)

    def _generate(self, prompts: list):
        out = super()._generate(prompts)
        prompt_ids, completion_ids, tool_mask, _, logprobs, *_ = out
        self._rollout = _Rollout(prompt_ids, completion_ids, tool_mask, logprobs)
        return out

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._gathered_rewards = rewards_per_func  # [N_global, n_funcs], gathered from every process
        return rewards_per_func

    # -- advantages, dynamic sampling, records ----------------------------------------------------

    def _generate_and_score_completions(self, inputs):
        if not self.model.training:  # TRL's evaluation loop: plain GRPO scoring
            return super()._generate_and_score_completions(inputs)
        step = self.state.global_step + 1
        rounds = [self._score_round(inputs, step, 0)]
        if self.args.dynamic_sampling:
            while self._groups_short(rounds) and len(rounds) <= self.args.max_refill_rounds:
                rounds.append(self._score_round(self._next_refill_batch(), step, len(rounds)))
            batch = self._select_groups(rounds)
        else:
            batch = rounds[0].batch
        for key, value in _metrics_over_rounds([r.metrics for r in rounds]).items():
            self._metrics["train"][key].append(value)
        if self.args.save_rollouts and self.accelerator.is_main_process:
            records = {k: np.concatenate([r.records[k] for r in rounds]) for k in rounds[0].records}
            self.run_log.write_rollouts(step, records)
        return batch

    def _score_round(self, inputs: list[dict], step: int, round_index: int) -> _Round:
        """Generate and score one batch with TRL, then give it DiPO's advantages."""
        if self.args.sampling_seed_per_step:  # common random numbers across methods (see the config field)
            key = [self.args.seed, step, round_index, self.accelerator.process_index]
            torch.manual_seed(int(np.random.SeedSequence(key).generate_state(1, np.uint64)[0] >> 1))
        batch = super()._generate_and_score_completions(inputs)
        args, device = self.args, self.accelerator.device
        rollout = self._rollout
        n_local = len(rollout.completion_ids)

        lengths, logppl, truncated = self._rollout_stats(rollout)
        # int/float only: some collective backends (NCCL) cannot gather bool tensors
        lengths, logppl, truncated = (self.accelerator.gather(t.to(device)).cpu()
                                      for t in (lengths, logppl, truncated.long()))
        truncated = truncated.bool()
        prompt_ids = gather_object([_prompt_id(x) for x in inputs])

        rewards_per_func = self._gathered_rewards.cpu()
        infinite = torch.isinf(rewards_per_func)  # a reward model (not guarded like callables) gave +-inf
        if infinite.any():
            logger.warning("%d infinite reward(s) from %s: given r_min", int(infinite.sum()),
                           [self.reward_func_names[i] for i in infinite.any(dim=0).nonzero().flatten().tolist()])
            rewards_per_func = rewards_per_func.masked_fill(infinite, args.r_min)
        unscorable = torch.isnan(rewards_per_func).all(dim=1)
        summed = (rewards_per_func * self.reward_weights.cpu()).nansum(dim=1)  # TRL's training reward
        summed[unscorable] = args.r_min  # no function applied: count as a failure (TRL zeroes it too)
        verifier = verifier_rewards(rewards_per_func, self.correctness_funcs, args.r_min)
        rewards = summed
        if args.method == "cde":
            weight = cde_weight(self.state.global_step, self.state.max_steps, args.cde_weight,
                                args.cde_weight_schedule, args.cde_decay_fraction)
            rewards = perplexity_bonus(rewards, logppl, weight, args.cde_kappa, args.cde_a, args.r_min, args.r_max,
                                       verifier_rewards=verifier)
            self._metrics["train"]["cde/weight"].append(weight)
        if args.overlong_shaping:
            rewards = rewards + overlong_penalty(lengths, args.max_completion_length, args.overlong_buffer_length,
                                                 args.overlong_penalty_factor)

        n = verifier.numel()
        group_ids = torch.arange(n) // self.num_generations
        # every round of a training step is one queue batch (the split sees all sampled groups)
        out = self.dipo.step(rewards, logppl, group_ids, verifier_rewards=verifier, new_batch=round_index == 0)
        if self.accelerator.num_processes > 1:
            self._check_ranks_agree(out, step, round_index)
        advantages = out.advantages
        if args.multi_objective_aggregation == "normalize_then_sum":  # A(R) as TRL computes it; BRR's term as always
            columns = torch.cat([rewards_per_func, (rewards - summed).unsqueeze(1)], dim=1)  # shaping: one more column
            weights = torch.cat([self.reward_weights.cpu(), torch.ones(1)])
            base = normalize_then_sum_advantages(columns, weights, self.num_generations)
            base = base.masked_fill(unscorable, 0.0)
            if not self.dipo.config.shaped_flat_groups:
                base = base.masked_fill(out.verifier_flat.cpu(), 0.0)
            advantages = base.to(out.extra_advantages.dtype) + out.extra_advantages.cpu()

        rank = self.accelerator.process_index
        batch["advantages"] = advantages[rank * n_local:(rank + 1) * n_local].to(device)
        self._logs["advantages"].clear()  # TRL logged its own advantages (the deque holds one round)
        self._logs["advantages"].extend(advantages.tolist())
        realloc = out.realloc.rewards if args.method == "dipo" else None
        keep = dynamic_sampling_keep(verifier, group_ids, realloc)
        records = step_records(
            out, step, prompt_ids, lengths.numpy(), truncated.numpy(),
            group_id=(group_ids + round_index * (n // self.num_generations)).numpy().astype(np.int64),
            round=np.full(n, round_index, dtype=np.int64),
            kept=np.zeros(n, dtype=bool),  # filled in by _select_groups
            shaped_reward=rewards.numpy().astype(np.float64),
        )
        if not args.dynamic_sampling:
            records["kept"][:] = True
        return _Round(batch, keep, records, out.metrics)

    def _check_ranks_agree(self, out, step: int, round_index: int) -> None:
        """Every rank runs DiPO's step on the same gathered batch, so its PPL queue, split and BRR decisions
        must be bitwise equal on all ranks; if not, the ranks would train on different advantages without a
        sign. One small all-gather of a digest per round; a difference ends the run naming step and ranks."""
        digest = hashlib.sha1()
        for array in (self.dipo.queue.logppl, self.dipo.queue.correct, out.advantages, out.realloc.rewards,
                      out.realloc.fired, out.realloc.chosen, np.array([out.split.threshold, out.split.valid])):
            digest.update(np.ascontiguousarray(array.cpu().numpy() if torch.is_tensor(array) else array).tobytes())
        digests = gather_object([digest.hexdigest()])
        if len(set(digests)) > 1:
            groups = {d: [r for r, x in enumerate(digests) if x == d] for d in dict.fromkeys(digests)}
            raise RuntimeError(f"DiPO: ranks disagree on the PPL queue / BRR decisions at step {step} round "
                               f"{round_index} (ranks grouped by state: {list(groups.values())}); every rank must "
                               "hold the same DiPO state and settings (same config, same checkpoint)")

    def _rollout_stats(self, rollout: _Rollout):
        """Per local sample: completion length (model tokens), log-PPL from the rollout log-probs, truncation."""
        ids = rollout.completion_ids
        width = max((len(x) for x in ids), default=0)
        mask = torch.zeros(len(ids), width)
        for i, row in enumerate(ids):
            mask[i, : len(row)] = 1
        if rollout.tool_mask is not None:
            for i, row in enumerate(rollout.tool_mask):
                mask[i, : len(row)] *= torch.tensor(row, dtype=mask.dtype)
        logps = torch.zeros(len(ids), width)
        if rollout.logprobs is not None:
            for i, row in enumerate(rollout.logprobs):
                logps[i, : len(row)] = torch.tensor([float("nan") if x is None else x for x in row])
        else:  # no backend log-probs (should not happen: config rejects continuous batching)
            logps.fill_(float("nan"))
        stop = {*self.eos_token_ids, self._tokenizer.pad_token_id}
        truncated = torch.tensor([len(row) == 0 or row[-1] not in stop for row in ids])
        return mask.sum(dim=1), sequence_logppl(logps, mask), truncated

    def _groups_short(self, rounds: list[_Round]) -> bool:
        """True while some process has fewer kept groups than its batch needs (same answer on every rank)."""
        kept_per_rank = sum(self._kept_local_groups(r.keep).sum(dim=1) for r in rounds)
        return bool((kept_per_rank < self._local_groups).any())

    @property
    def _local_groups(self) -> int:
        return self.args.per_device_train_batch_size * self.args.steps_per_generation // self.num_generations

    def _kept_local_groups(self, keep: torch.Tensor) -> torch.Tensor:
        """[num_processes, local_groups] bool from a [N_global] per-sample keep mask."""
        return keep.view(-1, self.num_generations)[:, 0].view(self.accelerator.num_processes, -1)

    def _select_groups(self, rounds: list[_Round]) -> dict:
        """This process's batch: its first kept groups across rounds, topped up with dropped ones if short."""
        g, need, rank = self.num_generations, self._local_groups, self.accelerator.process_index
        kept, dropped = [], []
        for round_index, r in enumerate(rounds):
            for local_group, keep in enumerate(self._kept_local_groups(r.keep)[rank].tolist()):
                (kept if keep else dropped).append((round_index, local_group))
        chosen = kept[:need]
        filled = max(need - len(chosen), 0)
        chosen += dropped[:filled]
        parts = []
        for round_index, r in enumerate(rounds):
            groups = [lg for ri, lg in chosen if ri == round_index]
            if groups:
                rows = torch.tensor([lg * g + j for lg in groups for j in range(g)])
                parts.append(select_rows(r.batch, rows))
        batch = concat_batches(parts, self._tokenizer.pad_token_id)
        loss_mask = batch["completion_mask"] * batch.get("tool_mask", 1)
        batch["num_items_in_batch"] = self.accelerator.gather(loss_mask.sum()).sum()

        # Mark kept rows in the records (gathered view: every rank's choice is needed on the main process).
        all_chosen = gather_object([(rank, ri, lg) for ri, lg in chosen])
        n_local = len(rounds[0].keep) // self.accelerator.num_processes
        for src_rank, ri, lg in all_chosen:
            start = src_rank * n_local + lg * g
            rounds[ri].records["kept"][start:start + g] = True
        generated = sum(len(r.keep) for r in rounds) // g
        self._metrics["train"]["dynamic_sampling/rounds"].append(float(len(rounds)))
        self._metrics["train"]["dynamic_sampling/kept_frac"].append(
            float(sum(r.keep.view(-1, g)[:, 0].sum().item() for r in rounds)) / max(generated, 1))
        filled_all = self.accelerator.gather(torch.tensor([filled], device=self.accelerator.device)).sum().item()
        self._metrics["train"]["dynamic_sampling/filled_groups"].append(float(filled_all))
        if filled_all:
            logger.warning("dynamic sampling: %d groups without signal kept to fill the batch after %d rounds",
                           filled_all, len(rounds))
        return batch

    # -- refill prompts ---------------------------------------------------------------------------

    def _next_refill_batch(self) -> list[dict]:
        if self._refill_iter is None:
            self._refill_iter = self._refill_batches()
        self._refill_draws += 1
        return next(self._refill_iter)

    def _refill_batches(self):
        """Endless local generation batches of fresh prompts, in an order independent of the main one: a
        permutation seeded `seed + 1` of a map-style dataset, or, for a streaming (iterable) dataset, the
        stream itself in a buffered shuffle seeded `seed + 1`, grouped as TRL groups the main stream. Both
        are deterministic, so a resume replays `_refill_draws` batches to the same position, and accelerate
        hands every rank its slice of the same global batch."""
        dataset = self.train_dataset
        batch_size = self.args.generation_batch_size // self.num_generations
        if isinstance(dataset, IterableDataset):
            dataset = repeat_iterable_dataset(dataset.shuffle(seed=self.args.seed + 1), self.num_generations,
                                              batch_size=batch_size, repeat_count=1)
            sampler_fn = None
        else:
            sampler = RepeatSampler(data_source=dataset, mini_repeat_count=self.num_generations,
                                    batch_size=batch_size, repeat_count=1, shuffle=True, seed=self.args.seed + 1)
            sampler_fn = lambda _: sampler  # noqa: E731
        loader = self._get_dataloader(
            dataset=dataset, description="Refill",
            batch_size=self.args.per_device_train_batch_size * self.args.steps_per_generation,
            sampler_fn=sampler_fn, is_training=True,
        )
        while True:
            drawn = 0
            for batch in loader:
                drawn += 1
                yield batch
            if not drawn:
                raise ValueError("dynamic sampling: the train dataset yields no prompts to refill from")

    # -- checkpoints and logs ---------------------------------------------------------------------

    def _save_checkpoint(self, model, trial):
        """Stage the whole checkpoint, publish it with one rename, then rotate (`checkpoints` module)."""
        args = self.args
        step, run_dir = self.state.global_step, Path(self._get_output_dir(trial=trial))
        atomic = args.metric_for_best_model is None and not args.push_to_hub  # both read the folder in place
        staged_parent = staging_dir(run_dir, step) if atomic else run_dir
        if atomic and args.should_save and staged_parent.exists():
            shutil.rmtree(staged_parent)  # left by a save that was killed
        limit = args.save_total_limit
        if atomic:
            args.save_total_limit = None  # rotate only once the new checkpoint is complete
            self._get_output_dir = lambda trial=None: str(staged_parent)  # shadows the method during the save
        try:
            super()._save_checkpoint(model, trial)
            if args.should_save:  # every rank holds the same queue: the main one writes it
                save_state(staged_parent / f"checkpoint-{step}" / STATE_FILE, self.dipo,
                           refill_draws=self._refill_draws)
        finally:
            if atomic:
                del self._get_output_dir
                args.save_total_limit = limit
        if not atomic:
            return
        self.accelerator.wait_for_everyone()  # every rank has written its part
        if args.should_save:
            publish(staged_parent / f"checkpoint-{step}", run_dir / f"checkpoint-{step}")
            shutil.rmtree(staged_parent, ignore_errors=True)
            rotate_checkpoints(output_dir=str(run_dir), save_total_limit=limit,
                               best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)
        self.accelerator.wait_for_everyone()

    def _load_optimizer_and_scheduler(self, checkpoint):
        if checkpoint is not None:
            sharded = self.is_deepspeed_enabled or self.is_fsdp_enabled or self.args.save_only_model
            gaps = resume_gaps(checkpoint, needs_optimizer=not sharded)
            if gaps and not self.args.allow_inexact_resume:
                raise ValueError(f"{checkpoint}: cannot resume exactly, missing {', '.join(gaps)}; resume from an "
                                 "earlier complete checkpoint, or set allow_inexact_resume=true to accept it")
            if gaps:
                logger.warning("%s lacks %s: resuming inexactly (allow_inexact_resume)", checkpoint, ", ".join(gaps))
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None:
            return
        path = Path(checkpoint) / STATE_FILE
        if not path.is_file() or path.stat().st_size == 0:  # accepted above: the queue starts empty
            return
        state = load_state(path, self.dipo)
        self._refill_iter = self._refill_batches()
        for _ in range(state["refill_draws"]):
            next(self._refill_iter)
        self._refill_draws = state["refill_draws"]
        if self.accelerator.is_main_process:  # the resumed run rewrites the steps after the checkpoint
            self.run_log.truncate_metrics(_step_of(checkpoint))

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self._heldout_due(logs):  # on the step's own log line (a separate log would swallow TRL's line)
            from dipo.engines.trl.heldout import heldout_metrics

            logs.update(heldout_metrics(self))
        super().log(logs, start_time)  # TRL adds its averaged metrics (ours included) to `logs`
        if self.accelerator.is_main_process:
            self.run_log.append_metrics(self.state.global_step, logs)

    def log_heldout_at_start(self) -> None:
        """Step-0 held-out evaluation (not on resume): every accuracy curve starts at the policy RL began from."""
        if self.heldout_dataset is not None and self.args.heldout_eval_steps > 0 and self.state.global_step == 0:
            from dipo.engines.trl.heldout import heldout_metrics

            self.log(heldout_metrics(self))

    def _heldout_due(self, logs: dict) -> bool:
        """Held-out evaluation every `heldout_eval_steps` training steps and at the last step."""
        every, step = self.args.heldout_eval_steps, self.state.global_step
        return (self.heldout_dataset is not None and every > 0 and "loss" in logs and self.model.training
                and (step % every == 0 or step == self.state.max_steps))


class _HeldoutAtStart(TrainerCallback):
    def __init__(self, trainer: DiPOTrainer) -> None:
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer.log_heldout_at_start()  # called on every rank: the evaluation gathers across ranks


_SUMMED = ("dipo/fired_", "dipo/quadrant_", "dipo/correctness_out_of_range")
_LAST = ("dipo/threshold", "dipo/split_valid", "dipo/split_error", "dipo/queue_size")


def _metrics_over_rounds(rounds: list[dict[str, float]]) -> dict[str, float]:
    """One training step's DiPO metrics from its generation rounds (all rounds have the same size): counts are
    summed, the split and queue are those of the last round (the whole step's queue batch), shares averaged."""
    out = {}
    for key in rounds[0]:
        values = np.array([r[key] for r in rounds], dtype=np.float64)
        if key.startswith(_SUMMED):
            out[key] = float(values.sum())
        elif key in _LAST:
            out[key] = float(values[-1])
        else:
            out[key] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    return out


def normalize_then_sum_advantages(rewards_per_func: torch.Tensor, weights: torch.Tensor,
                                  num_generations: int, eps: float = 1e-4) -> torch.Tensor:
    """TRL's `multi_objective_aggregation="normalize_then_sum"` advantages, ``[N, F] -> [N]``.

    Each reward function is normalised within its group, ``z_{i,k} = (r_{i,k} - mean_g(r_k)) / (std_g(r_k) + eps)``,
    the weighted sum ``s_i = sum_k w_k z_{i,k}`` is normalised over the batch, ``A_i = (s_i - mean(s)) / (std(s) + eps)``
    (NaN = the function does not apply: skipped; rows no function applies to get A = 0). Samples are
    ordered group by group (``num_generations`` consecutive rows per group), as TRL orders them.
    """
    grouped = rewards_per_func.view(-1, num_generations, rewards_per_func.shape[1])
    mean = torch.nanmean(grouped, dim=1, keepdim=True)
    std = nanstd(grouped, dim=1, keepdim=True)
    z = ((grouped - mean) / (std + eps)).view(-1, rewards_per_func.shape[1])
    summed = (z * weights.unsqueeze(0)).nansum(dim=1)
    summed[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
    spread = nanstd(summed) if summed.numel() > 1 else torch.zeros(())
    return torch.nan_to_num((summed - torch.nanmean(summed)) / (spread + eps), nan=0.0)


def _prompt_id(row: dict) -> str:
    for key in ("prompt_id", "id"):
        if key in row and row[key] is not None:
            return str(row[key])
    return hashlib.sha1(repr(row.get("prompt")).encode()).hexdigest()[:12]


def _step_of(checkpoint: str) -> int:
    return int(os.path.basename(os.path.normpath(checkpoint)).rsplit("-", 1)[-1])
