"""Reading rows from local files (JSON Lines, JSON, Parquet) or Hugging Face dataset ids.

Every error names the file, and where it applies the row and the field.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_SUFFIXES = (".jsonl", ".json", ".parquet", ".ndjson")


class DataError(ValueError):
    """A dataset file or row is unreadable or lacks a field; the message says where."""


def read_records(path: str | Path) -> list[dict]:
    """Rows of a local `.jsonl`/`.ndjson`, `.json` (a list of objects, an object holding one
    list, or JSON Lines despite the suffix, as BFCL ships) or `.parquet` file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many types
            raise DataError(f"{path}: unreadable Parquet file: {exc}") from exc
    if suffix not in (".jsonl", ".ndjson", ".json"):
        raise DataError(f"{path}: unsupported file type {suffix!r}; use .jsonl, .json or .parquet")
    text = path.read_text(encoding="utf-8")
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None  # maybe JSON Lines with a .json suffix
        if isinstance(data, dict):
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise DataError(f"{path}: a JSON object must hold exactly one list of rows")
            data = lists[0]
        if isinstance(data, list):
            return _check_rows(path, data)
    rows = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: line {line_no}: invalid JSON: {exc.msg}") from exc
    return _check_rows(path, rows, first_line=True)


def _check_rows(path: Path, rows: list, first_line: bool = False) -> list[dict]:
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            where = f"line {i + 1}" if first_line else f"row {i}"
            raise DataError(f"{path}: {where}: expected a JSON object, got {type(row).__name__}")
    return rows


def looks_like_hub_id(spec: str) -> bool:
    return bool(_HUB_ID.match(spec)) and not spec.endswith(_SUFFIXES) and not os.path.exists(spec)


def load_records(path_or_id: str | Path, split: str = "train", name: str | None = None) -> list[dict]:
    """Rows from a local file, or from the Hugging Face hub when `path_or_id` is a dataset id
    (`owner/name`, or `hf:owner/name`) and no such local path exists (needs network access)."""
    spec = str(path_or_id)
    if spec.startswith("hf:") or looks_like_hub_id(spec):
        from datasets import load_dataset

        dataset_id = spec.removeprefix("hf:")
        try:
            return list(load_dataset(dataset_id, name, split=split))
        except Exception as exc:  # noqa: BLE001 - network, auth, missing split...
            raise DataError(f"{dataset_id}: cannot load split {split!r} from the Hugging Face hub: {exc}") from exc
    return read_records(spec)


def require(row: dict, field: str, source: str, index: int) -> Any:
    """`row[field]` (dotted paths reach into nested objects), or a DataError naming where."""
    value: Any = row
    for part in field.split("."):
        if not isinstance(value, dict) or part not in value or value[part] is None:
            keys = sorted(row) if isinstance(row, dict) else []
            raise DataError(f"{source}: row {index}: missing field {field!r} (row has {keys})")
        value = value[part]
    return value
