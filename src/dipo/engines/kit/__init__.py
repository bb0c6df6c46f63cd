"""What every DiPO engine shares (TRL, verl, a user's own loop), on the floor beside the core.

- run directory: `CONFIG_FILE`, `METRICS_FILE`, `ROLLOUTS_DIR`, `rollout_path`, `ROLLOUT_COLUMNS`, `METRIC_KEYS`,
  `step_records` (records assembled once) and `RunLog` (the writer) -- `dipo.analysis` reads what these write;
- the checkpoint state file: `STATE_FILE`, `save_state`, `load_state`;
- the correctness rule: `is_correct` (``verifier_reward >= r_max - 1e-6``, from the core), and which reward
  functions decide it: `resolve_correctness_funcs`, `verifier_rewards` (`correctness`);
- reward functions that cannot kill a run: `guard_reward` (`reward_guard`);
- the reward registry: `REWARD_FUNCTIONS`, `reward_target` (checks a name, imports nothing), `reward_function(s)`
  (built-in names or dotted paths), from `dipo.rewards.registry`;
- the dataset registry: `DATASET_LOADERS`, `register_dataset`, `resolve_dataset`, `load_prompt_dataset`,
  `DatasetOptions` (``testbed:math``, ``labels:PATH``, files, short names, hub ids, or your own), from
  `dipo.data.registry` (the testbed registers its tasks there through the ``dipo.datasets`` entry point).

Names are imported on first use, so reading the run-directory schema (`dipo analyze`) loads no torch.
docs/engines.md lists what an engine does with them, in order.
"""

from importlib import import_module

_SOURCES = {
    "METRIC_KEYS": ("dipo.core.step", "STEP_METRIC_KEYS"),
    "is_correct": ("dipo.core.brr", "is_correct"),
    **{name: ("dipo.data.registry", name) for name in (
        "DATASET_LOADERS", "DatasetOptions", "load_prompt_dataset", "register_dataset", "resolve_dataset")},
    **{name: ("dipo.rewards.registry", name) for name in ("REWARD_FUNCTIONS", "reward_target", "reward_function",
                                                          "reward_functions")},
    **{name: ("dipo.engines.kit.correctness", name) for name in ("resolve_correctness_funcs", "verifier_rewards")},
    "guard_reward": ("dipo.engines.kit.reward_guard", "guard_reward"),
    **{name: ("dipo.engines.kit.run_dir", name) for name in (
        "RunLock", "check_run_dir", "clear_run_dir", "complete_checkpoints", "resolve_resume", "run_contents")},
    **{name: ("dipo.data.run_files", name) for name in (
        "CONFIG_FILE", "METRICS_FILE", "OPTIONAL_ROLLOUT_COLUMNS", "ROLLOUT_COLUMNS", "ROLLOUTS_DIR", "RunLog", "append_metrics",
        "rollout_path", "step_records", "truncate_metrics", "write_rollouts")},
    **{name: ("dipo.engines.kit.state", name) for name in ("STATE_FILE", "load_state", "save_state")},
}
__all__ = sorted(_SOURCES)


def __getattr__(name: str):
    if name not in _SOURCES:
        raise AttributeError(f"module 'dipo.engines.kit' has no attribute {name!r}")
    module, attr = _SOURCES[name]
    value = getattr(import_module(module), attr)
    globals()[name] = value  # later lookups skip this function
    return value
