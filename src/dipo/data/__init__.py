"""Dataset loading (local JSONL/JSON/Parquet, Hugging Face ids), the dataset registry, prompt building, and
the run directory's file schema (`dipo.data.run_files`, which engines write and `dipo.analysis` reads)."""

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
from dipo.data.registry import (
    DATASET_LOADERS,
    DatasetOptions,
    load_prompt_dataset,
    register_dataset,
    resolve_dataset,
)

__all__ = [
    "DATASET_LOADERS",
    "DatasetOptions",
    "load_prompt_dataset",
    "register_dataset",
    "resolve_dataset",
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
