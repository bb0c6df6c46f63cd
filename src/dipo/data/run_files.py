"""The run directory every engine writes and `dipo analyze` reads: names, columns and the writer.

Layout: `RUN/config.yaml` (the resolved config, where the engine writes one), `RUN/metrics.jsonl` (one JSON object per logged step: `step` plus metrics; DiPO's keys are
`dipo.engines.kit.METRIC_KEYS`, the core's `STEP_METRIC_KEYS`) and `RUN/rollouts/step-000001.parquet`
(one row per sample, `ROLLOUT_COLUMNS`; the TRL engine adds `OPTIONAL_ROLLOUT_COLUMNS`). Only the main process (the verl driver)
writes; the records it gets are already gathered from every process. Below every engine and `dipo.analysis`,
which both import it.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch stays out of `dipo analyze`, which reads only the names below
    from dipo.core import DiPOStep

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
ROLLOUTS_DIR = "rollouts"
ROLLOUT_COLUMNS = (
    "step", "prompt_id", "group_id", "group_kind", "reward", "realloc_reward", "advantage", "logppl",
    "quadrant", "fired", "chosen", "length", "truncated",
)
OPTIONAL_ROLLOUT_COLUMNS = ("round", "kept", "shaped_reward")  # TRL's dynamic sampling and reward shaping


def rollout_path(run_dir: str | os.PathLike, step: int) -> Path:
    """`RUN/rollouts/step-000001.parquet`."""
    return Path(run_dir) / ROLLOUTS_DIR / f"step-{int(step):06d}.parquet"


def step_records(result: DiPOStep, step: int, prompt_ids, lengths, truncated, **extra) -> dict[str, np.ndarray]:
    """One step's rollout records (`ROLLOUT_COLUMNS`, ``[N]`` each): the algorithm's columns from
    ``result`` plus the engine's ``prompt_ids``, ``lengths`` (completion tokens), ``truncated``; ``extra``
    columns are added or replace ``result``'s (TRL numbers groups across its refill rounds)."""
    columns = result.records()
    n = len(columns["reward"])
    columns.update(
        step=np.full(n, step, dtype=np.int64),
        prompt_id=np.asarray(prompt_ids).astype(str),
        length=np.asarray(lengths).astype(np.int64),
        truncated=np.asarray(truncated).astype(bool),
    )
    columns.update({key: np.asarray(value) for key, value in extra.items()})
    return {key: columns[key] for key in (*ROLLOUT_COLUMNS, *(k for k in columns if k not in ROLLOUT_COLUMNS))}


class RunLog:
    """The per-step record writer of one run directory (every engine's main process uses one)."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)

    @property
    def metrics_file(self) -> Path:
        return self.run_dir / METRICS_FILE

    def write_rollouts(self, step: int, records: dict, append: bool = False) -> Path:
        path = rollout_path(self.run_dir, step)
        write_rollouts(path, records, append=append)
        return path

    def append_metrics(self, step: int, metrics: dict) -> None:
        append_metrics(self.metrics_file, step, metrics)

    def truncate_metrics(self, last_step: int) -> None:
        truncate_metrics(self.metrics_file, last_step)


def _json_value(value):
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; readers treat null as missing
    return value


def append_metrics(path: Path, step: int, metrics: dict) -> None:
    """Append `{"step": step, **metrics}` as one JSON line (non-finite numbers become null)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {"step": int(step)}
    line.update({k: _json_value(v) for k, v in metrics.items() if isinstance(v, (int, float, np.number))})
    with path.open("a") as f:
        if f.tell() and not _ends_with_newline(path):  # a torn last line: keep it on a line of its own
            f.write("\n")
        f.write(json.dumps(line) + "\n")


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, 2)
        return f.read(1) == b"\n"


def write_rollouts(path: Path, columns: dict[str, np.ndarray | list], append: bool = False) -> None:
    """Write one step's per-sample records as a parquet file (atomic: temp file then rename).

    ``append=True`` adds the rows to an existing file of the same step (an engine that computes
    advantages several times in one step)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    missing = [c for c in ROLLOUT_COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"rollout records are missing columns {missing}")
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({k: np.asarray(v) for k, v in columns.items()})
    if append and path.exists():
        table = pa.concat_tables([pq.read_table(path), table])
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop lines after `last_step` (a resumed run rewrites the steps after its checkpoint)."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if _step(line) is not None and _step(line) <= last_step]
    path.write_text("".join(line + "\n" for line in kept))


def _step(line: str) -> int | None:
    """The step of a metrics line; None for a blank or torn line (a process killed mid-write)."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None
