"""Dataset loading (local JSONL/JSON/Parquet, Hugging Face ids) and prompt building."""

from dipo.data.io import DataError, load_records, read_records
from dipo.data.loaders import (
    BFCL_CATEGORIES,
    MATH_BENCHMARKS,
    SHORT_NAMES,
    data_dir,
    data_dirs,
    find_data_file,
    load_bfcl,
    load_math_dataset,
    load_toolrl_dataset,
    resolve_math_benchmark,
    resolve_short_name,
)
from dipo.data.prompts import MATH_INSTRUCTION, bfcl_messages, math_messages, math_prompt, render_prompt

__all__ = [
    "BFCL_CATEGORIES",
    "MATH_BENCHMARKS",
    "MATH_INSTRUCTION",
    "SHORT_NAMES",
    "DataError",
    "bfcl_messages",
    "data_dir",
    "data_dirs",
    "find_data_file",
    "load_bfcl",
    "load_math_dataset",
    "load_records",
    "load_toolrl_dataset",
    "math_messages",
    "math_prompt",
    "read_records",
    "render_prompt",
    "resolve_math_benchmark",
    "resolve_short_name",
]
