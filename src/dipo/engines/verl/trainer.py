"""DiPO trainers for verl's V1 trainer (TransferQueue data plane, verl 0.9).

verl's advantage estimators receive no log-probs, and its DAPO group filter runs in the replay buffer
before log-probs are recomputed. So DiPO hooks the trainer itself: :class:`DiPOTrainerMixin`
overrides ``_compute_advantage`` (runs on the driver after the old/ref log-prob passes):

1. verl computes ``A(R)`` with its own estimator (parent method, unchanged);
2. the mixin reads ``uid``, ``response_mask``, ``rm_scores`` (raw scores, never edited), the rollout
   (or recomputed) log-probs, verl's ``advantages`` and the verifier field from ``reward_extra_info``;
3. :func:`dipo.engines.verl.adapter.dipo_term` runs ``DiPO.step`` on the padded tensors (queue on the
   driver, PSD, BRR) and returns the core's ``alpha * A(R_r)`` per row; :func:`~dipo.engines.verl.adapter.add_term`
   applies it (Eq. 10) and the new ``advantages``/``returns`` are written back;
4. DiPO's metrics go into verl's ``metrics`` dict, so every verl logger (console, W&B, TensorBoard,
   MLflow, file) receives them; the queue is saved/restored with verl's checkpoints.

Importing this module registers the trainer modes ``dipo_sync``, ``dipo_colocate_async`` and
``dipo_separate_async`` (``trainer.v1.trainer_mode``); each is verl's trainer of that mode plus DiPO. It
also registers the advantage estimator name ``dipo`` (``algorithm.adv_estimator=dipo``): a DiPO trainer
reads it as GRPO plus DiPO's term; in verl's plain trainers it is one clear error naming the trainer mode.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch
import transfer_queue as tq
from tensordict import TensorDict
from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, register_adv_est
from verl.trainer.ppo.v1 import trainer_base
from verl.trainer.ppo.v1.trainer_colocate_async import PPOTrainerColocateAsync
from verl.trainer.ppo.v1.trainer_separate_async import PPOTrainerSeparateAsync
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from verl.workers.utils.padding import response_to_nested

from dipo.core import DiPO
from dipo.engines.kit import STATE_FILE, RunLog, load_state, save_state, step_records
from dipo.engines.verl.adapter import (
    LOGPROB_KEYS,
    add_term,
    dipo_term,
    participating_rows,
    verifier_from_extra_fields,
)
from dipo.engines.verl.config import (
    ADV_ESTIMATOR_NEEDS_TRAINER,
    DIPO_ESTIMATOR,
    DIPO_TRAINER_MODES,
    validate_verl_config,
)
from dipo.engines.verl.filter import DiPOGroupFilter, filter_is_dipo_aware, make_dipo_aware

logger = logging.getLogger(__name__)


class DiPOTrainerMixin:
    """Mix in before a verl V1 ``PPOTrainer`` subclass: ``class T(DiPOTrainerMixin, PPOTrainerSync)``."""

    def __init__(self, config):
        self._init_dipo(config)
        super().__init__(config)

    # ------------------------------------------------------------------ setup
    def _init_dipo(self, config) -> None:
        # verl branches on the plain mode names ("sync", ...): hand it the base mode of "dipo_<mode>"
        mode = config.trainer.v1.trainer_mode
        config.trainer.v1.trainer_mode = DIPO_TRAINER_MODES.get(mode, mode)
        if config.algorithm.adv_estimator == DIPO_ESTIMATOR:  # verl computes A(R) with GRPO; DiPO adds its term
            config.algorithm.adv_estimator = "grpo"
        # the dipo: section parsed and the core config built once per start
        self.dipo_options = validate_verl_config(config, dipo_aware_filter=filter_is_dipo_aware(config))
        self.dipo = DiPO(self.dipo_options)
        self.dipo_run_log = RunLog(self.dipo_options.records_dir) if self.dipo_options.records_dir else None

    def _build_replay_buffer(self):
        buffer = super()._build_replay_buffer()
        options = getattr(self, "dipo_options", None)
        if options is not None and options.enable and getattr(buffer, "filter_groups_metric", None) is not None:
            if not isinstance(buffer, DiPOGroupFilter):
                make_dipo_aware(buffer)
            buffer.attach_dipo(self.dipo, LOGPROB_KEYS[options.logprob_source], options.correct_key)
        return buffer

    # ------------------------------------------------------------------ advantage step
    def _compute_advantage(self, batch, metrics: dict):
        batch = super()._compute_advantage(batch, metrics)
        if not self.dipo_options.enable:
            return batch
        options = self.dipo_options
        logprob_key = LOGPROB_KEYS[options.logprob_source]
        fields = ["uid", "response_mask", "rm_scores", "advantages", logprob_key]
        if options.correct_key:
            fields.append("extra_fields")
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=fields)
        missing = [f for f in fields if f not in data.keys()]
        if missing:
            raise KeyError(f"DiPO: TransferQueue batch lacks {missing}" + (
                " (set actor_rollout_ref.rollout.calculate_log_probs=true)" if logprob_key in missing else ""))
        is_padding = np.array([bool(tag.get("is_padding", False)) for tag in batch.tags], dtype=bool)
        verifier = None
        if options.correct_key:
            verifier = verifier_from_extra_fields(data.pop("extra_fields"), options.correct_key, is_padding)
            bad = ~np.isfinite(verifier) & ~is_padding
            if bad.any():  # a reward that gave NaN/inf must not stop the run (the core refuses them)
                logger.warning("DiPO: %d non-finite reward_extra_info[%r] value(s): given r_min", int(bad.sum()),
                               options.correct_key)
                verifier[bad] = options.r_min
        response_mask = data["response_mask"]
        uid = np.array(data.pop("uid").tolist(), dtype=object)
        padded = data.to_padded_tensor()  # [N, T] tensors, right-padded
        mask = padded["response_mask"]

        rows, source = participating_rows(list(batch.keys), is_padding)
        # the groups the filter cleared this step join the batch in one queue batch (the split sees them)
        unkept = self._take_unkept()
        if unkept[0].size:
            self.dipo.queue.push(*unkept, new_batch=True)
        term = dipo_term(self.dipo, padded["rm_scores"].float().sum(-1), padded[logprob_key], mask, uid,
                         verifier_rewards=verifier, rows=rows, source=source, new_batch=not unkept[0].size)
        advantages = add_term(padded["advantages"], mask, term)

        out = TensorDict({name: response_to_nested(advantages, response_mask) for name in ("advantages", "returns")},
                         batch_size=len(batch))  # GRPO's returns equal its advantages
        batch = tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id, fields=out)

        step_metrics = dict(term.step.metrics)
        step_metrics["dipo/extra_advantage_abs"] = float(term.extra.abs().mean())
        step_metrics["dipo/queued_unkept"] = float(unkept[0].size)
        metrics.update(step_metrics)
        if self.dipo_run_log is not None:  # the project's run directory, for `dipo analyze`
            lengths = mask[torch.as_tensor(rows)].sum(-1).cpu().numpy()
            max_len = int(self.config.actor_rollout_ref.rollout.response_length)
            records = step_records(term.step, self.global_steps, uid[rows], lengths, lengths >= max_len)
            # several advantage passes in one step (separate_async parameter_sync_step) append to one file
            self.dipo_run_log.write_rollouts(self.global_steps, records, append=True)
            self.dipo_run_log.append_metrics(self.global_steps, step_metrics)
        return batch

    def _take_unkept(self):
        """(logppl, correct) of the finished groups the DiPO-aware filter cleared since the last step."""
        buffer = getattr(self, "replay_buffer", None)
        if isinstance(buffer, DiPOGroupFilter) and buffer.dipo is self.dipo:
            return buffer.take_unkept()
        return np.zeros(0), np.zeros(0, dtype=bool)

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint_folder(self, resuming: bool) -> str:
        """Where verl saves this step's checkpoint, or (``resuming``) the one it just loaded."""
        folder = os.path.join(self.config.trainer.default_local_dir, f"global_step_{self.global_steps}")
        if resuming and self.config.trainer.resume_mode == "resume_path" and self.config.trainer.resume_from_path:
            folder = self.config.trainer.resume_from_path
        return folder if os.path.isabs(folder) else os.path.join(os.getcwd(), folder)

    def _save_checkpoint(self):
        # Written before verl's own save, which writes latest_checkpointed_iteration.txt last: a
        # checkpoint verl would resume from always has its DiPO queue.
        save_state(os.path.join(self._checkpoint_folder(resuming=False), STATE_FILE), self.dipo,
                   global_steps=self.global_steps)
        return super()._save_checkpoint()

    def _load_checkpoint(self):
        result = super()._load_checkpoint()
        if self.global_steps <= 0:
            return result
        path = os.path.join(self._checkpoint_folder(resuming=True), STATE_FILE)
        if not os.path.exists(path):
            if not self.dipo_options.allow_inexact_resume:
                raise ValueError(f"DiPO: {path} not found, so the PPL queue cannot be restored and the resume would "
                                 "not be exact; resume from a checkpoint a DiPO run wrote, or set "
                                 "dipo.allow_inexact_resume=true to start with an empty queue")
            logger.warning("DiPO: %s not found; resuming with an empty PPL queue (dipo.allow_inexact_resume)", path)
            return result
        load_state(path, self.dipo)  # ValueError naming the file if unreadable, truncated or foreign
        logger.info("DiPO: restored a PPL queue of %d samples from %s", len(self.dipo.queue), path)
        return result


def _register(name: str, base: type) -> type:
    existing = trainer_base.TRAINER_REGISTRY.get(name)
    if existing is not None:
        return existing
    cls = type(f"DiPO{base.__name__}", (DiPOTrainerMixin, base), {"__module__": __name__})
    return trainer_base.register_trainer(name)(cls)


_BASES = {"sync": PPOTrainerSync, "colocate_async": PPOTrainerColocateAsync,
          "separate_async": PPOTrainerSeparateAsync}
TRAINERS = {name: _register(name, _BASES[mode]) for name, mode in DIPO_TRAINER_MODES.items()}


def _dipo_needs_its_trainer(*args, **kwargs):
    """verl's advantage registry entry for ``algorithm.adv_estimator=dipo`` outside a DiPO trainer mode (the
    DiPO trainers compute A(R) with GRPO and add DiPO's term themselves, so they never call this)."""
    raise ValueError(ADV_ESTIMATOR_NEEDS_TRAINER)


if ADV_ESTIMATOR_REGISTRY.get(DIPO_ESTIMATOR) is None:
    register_adv_est(DIPO_ESTIMATOR)(_dipo_needs_its_trainer)


def register_trainers() -> dict[str, type]:
    """Idempotent: the DiPO trainer modes are registered when this module is imported."""
    return dict(TRAINERS)
