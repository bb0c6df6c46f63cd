"""A DiPO-aware version of verl's DAPO group filter (V1 replay buffer).

DAPO's dynamic sampling evicts every group whose filter metric is constant -- exactly the all-right
and all-wrong groups DiPO learns from. The DiPO-aware filter keeps such a group when BRR would
reallocate it, i.e. when ``R`` *or* ``R_r`` varies (``dipo.core.dynamic_sampling_keep``).

The filter runs before the batch exists, so it judges each finished group against the split of the
PPL queue as it stands (previous batches; ``DiPO.step(..., push=False)`` has no side effects). At
advantage time the queue also holds the current batch, so a kept group may end up not firing (it then
gets zero advantage, as under plain GRPO) and, rarely, an evicted one would have fired. On the first
step the queue is empty, the split invalid, and the filter behaves exactly like DAPO's.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import transfer_queue as tq

from dipo.core import DiPO, dynamic_sampling_keep, sequence_logppl


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

    def attach_dipo(self, dipo: DiPO, logprob_key: str) -> None:
        self.dipo = dipo
        self.logprob_key = logprob_key
        self._dipo_kept: dict[str, set[str]] = {}    # partition -> groups judged "keep"
        self._dipo_judged: dict[str, set[str]] = {}  # partition -> groups already judged

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

    def _judge_groups(self, partition_id: str, uids: set[str]) -> set[str]:
        keys = [key for key in self.partitions[partition_id] if key.split("_")[0] in uids]
        if not keys:
            return set()
        data = tq.kv_batch_get(keys=keys, partition_id=partition_id,
                               select_fields=[self.logprob_key, "response_mask"])
        if self.logprob_key not in data.keys():
            raise KeyError(f"DiPO-aware group filter: trajectories lack {self.logprob_key!r} "
                           "(set actor_rollout_ref.rollout.calculate_log_probs=true)")
        padded = data.to_padded_tensor()
        logppl = sequence_logppl(padded[self.logprob_key], padded["response_mask"])
        group_ids = np.array([key.split("_")[0] for key in keys], dtype=object)
        # the group's shared filter-metric value is the verifier reward of every member
        values = self._dapo_classification_cache[partition_id]
        rewards = np.array([values[uid] for uid in group_ids], dtype=np.float64)
        return groups_dipo_keeps(self.dipo, rewards, logppl, group_ids)


def make_dipo_aware(buffer) -> None:
    """Turn a built verl ``ReplayBuffer`` (sync or async) into its DiPO-aware subclass in place.

    Swapping the class keeps verl's constructor (and its argument wiring) as the only place that builds
    the buffer; the subclass adds behaviour, no state that ``__init__`` would have to set.
    """
    base = type(buffer)
    buffer.__class__ = type(f"DiPO{base.__name__}", (DiPOGroupFilter, base), {"__module__": __name__})
