"""Recipe-style launcher: ``python -m dipo.engines.verl.main [--config-path DIR --config-name NAME] key=value ...``

Same as verl's ``python -m verl.trainer.main_ppo`` (Hydra config, Ray init, remote task runner) with
DiPO's base config (``conf/dipo_trainer.yaml``) and a task runner that imports the DiPO trainers
itself, so it works even with ``VERL_USE_EXTERNAL_PLUGINS=none``. The config is validated for DiPO
on the driver, before Ray starts.
"""

from __future__ import annotations

import hydra
import ray
from verl.trainer.main_ppo import TaskRunnerV1, run_ppo
from verl.trainer.ppo.utils import need_critic, need_reference_policy
from verl.utils.config import validate_config
from verl.utils.device import auto_set_device

from dipo.engines.verl.config import DIPO_ESTIMATOR, DIPO_TRAINER_MODES, validate_verl_config
from dipo.engines.verl.filter import filter_is_dipo_aware


def check_config(config) -> None:
    """verl's own validation plus DiPO's; raises ValueError naming the field. ``algorithm.adv_estimator=dipo``
    with one of verl's plain trainer modes selects that mode's DiPO trainer (``sync`` -> ``dipo_sync``)."""
    mode = config.trainer.v1.trainer_mode
    plain_modes = {base: dipo for dipo, base in DIPO_TRAINER_MODES.items()}
    if config.algorithm.adv_estimator == DIPO_ESTIMATOR and mode in plain_modes:  # the verl user's switch
        mode = config.trainer.v1.trainer_mode = plain_modes[mode]
    if mode not in DIPO_TRAINER_MODES:
        raise ValueError(f"trainer.v1.trainer_mode={mode!r}: the DiPO launcher needs one of {sorted(DIPO_TRAINER_MODES)}")
    validate_verl_config(config, dipo_aware_filter=filter_is_dipo_aware(config))
    validate_config(config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))


@ray.remote(num_cpus=1)
class DiPOTaskRunner(TaskRunnerV1.__ray_actor_class__):
    """verl's V1 task runner, with the DiPO trainer modes registered in its process."""

    def run(self, config):
        from dipo.engines.verl.trainer import register_trainers

        register_trainers()
        return super().run(config)


@hydra.main(config_path="conf", config_name="dipo_trainer", version_base=None)
def main(config) -> None:
    auto_set_device(config)
    check_config(config)
    run_ppo(config, task_runner_class=DiPOTaskRunner)


if __name__ == "__main__":
    main()
