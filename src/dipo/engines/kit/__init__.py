"""What every DiPO engine shares (TRL, verl, a user's own loop), on the floor beside the core.

- run directory: `METRICS_FILE`, `rollout_path`, `ROLLOUT_COLUMNS`, `METRIC_KEYS`, `step_records`
  (records assembled once) and `RunLog` (the writer) -- `dipo.analysis` reads what these write;
- the checkpoint state file: `STATE_FILE`, `save_state`, `load_state`;
- the correctness rule: `is_correct` (``verifier_reward >= r_max - 1e-6``, from the core);
- the reward registry: `REWARD_FUNCTIONS`, `reward_function(s)` (built-in names or dotted paths).

docs/engines.md lists what an engine does with them, in order.
"""

from dipo.core import is_correct
from dipo.engines.kit.rewards import REWARD_FUNCTIONS, reward_function, reward_functions
from dipo.engines.kit.run_dir import (
    METRIC_KEYS,
    METRICS_FILE,
    OPTIONAL_ROLLOUT_COLUMNS,
    ROLLOUT_COLUMNS,
    ROLLOUTS_DIR,
    RunLog,
    append_metrics,
    rollout_path,
    step_records,
    truncate_metrics,
    write_rollouts,
)
from dipo.engines.kit.state import STATE_FILE, load_state, save_state

__all__ = [
    "METRICS_FILE",
    "METRIC_KEYS",
    "OPTIONAL_ROLLOUT_COLUMNS",
    "REWARD_FUNCTIONS",
    "ROLLOUTS_DIR",
    "ROLLOUT_COLUMNS",
    "STATE_FILE",
    "RunLog",
    "append_metrics",
    "is_correct",
    "load_state",
    "reward_function",
    "reward_functions",
    "rollout_path",
    "save_state",
    "step_records",
    "truncate_metrics",
    "write_rollouts",
]
