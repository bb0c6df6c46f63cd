"""A DiPO-aware version of verl's DAPO group filter (V1 replay buffer).

DAPO's dynamic sampling evicts every group whose filter metric is constant -- exactly the all-right
and all-wrong groups DiPO learns from. The DiPO-aware filter keeps such a group when BRR would
reallocate it, i.e. when ``R`` *or* ``R_r`` varies (``dipo.core.dynamic_sampling_keep``).

The filter runs before the batch exists, so it judges each finished group against the split of the
PPL queue as it stands (previous batches; ``DiPO.step(..., push=False)`` has no side effects). At
advantage time the queue also holds the current batch, so a kept group may end up not firing (it then
gets zero advantage, as under plain GRPO) and, rarely, an evicted one would have fired. On the first
step the queue is empty, the split invalid, and the filter behaves exactly like DAPO's.

The PPL queue must see what the policy sampled, not only what survived the filter (otherwise the
confidently-wrong groups BRR does not fire on, which confirm the split, never enter it while the
fired ones do). So every finished group the buffer clears -- evicted by the filter, or surplus -- is
read once (log-PPL and verifier correctness of each session's final output, the rows the adapter
scores) and held until the step's advantage pass, which pushes it together with the batch as one
queue batch (:meth:`DiPOGroupFilter.take_unkept`). Stale groups (async off-policy eviction) were
sampled by an older policy and are not pushed.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import transfer_queue as tq
from verl.utils.import_utils import load_extern_type

from dipo.core import DiPO, dynamic_sampling_keep, is_correct, sequence_logppl
from dipo.engines.verl.adapter import parse_key, participating_rows, verifier_from_extra_fields


def groups_dipo_keeps(dipo: DiPO, verifier_rewards, logppl, group_ids) -> set:
    """Group ids (among zero-variance ones) that BRR would reallocate under the current queue."""
    gids = np.asarray(group_ids)
    out = dipo.step(verifier_rewards, logppl, gids, push=False)
    keep = dynamic_sampling_keep(out.verifier_rewards, gids, out.realloc.rewards).numpy()
    return set(gids[keep].tolist())


class DiPOGroupFilter:
    """Mixin for ``verl.trainer.ppo.v1.replay_buffer.ReplayBuffer`` (sync or async).

    Use :func:`make_dipo_aware` on a built buffer, or subclass ``(DiPOGroupFilter, ReplayBuffer)`` for a
    custom sampler (``trainer.v1.sampler.custom_sampler``); the DiPO trainer calls :meth:`attach_dipo`.
    """

    dipo: DiPO | None = None
    logprob_key: str = "rollout_log_probs"
    correct_key: str | None = "acc"

    def attach_dipo(self, dipo: DiPO, logprob_key: str, correct_key: str | None = "acc") -> None:
        self.dipo = dipo
        self.logprob_key = logprob_key
        self.correct_key = correct_key
        self._dipo_kept: dict[str, set[str]] = {}    # partition -> groups judged "keep"
        self._dipo_judged: dict[str, set[str]] = {}  # partition -> groups already judged
        self._dipo_unkept: list[tuple[np.ndarray, np.ndarray]] = []  # cleared groups' (logppl, correct)
        self._dipo_stale: set[str] = set()

    def take_unkept(self) -> tuple[np.ndarray, np.ndarray]:
        """``(logppl [M], correct [M])`` of every finished group cleared since the last call, then forget them."""
        parts, self._dipo_unkept = getattr(self, "_dipo_unkept", []), []
        if not parts:
            return np.zeros(0), np.zeros(0, dtype=bool)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _dapo_filtered_keys(self, partition_id: str):
        filtered, counts = super()._dapo_filtered_keys(partition_id)
        if self.dipo is None or not filtered:
            return filtered, counts
        kept_cache = self._dipo_kept.setdefault(partition_id, set())
        judged = self._dipo_judged.setdefault(partition_id, set())
        # finished groups are immutable: judge each once, forget groups no longer filtered
        judged &= filtered
        kept_cache &= filtered
        new = filtered - judged
        if new:
            kept_cache |= self._judge_groups(partition_id, new)
            judged |= new
        if not kept_cache:
            return filtered, counts
        values = self._dapo_classification_cache[partition_id]
        counts = counts - Counter(values[uid] for uid in kept_cache)
        return filtered - kept_cache, counts

    def _evict_terminal_groups(self, global_steps, partition_id, eviction_reasons):
        self._dipo_stale = set(eviction_reasons[0])  # stale groups: an older policy's samples, not queued
        try:
            return super()._evict_terminal_groups(global_steps, partition_id, eviction_reasons)
        finally:
            self._dipo_stale = set()

    def _clear_groups(self, partition_id: str, uids: set[str]) -> None:
        if self.dipo is not None and partition_id != "val" and uids:
            finished = (set(uids) & self.finished_keys[partition_id]) - self._dipo_stale
            if finished:
                self._dipo_unkept.append(self._final_outputs(partition_id, finished, with_correct=True)[1:])
        super()._clear_groups(partition_id, uids)

    def _final_outputs(self, partition_id: str, uids: set[str], with_correct: bool = False):
        """``(group_ids [M], logppl [M], correct [M] or None)`` of the final output of each session of
        ``uids`` (the rows the adapter scores; an agent loop may write several outputs per session)."""
        keys = [key for key in self.partitions[partition_id] if parse_key(key)[0] in uids]
        if not keys:
            return np.zeros(0, dtype=object), np.zeros(0), np.zeros(0, dtype=bool)
        rows, _ = participating_rows(keys, np.zeros(len(keys), dtype=bool))
        keys = [keys[i] for i in rows]
        fields = [self.logprob_key, "response_mask"]
        if with_correct:
            fields.append("extra_fields" if self.correct_key else "rm_scores")
        data = tq.kv_batch_get(keys=keys, partition_id=partition_id, select_fields=fields)
        if self.logprob_key not in data.keys():
            raise KeyError(f"DiPO-aware group filter: trajectories lack {self.logprob_key!r} "
                           "(set actor_rollout_ref.rollout.calculate_log_probs=true)")
        padded = data.select(self.logprob_key, "response_mask").to_padded_tensor()
        logppl = sequence_logppl(padded[self.logprob_key], padded["response_mask"]).numpy()
        group_ids = np.array([parse_key(key)[0] for key in keys], dtype=object)
        correct = None
        if with_correct:
            if self.correct_key:
                verifier = verifier_from_extra_fields(list(data["extra_fields"]), self.correct_key,
                                                      np.zeros(len(keys), dtype=bool))
            else:
                verifier = np.array([float(score.sum()) for score in data["rm_scores"]])
            correct = is_correct(verifier, self.dipo.config.r_max)
        return group_ids, logppl, correct

    def _judge_groups(self, partition_id: str, uids: set[str]) -> set[str]:
        group_ids, logppl, _ = self._final_outputs(partition_id, uids)
        if not group_ids.size:
            return set()
        # the group's shared filter-metric value is the verifier reward of every member
        values = self._dapo_classification_cache[partition_id]
        rewards = np.array([values[uid] for uid in group_ids], dtype=np.float64)
        return groups_dipo_keeps(self.dipo, rewards, logppl, group_ids)


def filter_is_dipo_aware(config) -> bool:
    """Whether the replay buffer that will run verl's group filter is DiPO-aware: the built-in one (which the
    DiPO trainer makes so), or a ``trainer.v1.sampler.custom_sampler`` subclassing :class:`DiPOGroupFilter`."""
    custom = config.trainer.v1.sampler.get("custom_sampler", None)
    if custom is None or not (custom.get("path") and custom.get("name")):
        return True
    return issubclass(load_extern_type(custom.path, custom.name), DiPOGroupFilter)


def make_dipo_aware(buffer) -> None:
    """Turn a built verl ``ReplayBuffer`` (sync or async) into its DiPO-aware subclass in place.

    Swapping the class keeps verl's constructor (and its argument wiring) as the only place that builds
    the buffer; the subclass adds behaviour, no state that ``__init__`` would have to set.
    """
    base = type(buffer)
    buffer.__class__ = type(f"DiPO{base.__name__}", (DiPOGroupFilter, base), {"__module__": __name__})
