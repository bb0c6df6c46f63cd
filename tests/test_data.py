"""dipo.data: the shared data loads as it is; configurable fields; clear errors; prompts."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dipo.data import (
    BFCL_CATEGORIES,
    MATH_BENCHMARKS,
    MATH_INSTRUCTION,
    DataError,
    load_bfcl,
    load_math_dataset,
    load_toolrl_dataset,
    math_prompt,
    read_records,
)
from dipo.data.io import looks_like_hub_id

DATA = Path(__file__).parents[1].parent / "shared" / "data"
README_ROWS = {"aime24": 30, "aime25": 30, "amc23": 40, "math500": 500, "olympiadbench": 675, "gsm8k": 1319,
               "deepmath": 4994}


@pytest.mark.parametrize("name", sorted(MATH_BENCHMARKS))
def test_every_math_file_loads_by_short_name(name):
    rows = load_math_dataset(name, as_dataset=False)
    assert len(rows) == README_ROWS[name]
    assert len({r["id"] for r in rows}) == len(rows)
    assert all(r["answer"] and r["problem"] for r in rows)
    assert rows[0]["prompt"][-1]["role"] == "user"
    assert rows[0]["prompt"][-1]["content"].endswith(MATH_INSTRUCTION)


def test_math_dataset_is_a_trl_ready_dataset():
    data = load_math_dataset(DATA / "math" / "aime24.jsonl", limit=5)
    assert set(data.column_names) == {"id", "problem", "answer", "prompt"}
    assert len(data) == 5 and data[0]["answer"] == "204"


def _write_all_formats(tmp_path: Path, rows: list[dict]) -> list[Path]:
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    as_json = tmp_path / "d.json"
    as_json.write_text(json.dumps({"data": rows}))
    parquet = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    return [jsonl, as_json, parquet]


def test_configurable_and_nested_fields_in_every_format(tmp_path):
    rows = [{"question": "1+1?", "meta": {"gold": 2}, "uid": "a"}, {"question": "2+2?", "meta": {"gold": 4}, "uid": "b"}]
    for path in _write_all_formats(tmp_path, rows):
        data = load_math_dataset(path, problem_field="question", answer_field="meta.gold", id_field="uid",
                                 as_dataset=False)
        assert [(r["id"], r["answer"]) for r in data] == [("a", "2"), ("b", "4")]


def test_errors_name_file_row_and_field(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"problem": "x", "answer": "1"}) + "\n" + json.dumps({"problem": "y"}) + "\n")
    with pytest.raises(DataError, match=r"bad\.jsonl: row 1: missing field 'answer'"):
        load_math_dataset(bad)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"problem": "x", "answer": "1"}\n{oops\n')
    with pytest.raises(DataError, match=r"broken\.jsonl: line 2: invalid JSON"):
        read_records(broken)
    listy = tmp_path / "listy.jsonl"
    listy.write_text(json.dumps({"problem": "x", "answer": [1, 2]}) + "\n")
    with pytest.raises(DataError, match="row 0: field 'answer' must be a string or number"):
        load_math_dataset(listy)
    csv = tmp_path / "x.csv"
    csv.write_text("a,b\n")
    with pytest.raises(DataError, match=r"x\.csv: unsupported file type"):
        read_records(csv)
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_math_dataset(tmp_path / "nope.jsonl")


def test_hub_ids_go_to_datasets_without_touching_the_network(monkeypatch):
    calls = []

    def fake_load_dataset(dataset_id, name=None, split=None):
        calls.append((dataset_id, name, split))
        return [{"problem": "1+2?", "solution": "3"}]

    import datasets

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    rows = load_math_dataset("someone/math-set", answer_field="solution", split="test", as_dataset=False)
    assert calls == [("someone/math-set", None, "test")]
    assert rows[0]["answer"] == "3" and rows[0]["id"] == "math-set-0"
    assert looks_like_hub_id("owner/name") and not looks_like_hub_id("dir/file.jsonl")


def test_prompts_use_the_chat_template_when_there_is_one(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = math_prompt("What is 2+3?", tokenizer)
    assert text.startswith("<|im_start|>user\nWhat is 2+3?\n" + MATH_INSTRUCTION)
    assert text.endswith("<|im_start|>assistant\n")
    tokenizer.chat_template = None
    assert math_prompt("What is 2+3?", tokenizer) == f"What is 2+3?\n{MATH_INSTRUCTION}\n\n"
    rendered = load_math_dataset("aime24", limit=2, tokenizer=AutoTokenizer.from_pretrained(tiny_model_dir))
    assert rendered[0]["prompt"].endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize("category", BFCL_CATEGORIES)
def test_bfcl_categories_load_with_their_answers(category):
    rows = load_bfcl(category)
    assert len(rows) >= 16
    row = rows[0]
    assert row["functions"] and row["question"][0]["role"] in ("user", "system")
    assert (row["possible_answer"] is None) == (category == "irrelevance")
    assert row["prompt"][0]["role"] == "system" and row["functions"][0]["name"] in row["prompt"][0]["content"]


def test_toolrl_rows_load_in_both_layouts():
    rl = load_toolrl_dataset(DATA / "tool" / "rlla_test.jsonl", as_dataset=False)
    sft = load_toolrl_dataset(DATA / "tool" / "rlla_sft.jsonl", limit=10, as_dataset=False)
    assert len(rl) == 80 and len(sft) == 10
    for row in rl[:5] + sft[:5]:
        assert row["prompt"][0]["role"] == "system" and row["prompt"][-1]["role"] == "user"
    assert sum("<tool_call>" in r["answer"] for r in rl) > 40
