"""The run directory's logs: `metrics.jsonl` (one object per logged step) and per-step rollout records.

Layout (read by `dipo analyze`): `RUN/metrics.jsonl`, `RUN/rollouts/step-000001.parquet` with the
columns in `ROLLOUT_COLUMNS` (the TRL engine adds `round` and `kept` from dynamic sampling). Shared by
the TRL and verl engines, so it imports neither. Only the main process (the verl driver) writes; the
records it gets are already gathered from every process.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

ROLLOUT_COLUMNS = (
    "step", "prompt_id", "group_id", "group_kind", "reward", "realloc_reward", "advantage", "logppl",
    "quadrant", "fired", "chosen", "length", "truncated",
)


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
