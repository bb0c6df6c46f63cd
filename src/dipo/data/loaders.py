"""Dataset loaders: maths problems, BFCL categories, ToolRL rows; short benchmark names.

Short names (`aime24`, `math500`, `dapo_math_17k`, `rlla_4k`, ...) name files under a data directory
and resolve, file by file, from the first of: $DIPO_DATA_DIR, `./data` (where `dipo data prepare`
writes by default), `../shared/data` beside the working directory or the checkout. Every loader
returns rows with at least `id`, `prompt` and `answer`, the columns TRL's reward functions and
`dipo.eval` read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dipo.data.io import DataError, load_records, require
from dipo.data.prompts import MATH_INSTRUCTION, bfcl_messages, math_messages, render_prompt

# short name -> file under a data directory (`dipo data prepare NAME` writes the same paths)
MATH_BENCHMARKS = {
    "aime24": "math/aime24.jsonl", "aime25": "math/aime25.jsonl", "amc23": "math/amc23.jsonl",
    "math500": "math/math500.jsonl", "olympiadbench": "math/olympiadbench.jsonl", "gsm8k": "math/gsm8k_test.jsonl",
    "deepmath": "math/deepmath_train.jsonl",
}
MATH_TRAIN_SETS = {"dapo_math_17k": "math/dapo_math_17k.jsonl", "deepmath_103k": "math/deepmath_103k.jsonl"}
TOOL_SETS = {"rlla_4k": "tool/rlla_4k_train.jsonl", "rlla_4k_test": "tool/rlla_4k_test.jsonl",
             "rlla_test": "tool/rlla_test.jsonl"}
SHORT_NAMES = {**MATH_BENCHMARKS, **MATH_TRAIN_SETS, **TOOL_SETS}
BFCL_CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "live_simple", "live_multiple",
                   "live_parallel", "live_parallel_multiple", "irrelevance")
PREPARED_DIR = Path("data")  # `dipo data prepare` output when neither --out nor $DIPO_DATA_DIR is given


def data_dirs() -> list[Path]:
    """Candidate data directories in lookup order (existing or not): $DIPO_DATA_DIR, ./data,
    ../shared/data beside the working directory, then beside the checkout."""
    candidates = [Path(os.environ["DIPO_DATA_DIR"])] if os.environ.get("DIPO_DATA_DIR") else []
    candidates += [PREPARED_DIR, Path.cwd().parent / "shared" / "data",
                   Path(__file__).resolve().parents[4] / "shared" / "data"]
    unique: list[Path] = []
    for candidate in candidates:
        if candidate.resolve() not in [u.resolve() for u in unique]:
            unique.append(candidate)
    return unique


def find_data_file(relative: str | Path) -> Path:
    """The first `<data dir>/<relative>` that exists, or FileNotFoundError naming where it looked."""
    tried = [d / relative for d in data_dirs()]
    for path in tried:
        if path.is_file():
            return path
    raise FileNotFoundError(f"{relative}: not found in {[str(t.parent) for t in tried]}; run `dipo data prepare` "
                            "for it or set DIPO_DATA_DIR")


def data_dir() -> Path:
    """The first existing data directory (see `data_dirs`)."""
    for candidate in data_dirs():
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"data directory not found (tried {[str(c) for c in data_dirs()]}); set DIPO_DATA_DIR")


def resolve_short_name(spec: str) -> str:
    """A short dataset name (`aime24`, `math500`, `dapo_math_17k`, `rlla_4k`, ...) to its file; anything
    else (a path, a hub id) unchanged. A short name whose file exists nowhere raises FileNotFoundError."""
    if spec in SHORT_NAMES and not Path(spec).exists():
        return str(find_data_file(SHORT_NAMES[spec]))
    return spec


resolve_math_benchmark = resolve_short_name  # the older name


def _as_answer(value: Any, source: str, index: int, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataError(f"{source}: row {index}: field {field!r} must be a string or number, got {type(value).__name__}")
    return str(value)


def load_math_dataset(path_or_id: str | Path, problem_field: str = "problem", answer_field: str = "answer",
                      id_field: str | None = "id", split: str = "train", name: str | None = None,
                      limit: int | None = None, tokenizer: Any = None, instruction: str = MATH_INSTRUCTION,
                      system_prompt: str | None = None, as_dataset: bool = True):
    """Maths problems as rows `{"id", "problem", "answer", "prompt"}`.

    path_or_id: a `.jsonl`/`.json`/`.parquet` file, a short name (`aime24`, `aime25`, `amc23`,
    `math500`, `olympiadbench`, `gsm8k`, `deepmath`, `dapo_math_17k`, `deepmath_103k`; see
    `resolve_short_name`) or a Hugging Face dataset id (with
    `split`, `name`). Field names are configurable, dotted for nested fields (`reward_model.ground_truth`).
    `prompt` is the chat-message list (`math_messages`: problem + the paper's instruction), which
    TRL renders with the model's chat template; pass `tokenizer` to get rendered text instead.
    Returns a `datasets.Dataset` (`as_dataset=True`, when `datasets` is installed) or a list.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    source = resolve_short_name(str(path_or_id))
    records = load_records(source, split=split, name=name)
    if limit is not None:
        records = records[:limit]
    rows = []
    for i, record in enumerate(records):
        problem = require(record, problem_field, source, i)
        if not isinstance(problem, str) or not problem.strip():
            raise DataError(f"{source}: row {i}: field {problem_field!r} must be non-empty text")
        answer = _as_answer(require(record, answer_field, source, i), source, i, answer_field)
        row_id = record.get(id_field) if id_field else None
        messages = math_messages(problem, instruction, system_prompt)
        rows.append({"id": str(row_id) if row_id is not None else f"{Path(source).stem}-{i}", "problem": problem,
                     "answer": answer, "prompt": render_prompt(messages, tokenizer) if tokenizer else messages})
    if not rows:
        raise DataError(f"{source}: no rows")
    return _maybe_dataset(rows, as_dataset)


def _maybe_dataset(rows: list[dict], as_dataset: bool):
    if not as_dataset:
        return rows
    try:
        from datasets import Dataset
    except ImportError:
        return rows
    return Dataset.from_list(rows)


def load_bfcl(category: str, data_dir_: str | Path | None = None, limit: int | None = None,
              tokenizer: Any = None) -> list[dict]:
    """One BFCL AST category as rows `{"id", "category", "question", "functions",
    "possible_answer", "prompt"}` (`possible_answer` is None for irrelevance; `prompt` is the
    prompting-mode chat messages, or text when `tokenizer` is given). Only the first turn of
    each question is used (the AST categories are single-turn)."""
    if category not in BFCL_CATEGORIES:
        raise ValueError(f"unknown BFCL category {category!r}; choose from {BFCL_CATEGORIES}")
    questions_file = _bfcl_file(category, Path(data_dir_) if data_dir_ else None)
    root = questions_file.parent
    questions = load_records(questions_file)[:limit]
    answers: dict[str, Any] = {}
    if category != "irrelevance":
        answers_file = root / "possible_answer" / questions_file.name
        answers = {str(require(r, "id", str(answers_file), i)): require(r, "ground_truth", str(answers_file), i)
                   for i, r in enumerate(load_records(answers_file))}
    rows = []
    for i, record in enumerate(questions):
        entry_id = str(require(record, "id", str(questions_file), i))
        turns = require(record, "question", str(questions_file), i)
        functions = require(record, "function", str(questions_file), i)
        if not isinstance(turns, list) or not turns or not isinstance(turns[0], list):
            raise DataError(f"{questions_file}: row {i}: field 'question' must be a list of turns (lists of messages)")
        if category != "irrelevance" and entry_id not in answers:
            raise DataError(f"{questions_file}: row {i}: no possible answer with id {entry_id!r}")
        messages = bfcl_messages(turns[0], functions)
        rows.append({"id": entry_id, "category": category, "question": turns[0], "functions": functions,
                     "possible_answer": answers.get(entry_id),
                     "prompt": render_prompt(messages, tokenizer) if tokenizer else messages})
    return rows


def _bfcl_file(category: str, root: Path | None) -> Path:
    """The category's question file in `root`, else in the first data directory holding it: BFCL v4
    names (as the bfcl-eval wheel ships them) or v3 (`dipo data prepare bfcl_v3`; v3 calls
    `simple_python` just `simple`)."""
    names = [f"BFCL_v4_{category}.json", f"BFCL_v3_{'simple' if category == 'simple_python' else category}.json"]
    roots = [root] if root is not None else [d / "bfcl" for d in data_dirs()]
    for directory in roots:
        for name in names:
            if (directory / name).is_file():
                return directory / name
    if root is not None:
        return root / names[0]  # the loader reports it missing
    raise FileNotFoundError(f"BFCL category {category!r}: no {names[0]} or {names[1]} in {[str(r) for r in roots]}; "
                            "run `dipo data prepare bfcl_v3` or set DIPO_DATA_DIR")


def load_toolrl_dataset(path: str | Path, limit: int | None = None, tokenizer: Any = None, as_dataset: bool = True):
    """ToolRL "rlla" rows as `{"id", "prompt", "answer"}`, `answer` being the gold `<tool_call>`
    text that `dipo.rewards.tool_call_reward` compares against. Accepts the verl-style RL rows
    (`prompt` chat list, `reward_model.ground_truth`) and the SFT rows (`instruction`, `input`,
    `output`). `path` may be a short name: `rlla_4k` (train), `rlla_4k_test`, `rlla_test`."""
    source = resolve_short_name(str(path))
    rows = []
    for i, record in enumerate(load_records(source)[:limit]):
        if "reward_model" in record:
            messages = require(record, "prompt", source, i)
            answer = require(record, "reward_model.ground_truth", source, i)
            row_id = (record.get("extra_info") or {}).get("index", i)
        else:
            messages = [{"role": "system", "content": require(record, "instruction", source, i)},
                        {"role": "user", "content": require(record, "input", source, i)}]
            answer, row_id = require(record, "output", source, i), i
        if not isinstance(messages, list) or not all(isinstance(m, dict) and "content" in m for m in messages):
            raise DataError(f"{source}: row {i}: field 'prompt' must be a list of chat messages")
        rows.append({"id": f"{Path(source).stem}-{row_id}", "answer": str(answer),
                     "prompt": render_prompt(messages, tokenizer) if tokenizer else messages})
    return _maybe_dataset(rows, as_dataset)
