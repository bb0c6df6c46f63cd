"""The verl.plugins entry point and the launcher, each in a fresh interpreter (as verl's processes start)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("verl.protocol")  # not bare "verl": tests/verl itself would satisfy that

# each starts a fresh interpreter that imports verl's trainer stack (~10 s on 2 cores)
pytestmark = [pytest.mark.verl]
REPO = Path(__file__).resolve().parents[2]

PLUGIN_PROBE = """
import json, sys
import verl
light = "dipo.engines.verl.trainer" not in sys.modules  # `import verl` alone must stay light
from verl.trainer.ppo.v1 import get_trainer_cls
try:
    name = get_trainer_cls("dipo_sync").__name__
except ValueError as err:
    name = str(err)
print(json.dumps({"light": light, "plugin_loaded": "dipo.engines.verl.plugin" in sys.modules, "trainer": name}))
"""


def run(args, env_extra=None, timeout=120):
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "RAY_USAGE_STATS_ENABLED": "0", **(env_extra or {})}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def probe(env_extra=None) -> dict:
    proc = run(["-c", PLUGIN_PROBE], env_extra)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_plugin_registers_dipo_trainer_modes_in_verls_own_processes_and_stays_light():
    assert probe() == {"light": True, "plugin_loaded": True, "trainer": "DiPOPPOTrainerSync"}
    # with verl's plugin discovery off, nothing registers them: the plugin is what does it
    off = probe({"VERL_USE_EXTERNAL_PLUGINS": "none"})
    assert not off["plugin_loaded"] and "Unknown trainer 'dipo_sync'" in off["trainer"]


@pytest.mark.slow
def test_launcher_composes_a_recipe_with_hydra_overrides():
    proc = run(["-m", "dipo.engines.verl.main", f"--config-path={REPO / 'configs' / 'verl'}",
                "--config-name=qwen3_8b_base_math_dipo", "dipo.alpha=0.2", "actor_rollout_ref.rollout.n=16",
                "--cfg", "job", "--resolve"], {"DIPO_DATA_DIR": "/tmp/d"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    import yaml

    cfg = yaml.safe_load(proc.stdout)
    assert cfg["dipo"]["alpha"] == 0.2 and cfg["actor_rollout_ref"]["rollout"]["n"] == 16
    assert cfg["data"]["train_files"] == "/tmp/d/verl/dapo_math_17k.parquet"
    assert cfg["trainer"]["v1"]["trainer_mode"] == "dipo_sync"


@pytest.mark.slow
def test_launcher_refuses_a_bad_dipo_setting_before_starting_ray():
    proc = run(["-m", "dipo.engines.verl.main", f"--config-path={REPO / 'configs' / 'verl'}",
                "--config-name=qwen3_8b_base_math_dipo", "dipo.confidence=1.5"])
    assert proc.returncode != 0
    assert "dipo.confidence=1.5" in proc.stderr and "ray init kwargs" not in proc.stdout


def test_task_runner_is_verls_v1_runner_with_dipo_registration():
    from verl.trainer.main_ppo import TaskRunnerV1

    from dipo.engines.verl.main import DiPOTaskRunner

    assert issubclass(DiPOTaskRunner.__ray_actor_class__, TaskRunnerV1.__ray_actor_class__)
