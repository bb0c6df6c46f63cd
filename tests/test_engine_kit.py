"""The engine kit (dipo.engines.kit): run-directory schema, state file, correctness rule, reward registry."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from dipo.core import DiPO, DiPOConfig, classify_groups
from dipo.engines import kit


def _step(dipo: DiPO | None = None):
    dipo = dipo or DiPO(DiPOConfig())
    rewards = np.array([1, 0, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1], dtype=np.float64)
    logppl = np.linspace(0.2, 1.4, rewards.size)
    return dipo, dipo.step(rewards, logppl, np.repeat([0, 1, 2], 4))


def test_the_kit_imports_no_engine_and_no_trainer_library():
    code = ("import sys, dipo.engines.kit; bad = [m for m in sys.modules if m.split('.')[0] in ('trl', 'verl') "
            "or m.startswith(('dipo.engines.trl', 'dipo.engines.verl', 'dipo.testbed', 'dipo.cli'))]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_reading_the_run_directory_schema_loads_no_torch():
    code = ("import sys; from dipo.engines.kit import METRICS_FILE, ROLLOUTS_DIR, ROLLOUT_COLUMNS; "
            "import dipo.analysis.runs; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # `dipo analyze` starts without torch's import time


def test_metric_keys_are_what_the_core_step_logs():
    _, result = _step()
    assert tuple(result.metrics) == kit.METRIC_KEYS


def test_step_records_are_the_schema_columns_and_the_writer_lays_out_the_run_directory(tmp_path):
    _, result = _step()
    records = kit.step_records(result, 3, [f"p{g}" for g in np.repeat([0, 1, 2], 4)], np.full(12, 7),
                               np.zeros(12, bool), round=np.zeros(12, dtype=np.int64))
    assert tuple(records)[: len(kit.ROLLOUT_COLUMNS)] == kit.ROLLOUT_COLUMNS
    assert list(records)[-1] == "round" and (records["step"] == 3).all() and records["prompt_id"][4] == "p1"
    log = kit.RunLog(tmp_path)
    path = log.write_rollouts(3, records)
    log.append_metrics(3, result.metrics)
    assert path == tmp_path / kit.ROLLOUTS_DIR / "step-000003.parquet" == kit.rollout_path(tmp_path, 3)
    assert pq.read_table(path).column_names == list(records)
    assert (tmp_path / kit.METRICS_FILE).read_text().startswith('{"step": 3, "dipo/frac_easy"')
    del records["quadrant"]
    with pytest.raises(ValueError, match="quadrant"):
        log.write_rollouts(4, records)


def test_state_file_round_trip_is_atomic_and_a_foreign_file_is_named(tmp_path):
    dipo, _ = _step()
    path = tmp_path / "ckpt" / kit.STATE_FILE
    kit.save_state(path, dipo, refill_draws=5)
    assert sorted(p.name for p in path.parent.iterdir()) == [kit.STATE_FILE]  # no temp file left behind
    fresh = DiPO(DiPOConfig())
    state = kit.load_state(path, fresh)
    assert state["refill_draws"] == 5
    np.testing.assert_array_equal(fresh.queue.logppl, dipo.queue.logppl)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"dipo_state.pt: cannot restore the DiPO state"):
        kit.load_state(path, fresh)
    torch.save({"something": "else"}, path)
    with pytest.raises(ValueError, match="no 'dipo' entry"):
        kit.load_state(path)


def test_one_correctness_rule_for_the_step_the_group_kinds_and_the_kit():
    values = np.array([1.0, 1.0 - 5e-7, 1.0 - 2e-6, 0.0])
    assert kit.is_correct(values, 1.0).tolist() == [True, True, False, False]
    result = DiPO(DiPOConfig()).step(values, np.full(4, 0.5), np.arange(4))  # one sample per group
    assert result.correct.tolist() == kit.is_correct(values, 1.0).tolist()
    _, kinds = classify_groups(values, np.arange(4))
    assert kinds.tolist() == ["easy", "easy", "normal", "hard"]


def test_reward_registry_resolves_names_and_both_dotted_spellings():
    from dipo.rewards import math_reward

    assert kit.reward_function("math") is math_reward
    assert kit.reward_functions(["dipo.rewards:math_reward", "dipo.rewards.math_reward"]) == [math_reward] * 2
    assert set(kit.REWARD_FUNCTIONS) >= {"math", "tool_call", "final_number", "label"}
    for name, match in [("maths", r"unknown reward maths \(did you mean math\?\)"), ("no_such_pkg:fn", "cannot import"),
                        ("dipo.rewards:nope", "no function 'nope'")]:
        with pytest.raises(ValueError, match=match):
            kit.reward_function(name)
    # the check configs run before anything loads: same message, nothing imported
    assert kit.reward_target("no_such_pkg:fn") == ("no_such_pkg", "fn")
    with pytest.raises(ValueError, match="did you mean math"):
        kit.reward_target("maths")


def test_trl_data_and_dipo_probe_use_the_kit_registry():
    from dipo import probe
    from dipo.engines.trl import data
    from dipo.rewards import label_reward

    assert data.REWARD_FUNCTIONS is kit.REWARD_FUNCTIONS and data.reward_functions is kit.reward_functions
    assert probe.reward_function("label") is label_reward  # every registered name, not a private list


def test_every_name_docs_engines_md_uses_exists():
    """docs/engines.md is the checklist a new engine follows: each `kit.X`, `dipo.core.X`, `step.X`,
    `DiPO.X` and `RunLog.X` it names must exist (a rename that forgets the doc fails here)."""
    import re
    from pathlib import Path

    import dipo.core
    from dipo.core import DiPOStep

    text = (Path(__file__).resolve().parents[1] / "docs" / "engines.md").read_text()
    roots = {"kit": kit, "dipo.core": dipo.core, "dipo.core.config": dipo.core.config, "step": DiPOStep,
             "DiPO": DiPO, "RunLog": kit.RunLog}
    names = set(re.findall(r"\b(kit|dipo\.core\.config|dipo\.core|step|DiPO|RunLog)\.([A-Za-z_][A-Za-z_0-9.]*)", text))
    assert len(names) >= 20
    for root, dotted in names:
        obj = roots[root]
        for part in dotted.rstrip(".").split("."):
            fields = getattr(obj, "__dataclass_fields__", {})
            assert hasattr(obj, part) or part in fields, f"docs/engines.md: {root}.{dotted} does not exist"
            obj = getattr(obj, part, None) if hasattr(obj, part) else None
            if obj is None:
                break
