"""TRL engine: `DiPOTrainer` (a `trl.GRPOTrainer` subclass) and `DiPOConfig` (a `trl.GRPOConfig` subclass).

    from dipo.engines.trl import DiPOConfig, DiPOTrainer
    from dipo.rewards import math_reward
    args = DiPOConfig(output_dir="runs/x", method="dipo")   # or grpo | dapo | cde
    DiPOTrainer(model="Qwen/Qwen3-8B-Base", reward_funcs=math_reward, args=args, train_dataset=ds).train()

From the shell: `dipo train --config configs/trl/testbed_math_dipo.yaml [--field value ...]`. Pinned to trl 1.16.
"""

from dipo.engines.trl.config import METHODS, DiPOConfig
from dipo.engines.trl.trainer import DiPOTrainer

__all__ = ["METHODS", "DiPOConfig", "DiPOTrainer"]
