"""The DiPO trainer mixin's data flow inside verl's V1 trainer, with TransferQueue faked in memory.

verl's real ``PPOTrainer._compute_advantage`` / ``_save_checkpoint`` / ``_load_checkpoint`` run; only
the transfer layer (TransferQueue) and the worker groups (actor, dataloader) are stand-ins.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("verl.protocol")  # not bare "verl": tests/verl itself would satisfy that
pytestmark = pytest.mark.verl

import transfer_queue.interface  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from verl.trainer.ppo.v1 import get_trainer_cls, replay_buffer, trainer_base  # noqa: E402
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer  # noqa: E402
from verl.utils.tracking import Tracking  # noqa: E402
from verl_batches import PRIOR_CORRECT, PRIOR_LOGPPL, FakeTransferQueue, trajectory_rows  # noqa: E402

from dipo.engines.kit import STATE_FILE  # noqa: E402
from dipo.engines.verl import filter as dipo_filter  # noqa: E402
from dipo.engines.verl import trainer as dipo_trainer  # noqa: E402
from dipo.engines.verl.filter import DiPOGroupFilter  # noqa: E402

RECIPES = Path(__file__).resolve().parents[2] / "configs" / "verl"
CONTRACT_KEYS = {
    "dipo/frac_easy", "dipo/frac_normal", "dipo/frac_hard", "dipo/fired_hard", "dipo/fired_easy",
    "dipo/threshold", "dipo/split_valid", "dipo/split_error", "dipo/quadrant_CL", "dipo/quadrant_CH",
    "dipo/quadrant_EL", "dipo/quadrant_EH", "dipo/logppl_correct", "dipo/logppl_wrong", "dipo/accuracy",
    "dipo/queue_size",
}
# dapo-style scores: +1 right / -1 wrong (acc = 1 / 0)
GROUPS = [
    ("normal", [1.0, -1.0, 1.0, -1.0], [0.3, 1.5, 0.4, 1.6]),
    ("hardlow", [-1.0, -1.0, -1.0, -1.0], [0.3, 0.5, 0.35, 0.4]),   # confidently wrong: fires
    ("easyhigh", [1.0, 1.0, 1.0, 1.0], [1.5, 1.7, 1.9, 1.6]),       # uncertain right: fires
    ("hardhigh", [-1.0, -1.0, -1.0, -1.0], [1.5, 1.6, 1.7, 1.8]),   # untouched
    ("padAB", [0.0, 0.0], [0.3, 0.3]),                               # rank padding: no group
]


def config(overrides=()):
    with initialize_config_dir(config_dir=str(RECIPES), version_base=None):
        return compose(config_name="qwen3_8b_base_math_dipo", overrides=list(overrides))


@pytest.fixture
def fake_tq(monkeypatch):
    fake = FakeTransferQueue()
    for module in (trainer_base, replay_buffer, dipo_trainer, dipo_filter):
        monkeypatch.setattr(module, "tq", fake)

    def no_real_store(*args, **kwargs):  # a path that escaped the fake must not start Ray
        raise AssertionError("TransferQueue is faked in these tests")

    monkeypatch.setattr(transfer_queue.interface, "_maybe_create_tq_client", no_real_store)
    return fake


def bare_trainer(cfg):
    """A DiPO sync trainer without workers: what the advantage step and checkpoints need."""
    trainer = object.__new__(get_trainer_cls("dipo_sync"))
    trainer.config = cfg
    trainer._init_dipo(cfg)
    trainer.global_steps = 1
    trainer.trainer_mode = "sync"
    trainer.use_critic = False
    return trainer


def seq_values(nested_rows) -> torch.Tensor:
    values = []
    for row in nested_rows:
        assert torch.allclose(row, row[0].expand_as(row))  # one advantage per sequence, on every token
        values.append(float(row[0]))
    return torch.tensor(values)


def grpo(scores: list[float]) -> torch.Tensor:
    s = torch.tensor(scores)
    return (s - s.mean()) / (s.std() + 1e-6)


def test_dipo_trainer_modes_are_registered_with_verl():
    for mode, base in (("dipo_sync", "PPOTrainerSync"), ("dipo_colocate_async", "PPOTrainerColocateAsync"),
                       ("dipo_separate_async", "PPOTrainerSeparateAsync")):
        cls = get_trainer_cls(mode)
        assert issubclass(cls, dipo_trainer.DiPOTrainerMixin) and cls.__mro__[2].__name__ == base


def test_advantage_step_reads_the_batch_applies_dipo_writes_back_and_logs(fake_tq, tmp_path, monkeypatch):
    cfg = config()
    trainer = bare_trainer(cfg)
    trainer.dipo.queue.push(PRIOR_LOGPPL, PRIOR_CORRECT)
    keys, rows, tags = trajectory_rows(GROUPS)
    batch = fake_tq.add("train", keys, rows, tags)
    raw_scores = [t.clone() for t in fake_tq.field("train", keys, "rm_scores")]

    metrics: dict = {}
    out = trainer._compute_advantage(batch, metrics)

    assert out.keys == keys
    adv = seq_values(fake_tq.field("train", keys, "advantages"))
    assert torch.equal(torch.stack([r[0] for r in fake_tq.field("train", keys, "returns")]), adv)
    torch.testing.assert_close(adv[0:4], grpo([1.0, -1.0, 1.0, -1.0]), atol=1e-6, rtol=0)  # verl's A(R)
    torch.testing.assert_close(adv[4:8], 0.1 * torch.tensor([-0.5, 1.5, -0.5, -0.5]), atol=1e-5, rtol=0)
    torch.testing.assert_close(adv[8:12], 0.1 * torch.tensor([0.5, 0.5, -1.5, 0.5]), atol=1e-5, rtol=0)
    assert torch.all(adv[12:] == 0)  # hardhigh (not fired) and padding rows
    for before, after in zip(raw_scores, fake_tq.field("train", keys, "rm_scores")):
        assert torch.equal(before, after)  # verifier scores kept as they were, for verl's logging

    assert CONTRACT_KEYS <= metrics.keys()
    assert metrics["dipo/fired_hard"] == metrics["dipo/fired_easy"] == 1.0
    assert metrics["dipo/frac_hard"] == pytest.approx(0.5)  # 2 of 4 real groups; padding excluded
    assert metrics["dipo/accuracy"] == pytest.approx(6 / 16)  # from reward_extra_info.acc
    assert metrics["dipo/queue_size"] == len(PRIOR_LOGPPL) + 16
    # log-PPL came from the rollout's log-probs (not old_log_probs, which differ by 0.05)
    assert metrics["dipo/logppl_wrong"] == pytest.approx(np.mean([1.5, 1.6, 0.3, 0.5, 0.35, 0.4,
                                                                  1.5, 1.6, 1.7, 1.8]), abs=1e-5)
    # verl's logger receives them as any other metric (file backend = one JSON line per step)
    log_file = tmp_path / "metrics.jsonl"
    monkeypatch.setenv("VERL_FILE_LOGGER_PATH", str(log_file))
    tracking = Tracking(project_name="p", experiment_name="e", default_backend=["file"], config={})
    tracking.log(data=metrics, step=1)
    tracking.logger["file"].finish()
    logged = json.loads(log_file.read_text().splitlines()[0])["data"]
    assert logged["dipo/fired_hard"] == 1.0 and CONTRACT_KEYS <= logged.keys()


def test_records_dir_writes_the_run_directory_format(fake_tq, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    trainer = bare_trainer(config([f"dipo.records_dir={tmp_path}", "dipo.logprob_source=old"]))
    keys, rows, tags = trajectory_rows(GROUPS)
    trainer._compute_advantage(fake_tq.add("train", keys, rows, tags), {})
    table = pq.read_table(tmp_path / "rollouts" / "step-000001.parquet").to_pandas()
    assert len(table) == 16 and set(table.prompt_id) == {"normal", "hardlow", "easyhigh", "hardhigh"}
    assert {"group_kind", "realloc_reward", "advantage", "logppl", "quadrant", "fired", "chosen",
            "length", "truncated"} <= set(table.columns)
    assert table.logppl.iloc[0] == pytest.approx(0.35)  # old_log_probs = rollout - 0.05
    line = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert line["step"] == 1 and "dipo/threshold" in line
    # a second advantage pass in the same step (parameter_sync_step > 1) appends to that step's file
    trainer._compute_advantage(fake_tq.add("train", keys, rows, tags), {})
    assert len(pq.read_table(tmp_path / "rollouts" / "step-000001.parquet")) == 32


def test_missing_rollout_logprobs_is_a_clear_error(fake_tq):
    trainer = bare_trainer(config())
    keys, rows, tags = trajectory_rows(GROUPS[:1])
    for row in rows:
        del row["rollout_log_probs"]
    with pytest.raises(KeyError, match="calculate_log_probs"):
        trainer._compute_advantage(fake_tq.add("train", keys, rows, tags), {})


class _Workers:
    def __init__(self):
        self.saved = []

    def save_checkpoint(self, local_path, *args, **kwargs):
        self.saved.append(local_path)

    def load_checkpoint(self, local_path, **kwargs):
        self.loaded = local_path


class _Loader:
    def state_dict(self):
        return {"pos": 3}

    def load_state_dict(self, state):
        self.state = state


class _Callback:
    def on_save(self, **kwargs):
        pass


def checkpointable(cfg):
    trainer = bare_trainer(cfg)
    trainer.actor_rollout_wg, trainer.train_dataloader, trainer.checkpoint_callback = _Workers(), _Loader(), _Callback()
    return trainer


def test_queue_is_saved_and_restored_with_verl_checkpoints(tmp_path):
    cfg = config([f"trainer.default_local_dir={tmp_path}", "trainer.resume_mode=auto"])
    trainer = checkpointable(cfg)
    trainer.dipo.queue.push(PRIOR_LOGPPL, PRIOR_CORRECT)
    trainer.global_steps = 7
    trainer._save_checkpoint()  # DiPO's queue first, then verl's actor/dataloader/tracker
    assert (tmp_path / "global_step_7" / STATE_FILE).exists()
    assert (tmp_path / "latest_checkpointed_iteration.txt").read_text() == "7"

    resumed = checkpointable(cfg)
    assert len(resumed.dipo.queue) == 0
    resumed._load_checkpoint()
    assert resumed.global_steps == 7
    np.testing.assert_array_equal(resumed.dipo.queue.logppl, trainer.dipo.queue.logppl)
    np.testing.assert_array_equal(resumed.dipo.queue.correct, trainer.dipo.queue.correct)
    assert resumed.train_dataloader.state == {"pos": 3}

    # resume_path mode loads from the named folder, and later saves still go to default_local_dir
    by_path = checkpointable(config([f"trainer.default_local_dir={tmp_path / 'next'}", "trainer.resume_mode=resume_path",
                                     f"trainer.resume_from_path={tmp_path / 'global_step_7'}"]))
    by_path._load_checkpoint()
    assert len(by_path.dipo.queue) == len(PRIOR_LOGPPL)
    by_path.global_steps = 8
    by_path._save_checkpoint()
    assert (tmp_path / "next" / "global_step_8" / STATE_FILE).exists()

    (tmp_path / "global_step_7" / STATE_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="dipo_state.pt: cannot restore the DiPO state"):
        checkpointable(cfg)._load_checkpoint()


def filtered_groups(cfg, fake_tq, prime: bool):
    """Build the trainer's replay buffer as verl does and run its group filter on GROUPS[:4]."""
    trainer = bare_trainer(cfg)
    if prime:
        trainer.dipo.queue.push(PRIOR_LOGPPL, PRIOR_CORRECT)
    buffer = trainer._build_replay_buffer()
    keys, rows, tags = trajectory_rows(GROUPS[:4])
    fake_tq.add("train", keys, rows, tags)
    buffer.partitions["train"] = {key: {} for key in keys}
    buffer.finished_keys["train"] = {g[0] for g in GROUPS[:4]}
    return trainer, buffer


FILTER_ON = ["algorithm.filter_groups.enable=true", "algorithm.filter_groups.metric=acc"]


def test_dipo_aware_filter_keeps_the_extreme_groups_brr_would_reallocate(fake_tq):
    trainer, buffer = filtered_groups(config(FILTER_ON), fake_tq, prime=True)
    assert isinstance(buffer, DiPOGroupFilter) and isinstance(buffer, ReplayBuffer)
    plain, _ = ReplayBuffer._dapo_filtered_keys(buffer, "train")
    assert plain == {"hardlow", "easyhigh", "hardhigh"}  # DAPO drops every constant group
    filtered, counts = buffer._dapo_filtered_keys("train")
    assert filtered == {"hardhigh"}  # the two groups BRR would reallocate stay in the batch
    assert counts == {0.0: 1}
    assert len(trainer.dipo.queue) == len(PRIOR_LOGPPL)  # judging does not touch the queue


def test_dipo_aware_filter_on_an_empty_queue_is_dapo_and_no_filter_means_verls_buffer(fake_tq):
    _, buffer = filtered_groups(config(FILTER_ON), fake_tq, prime=False)
    assert buffer._dapo_filtered_keys("train")[0] == {"hardlow", "easyhigh", "hardhigh"}
    _, plain = filtered_groups(config(["algorithm.filter_groups.enable=false"]), fake_tq, prime=True)
    assert type(plain) is ReplayBuffer and plain.filter_groups_metric is None


PROMPT_LEN = 3


class _Actor:
    """Stand-in for the actor worker group: writes log-probs/entropy as the model would (full sequence,
    nested) and records what the policy update reads from TransferQueue."""

    def __init__(self, store: FakeTransferQueue):
        self.store, self._dispatch_info, self.trained_on = store, {"actor": [0]}, None

    def compute_log_prob(self, batch):
        from verl.utils.tensordict_utils import list_of_dict_to_tensordict

        out = []
        for key in batch.keys:
            resp = self.store.rows[(batch.partition_id, key)]["rollout_log_probs"]
            pad = (torch.zeros(PROMPT_LEN), torch.zeros(1))  # model output is shifted by one token
            out.append({"log_probs": torch.cat([pad[0], resp - 0.05, pad[1]]),
                        "entropy": torch.cat([pad[0], torch.full_like(resp, 0.7), pad[1]])})
        self.store.kv_batch_put(batch.keys, batch.partition_id, fields=list_of_dict_to_tensordict(out))
        return batch

    def update_actor(self, batch):
        data = self.store.kv_batch_get(batch.keys, batch.partition_id, ["advantages", "old_log_probs"])
        self.trained_on = dict(zip(batch.keys, seq_values(data["advantages"]).tolist()))
        return {"metrics": {"mfu": [0.0], "pg_loss": [0.1]}}


class _Sampler:
    def __init__(self, batch):
        self.batch = batch

    def sample(self, global_steps, partition_id, batch_size):
        return self.batch, {}


def test_one_v1_training_step_trains_the_actor_on_dipo_advantages(fake_tq):
    from types import SimpleNamespace

    trainer = bare_trainer(config(["actor_rollout_ref.actor.ppo_mini_batch_size=2"]))  # x n=8: 16 rows, no padding
    trainer.dipo.queue.push(PRIOR_LOGPPL, PRIOR_CORRECT)
    keys, rows, tags = trajectory_rows(GROUPS[:4])
    for row in rows:
        row["responses"] = torch.zeros(len(row["response_mask"]), dtype=torch.int64)
    trainer.replay_buffer = _Sampler(fake_tq.add("train", keys, rows, tags))
    trainer.actor_rollout_wg = actor = _Actor(fake_tq)
    trainer.reward_loop_manager = SimpleNamespace(reward_loop_worker_handles=["streaming reward"])
    trainer.checkpoint_manager = SimpleNamespace(sleep_replicas=lambda: None)
    trainer.tokenizer = SimpleNamespace(eos_token_id=0)
    trainer.curr_step_profile, trainer.use_reference_policy = False, False

    metrics: dict = {}
    trainer._step_once(metrics, timing_raw={}, sample_batch_size=4)  # verl's pipeline, steps 1-9

    trained = torch.tensor([actor.trained_on[key] for key in keys])
    torch.testing.assert_close(trained[0:4], grpo([1.0, -1.0, 1.0, -1.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(trained[4:8], 0.1 * torch.tensor([-0.5, 1.5, -0.5, -0.5]), atol=1e-5, rtol=0)
    torch.testing.assert_close(trained[8:12], 0.1 * torch.tensor([0.5, 0.5, -1.5, 0.5]), atol=1e-5, rtol=0)
    assert torch.all(trained[12:] == 0)
    assert metrics["actor/entropy"] == pytest.approx(0.7) and metrics["actor/pg_loss"] == pytest.approx(0.1)
    assert CONTRACT_KEYS <= metrics.keys() and metrics["dipo/fired_hard"] == 1.0


def test_the_filter_reads_groups_whose_uid_contains_underscores(fake_tq):
    trainer = bare_trainer(config(FILTER_ON))
    buffer = trainer._build_replay_buffer()
    groups = [("hard_low", *GROUPS[1][1:]), ("hard", *GROUPS[3][1:])]  # "hard" is hard_low's prefix
    keys, rows, tags = trajectory_rows(groups)
    fake_tq.add("train", keys, rows, tags)
    buffer.partitions["train"] = {key: {} for key in keys}
    group_ids, logppl, _ = buffer._final_outputs("train", {"hard_low"})
    assert group_ids.tolist() == ["hard_low"] * 4
    np.testing.assert_allclose(sorted(logppl), sorted(GROUPS[1][2]), atol=1e-6)


def test_adv_estimator_dipo_selects_the_dipo_trainer_or_says_what_is_missing():
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    from dipo.engines.verl.main import check_config

    cfg = config(["algorithm.adv_estimator=dipo", "trainer.v1.trainer_mode=sync"])
    check_config(cfg)  # the launcher: verl's sync mode + adv_estimator=dipo -> the DiPO sync trainer
    assert cfg.trainer.v1.trainer_mode == "dipo_sync"
    trainer = bare_trainer(config(["algorithm.adv_estimator=dipo"]))
    assert trainer.config.algorithm.adv_estimator == "grpo"  # verl's A(R) is GRPO's; DiPO adds its term
    # verl's own launcher with a plain trainer mode reaches verl's estimator registry: one clear error
    with pytest.raises(ValueError, match="trainer.v1.trainer_mode=dipo_sync"):
        get_adv_estimator_fn("dipo")()
