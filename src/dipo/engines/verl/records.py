"""Optional run-directory output for verl runs, in the project's format (``dipo analyze`` reads it).

``DIR/rollouts/step-000001.parquet`` (one row per participating sample) and ``DIR/metrics.jsonl``
(DiPO's metrics, one line per step), written by the engine kit (:mod:`dipo.engines.kit`).
verl's own logger still receives every metric.
"""

from __future__ import annotations

from dipo.core import DiPOStep
from dipo.engines.kit import RunLog, step_records


class RecordWriter:
    def __init__(self, run_dir: str) -> None:
        self.log = RunLog(run_dir)

    def write(self, step: int, result: DiPOStep, prompt_ids, lengths, truncated, metrics: dict) -> str:
        """Write one step; returns the parquet path. ``prompt_ids``/``lengths``/``truncated`` are ``[M]``."""
        # several advantage passes in one step (separate_async parameter_sync_step) append to one file
        path = self.log.write_rollouts(step, step_records(result, step, prompt_ids, lengths, truncated), append=True)
        self.log.append_metrics(step, metrics)
        return str(path)
