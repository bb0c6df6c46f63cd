"""`dipo data prepare`: conversions of each source's rows (fixtures in the sources' own schemas), row-count
checks, the written layout that short names and the verl recipes read, and one-line failures offline."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dipo.data import DataError, load_bfcl, load_math_dataset, load_toolrl_dataset, read_records
from dipo.data import prepare as prep
from dipo.data.cli import main as data_main

SHARED = Path(__file__).parents[1].parent / "shared" / "data"
DAPO_TEXT = ("Solve the following math problem step by step. The last line of your response should be of the form "
             "Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n{}\n\n"
             'Remember to put your answer on its own line after "Answer:".')


def dapo_raw(problems: list[tuple[str, str]], copies: int = 3) -> dict[str, list[dict]]:
    """DAPO-Math-17k's verl rows: each problem repeated, wrapped in DAPO's own instruction."""
    rows = [{"data_source": "math_dapo", "prompt": [{"role": "user", "content": DAPO_TEXT.format(p)}],
             "ability": "MATH", "reward_model": {"ground_truth": a, "style": "rule-lighteval/MATH_v2"},
             "extra_info": {"index": f"uuid-{i}"}} for _ in range(copies) for i, (p, a) in enumerate(problems)]
    return {"data/dapo-math-17k.parquet": rows}


def with_rows(monkeypatch, name: str, rows: dict[str, int]) -> None:
    monkeypatch.setitem(prep.SOURCES, name, dataclasses.replace(prep.SOURCES[name], rows=rows))


def test_dapo_keeps_the_problem_once_without_dapos_answer_instruction():
    out = prep.convert_dapo_math(dapo_raw([("Find $x$ if $2x=6$.", "3"), ("What is $1+1$?", "2")]))
    rows = out["math/dapo_math_17k.jsonl"]
    assert [(r["problem"], r["answer"]) for r in rows] == [("Find $x$ if $2x=6$.", "3"), ("What is $1+1$?", "2")]
    assert [r["id"] for r in rows] == ["dapo_math_17k-0", "dapo_math_17k-1"]


@pytest.mark.parametrize(("name", "raw", "expected"), [
    ("gsm8k", {"test": [{"question": "Tom has 1,200 apples...", "answer": "1200 - 200 = 1000\n#### 1,000"}]},
     ("math/gsm8k_test.jsonl", "Tom has 1,200 apples...", "1000")),
    ("olympiadbench", {"train": [{"id": 7, "question": "Find all $n$.", "final_answer": ["$3$", "$5$"],
                                  "answer_type": "Numerical", "unit": None}]},
     ("math/olympiadbench.jsonl", "Find all $n$.", "3, 5")),
    ("amc23", {"test": [{"id": 0, "question": "How many?", "answer": 27.0}]}, ("math/amc23.jsonl", "How many?", "27")),
    ("aime24", {"train": [{"id": 60, "problem": "AIME?", "answer": "204", "solution": "..."}]},
     ("math/aime24.jsonl", "AIME?", "204")),
    ("aime25", {"test": [{"id": "1", "problem": "Q", "answer": "70"}]}, ("math/aime25.jsonl", "Q", "70")),
    ("math500", {"test": [{"unique_id": "test/x.json", "problem": "P", "answer": "\\frac{1}{2}"}]},
     ("math/math500.jsonl", "P", "\\frac{1}{2}")),
    ("deepmath_103k", {"data/train-00000-of-00010.parquet": [{"question": "Q?", "final_answer": "4", "difficulty": 5.0}]},
     ("math/deepmath_103k.jsonl", "Q?", "4")),
])
def test_math_sources_convert_to_loader_rows(name, raw, expected):
    path, problem, answer = expected
    rows = prep.SOURCES[name].convert(raw)[path]
    assert (rows[0]["problem"], rows[0]["answer"], rows[0]["source"]) == (problem, answer, name)


def test_bad_source_rows_fail_naming_the_row():
    with pytest.raises(DataError, match=r"gsm8k: row 0: answer has no '####'"):
        prep.convert_gsm8k({"test": [{"question": "q", "answer": "42"}]})
    with pytest.raises(DataError, match=r"aime24: row 0: empty answer"):
        prep.SOURCES["aime24"].convert({"train": [{"problem": "q", "answer": ""}]})


def test_row_counts_are_verified():
    with pytest.raises(DataError, match=r"math/dapo_math_17k\.jsonl has 2 rows, expected 17398"):
        prep.convert_and_check("DAPO-Math-17K", dapo_raw([("a?", "1"), ("b?", "2")]))


def test_prepare_writes_what_short_names_and_verl_recipes_read(tmp_path, monkeypatch):
    """End to end with the download replaced by fixtures: DAPO rows, ToolRL's real test rows
    (../shared/data) and BFCL's real files, then loaded back by short name from DIPO_DATA_DIR."""
    rlla = read_records(SHARED / "tool" / "rlla_test.jsonl")
    bfcl = {"BFCL_v3_simple.json": read_records(SHARED / "bfcl" / "BFCL_v4_simple_python.json")[:3],
            "possible_answer/BFCL_v3_simple.json": read_records(SHARED / "bfcl/possible_answer/BFCL_v4_simple_python.json")}
    raws = {"dapo_math_17k": dapo_raw([("What is $2+3$?", "5")]),
            "rlla_4k": {"dataset/rlla_4k/train.parquet": rlla[:70], "dataset/rlla_4k/test.parquet": rlla[70:]},
            "bfcl_v3": bfcl}
    with_rows(monkeypatch, "dapo_math_17k", {"math/dapo_math_17k.jsonl": 1})
    with_rows(monkeypatch, "rlla_4k", {"tool/rlla_4k_train.jsonl": 70, "tool/rlla_4k_test.jsonl": 10})
    with_rows(monkeypatch, "bfcl_v3", {"bfcl/BFCL_v3_simple.json": 3})
    monkeypatch.setattr(prep, "download", lambda source, revision=None: raws[
        next(k for k, s in prep.SOURCES.items() if s is source)])
    for name in raws:
        assert data_main(["prepare", name, "--out", str(tmp_path)]) == 0
    monkeypatch.setenv("DIPO_DATA_DIR", str(tmp_path))
    maths = load_math_dataset("dapo_math_17k", as_dataset=False)
    assert maths[0]["answer"] == "5" and maths[0]["prompt"][-1]["content"].startswith("What is $2+3$?\n")
    assert len(load_toolrl_dataset("rlla_4k", as_dataset=False)) == 70
    assert len(load_toolrl_dataset("rlla_4k_test", as_dataset=False)) == 10
    assert load_bfcl("simple_python")[0]["id"] == bfcl["BFCL_v3_simple.json"][0]["id"]  # v3 file, v4 category name
    assert len(load_math_dataset("aime24", as_dataset=False)) == 30  # not prepared here: falls back to shared
    verl = pq.read_table(tmp_path / "verl" / "dapo_math_17k.parquet").to_pylist()
    assert verl[0]["reward_model"]["ground_truth"] == "5" and "\\boxed{}" in verl[0]["prompt"][-1]["content"]
    assert pq.read_table(tmp_path / "verl" / "rlla_4k_test.parquet").num_rows == 10


def test_offline_fails_in_one_line_with_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(prep, "_reachable", lambda host, timeout=5.0: False)
    assert data_main(["prepare", "aime24", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot download HuggingFaceH4/aime_2024@2fe88a2f" in err[0]
    assert not any(tmp_path.iterdir())
    assert data_main(["prepare", "aime2024"]) == 2
    assert "unknown dataset 'aime2024'" in capsys.readouterr().err


def test_list_shows_sources_and_where_short_names_resolve(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("DIPO_DATA_DIR", str(tmp_path))
    (tmp_path / "math").mkdir()
    (tmp_path / "math" / "dapo_math_17k.jsonl").write_text(json.dumps({"problem": "p", "answer": "1"}) + "\n")
    assert data_main(["list"]) == 0
    out = capsys.readouterr().out
    assert "BytedTsinghua-SIA/DAPO-Math-17k@65877096c24f" in out
    assert f"{tmp_path}/math/dapo_math_17k.jsonl" in out and "deepmath_103k    not prepared" in out
