"""Hand-built verl batches for the verl-environment tests (imported only after importorskip("verl.protocol")).

Not a conftest: the main environment collects tests/ without verl and must skip these cleanly."""

from __future__ import annotations

import numpy as np
import torch
from verl.protocol import DataProto

from dipo.core import DiPO, DiPOConfig
from dipo.engines.verl.adapter import BatchDiPO, add_term, dipo_term

torch.set_num_threads(1)

# A clean history for the PPL queue: correct answers at log-PPL 0.2-0.6, wrong ones at 1.4-1.8,
# so PSD finds a valid split near 1.0 at 95% confidence.
PRIOR_LOGPPL = np.concatenate([np.linspace(0.2, 0.6, 60), np.linspace(1.4, 1.8, 60)])
PRIOR_CORRECT = np.concatenate([np.ones(60, bool), np.zeros(60, bool)])


def primed_dipo(**overrides) -> DiPO:
    """A DiPO whose queue already holds one clean batch (queue_batches=2), verl's GRPO epsilon."""
    dipo = DiPO(DiPOConfig(**{"eps": 1e-6, **overrides}))
    dipo.queue.push(PRIOR_LOGPPL, PRIOR_CORRECT)
    return dipo


def token_logprobs(logppl: list[float], lengths: list[int], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[N, width]`` log-probs whose masked mean NLL is ``logppl`` and the matching response mask."""
    n = len(logppl)
    mask = torch.zeros(n, width, dtype=torch.int64)
    lp = torch.full((n, width), float("nan"))  # padding values must be ignored
    for i, (value, length) in enumerate(zip(logppl, lengths)):
        mask[i, :length] = 1
        lp[i, :length] = -value
    return lp, mask


def outcome_scores(scores: list[float], mask: torch.Tensor) -> torch.Tensor:
    """verl's token-level scores: the sequence score on its last response token."""
    out = torch.zeros(mask.shape, dtype=torch.float32)
    last = mask.sum(-1) - 1
    out[torch.arange(len(scores)), last] = torch.tensor(scores, dtype=torch.float32)
    return out


def make_batch(groups: list[tuple[str, list[float], list[float]]], width: int = 6) -> DataProto:
    """DataProto of ``(uid, scores, logppls)`` groups with rollout log-probs, as verl V1 builds it."""
    uids, scores, logppls, lengths = [], [], [], []
    for g, (uid, s, lp) in enumerate(groups):
        uids += [uid] * len(s)
        scores += s
        logppls += lp
        lengths += [2 + (g + i) % (width - 2) for i in range(len(s))]
    lp, mask = token_logprobs(logppls, lengths, width)
    data = DataProto.from_dict(
        tensors={"rollout_log_probs": lp, "response_mask": mask},
        non_tensors={"uid": np.array(uids, dtype=object)},
    )
    data.batch["token_level_scores"] = outcome_scores(scores, mask)
    data.batch["token_level_rewards"] = data.batch["token_level_scores"]
    return data


class FakeTransferQueue:
    """In-memory stand-in for TransferQueue's key-value API (``kv_batch_get``/``kv_batch_put``).

    Rows are stored per key; reads are built by verl's own ``list_of_dict_to_tensordict``, so the
    trainer code sees the layout the real store returns (nested jagged tensors per response, non-tensor
    stacks for strings and dicts). Fields a row lacks are left out of a read, as TransferQueue does for
    fields nobody wrote (verl asks for ``values``/``ref_log_prob`` unconditionally).
    """

    def __init__(self):
        self.rows: dict[tuple[str, str], dict] = {}
        self.tags: dict[tuple[str, str], dict] = {}

    def add(self, partition_id: str, keys: list[str], rows: list[dict], tags: list[dict]):
        from transfer_queue import KVBatchMeta

        for key, row, tag in zip(keys, rows, tags, strict=True):
            self.rows[(partition_id, key)] = dict(row)
            self.tags[(partition_id, key)] = dict(tag)
        return KVBatchMeta(keys=list(keys), tags=list(tags), partition_id=partition_id)

    def kv_batch_get(self, keys, partition_id, select_fields=None):
        from verl.utils.tensordict_utils import list_of_dict_to_tensordict

        rows = [self.rows[(partition_id, key)] for key in keys]
        names = list(select_fields) if select_fields is not None else list(rows[0])
        present = [name for name in names if all(name in row for row in rows)]
        return list_of_dict_to_tensordict([{name: row[name] for name in present} for row in rows])

    def kv_batch_put(self, keys, partition_id, fields=None, tags=None):
        from tensordict.tensorclass import NonTensorData
        from transfer_queue import KVBatchMeta

        for i, key in enumerate(keys):
            if fields is not None:
                row = fields[i]
                for name in fields.keys():
                    value = row[name]
                    self.rows[(partition_id, key)][name] = value.data if isinstance(value, NonTensorData) else value
            if tags is not None:
                self.tags[(partition_id, key)].update(tags[i])
        return KVBatchMeta(keys=list(keys), tags=[self.tags[(partition_id, k)] for k in keys],
                           partition_id=partition_id)

    def kv_clear(self, partition_id, keys):
        for key in keys:
            self.rows.pop((partition_id, key), None)
            self.tags.pop((partition_id, key), None)

    def field(self, partition_id: str, keys: list[str], name: str) -> list:
        return [self.rows[(partition_id, key)][name] for key in keys]


def trajectory_rows(groups, width: int = 6, acc_of=lambda score: float(score > 0)):
    """TransferQueue rows for ``(uid, scores, logppls)`` groups: keys ``{uid}_{session}_0``.

    ``rm_scores`` carries the score on the last response token (as verl's reward loop writes it);
    ``extra_fields.reward_extra_info.acc`` is the verifier's correctness.
    """
    keys, rows, tags = [], [], []
    for g, (uid, scores, logppls) in enumerate(groups):
        for j, (score, lp) in enumerate(zip(scores, logppls)):
            length = 2 + (g + j) % (width - 2)
            rm = torch.zeros(length)
            rm[-1] = score
            keys.append(f"{uid}_{j}_0")
            rows.append({
                "uid": uid,
                "response_mask": torch.ones(length, dtype=torch.int64),
                "rm_scores": rm,
                "rollout_log_probs": torch.full((length,), -lp),
                "old_log_probs": torch.full((length,), -lp - 0.05),
                # padding rows carry no verifier field: DiPO must not read them
                "extra_fields": {"reward_extra_info": {} if uid.startswith("pad") else {"acc": acc_of(score)}},
            })
            tags.append({"seq_len": 10 + length, "is_padding": uid.startswith("pad")})
    return keys, rows, tags


def apply_dipo(data: DataProto, dipo: DiPO, logprob_key: str = "rollout_log_probs", **kwargs) -> BatchDiPO:
    """What the DiPO trainer does to verl's padded batch: the adapter's term on plain tensors, applied to
    ``advantages`` (and ``returns``, which GRPO sets equal) in place."""
    batch = data.batch
    term = dipo_term(dipo, batch["token_level_scores"].sum(-1), batch[logprob_key], batch["response_mask"],
                     data.non_tensor_batch["uid"], **kwargs)
    batch["advantages"] = add_term(batch["advantages"], batch["response_mask"], term)
    batch["returns"] = batch["advantages"].clone()
    return term
