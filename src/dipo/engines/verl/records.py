"""Optional run-directory output for verl runs, in the project's format (``dipo analyze`` reads it).

``DIR/rollouts/step-000001.parquet`` (one row per participating sample) and ``DIR/metrics.jsonl``
(DiPO's metrics, one line per step). verl's own logger still receives every metric.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dipo.core import DiPOStep


class RecordWriter:
    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        os.makedirs(os.path.join(run_dir, "rollouts"), exist_ok=True)

    def write(self, step: int, result: DiPOStep, prompt_ids, lengths, truncated, metrics: dict) -> str:
        """Write one step; returns the parquet path. ``prompt_ids``/``lengths``/``truncated`` are ``[M]``."""
        columns = result.records()
        n = len(columns["reward"])
        table = pa.table({
            "step": np.full(n, step, dtype=np.int64),
            "prompt_id": np.asarray(prompt_ids).astype(str),
            **columns,
            "length": np.asarray(lengths, dtype=np.int64),
            "truncated": np.asarray(truncated, dtype=bool),
        })
        path = os.path.join(self.run_dir, "rollouts", f"step-{step:06d}.parquet")
        if os.path.exists(path):  # several advantage passes in one step (separate_async parameter_sync_step)
            table = pa.concat_tables([pq.read_table(path), table])
        pq.write_table(table, path)
        line = {"step": int(step), **{k: (None if isinstance(v, float) and math.isnan(v) else v)
                                      for k, v in metrics.items()}}
        with open(os.path.join(self.run_dir, "metrics.jsonl"), "a") as f:
            f.write(json.dumps(line) + "\n")
        return path
