"""Optional run-directory output for verl runs, in the project's format (``dipo analyze`` reads it).

``DIR/rollouts/step-000001.parquet`` (one row per participating sample) and ``DIR/metrics.jsonl``
(DiPO's metrics, one line per step), written by the engine-neutral :mod:`dipo.engines.run_log`.
verl's own logger still receives every metric.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dipo.core import DiPOStep
from dipo.engines.run_log import append_metrics, write_rollouts


class RecordWriter:
    def __init__(self, run_dir: str) -> None:
        self.run_dir = Path(run_dir)
        (self.run_dir / "rollouts").mkdir(parents=True, exist_ok=True)

    def write(self, step: int, result: DiPOStep, prompt_ids, lengths, truncated, metrics: dict) -> str:
        """Write one step; returns the parquet path. ``prompt_ids``/``lengths``/``truncated`` are ``[M]``."""
        columns = result.records()
        n = len(columns["reward"])
        path = self.run_dir / "rollouts" / f"step-{step:06d}.parquet"
        # several advantage passes in one step (separate_async parameter_sync_step) append to one file
        write_rollouts(path, {
            "step": np.full(n, step, dtype=np.int64),
            "prompt_id": np.asarray(prompt_ids).astype(str),
            **columns,
            "length": np.asarray(lengths, dtype=np.int64),
            "truncated": np.asarray(truncated, dtype=bool),
        }, append=True)
        append_metrics(self.run_dir / "metrics.jsonl", step, metrics)
        return str(path)
