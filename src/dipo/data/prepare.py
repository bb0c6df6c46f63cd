"""`dipo data prepare NAME`: the paper's datasets from their public sources, at pinned revisions,
converted into the files the loaders read (the layout of `../shared/data`), row counts verified.

Each source is one `Source`: where the raw rows come from (a Hugging Face dataset repo and revision,
read with `datasets.load_dataset` or `huggingface_hub.hf_hub_download`; ToolRL from its GitHub repo at a
commit), a pure `convert(raw) -> {relative path: rows}` function, and the row counts every output must
have. The conversions are tested offline on fixture rows; the download needs network access and fails
with one line naming the source when there is none. Maths training sets and held-out benchmarks are
also written as verl RL parquet files (`verl/<name>.parquet`: chat `prompt` with the paper's
instruction, `reward_model.ground_truth`), which the verl recipes read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dipo.data.io import DataError, read_records
from dipo.data.prompts import math_messages


@dataclass(frozen=True)
class Source:
    """Where one dataset comes from, how its rows become loader rows, and how many there must be."""

    repo: str  # Hugging Face dataset repo, or "github:owner/name"
    revision: str  # a commit (pinned); "main" only where no pin was available, said in `note`
    convert: Callable[[dict[str, list[dict]]], dict[str, list[dict]]]
    rows: dict[str, int]  # output path (relative to the data dir) -> expected rows
    files: tuple[str, ...] = ()  # repo files to download (else `split` through datasets.load_dataset)
    split: str | None = None
    config: str | None = None
    licence: str = ""
    note: str = ""
    verl: tuple[str, ...] = field(default=())  # outputs also written as verl parquet


# -- conversions: raw rows (per file or split) -> loader rows (per output path) --------------------------


def _only(raw: dict[str, list[dict]]) -> list[dict]:
    return [row for rows in raw.values() for row in rows]


def _math_row(name: str, index: int, problem: Any, answer: Any, row_id: Any = None, **extra) -> dict:
    if not isinstance(problem, str) or not problem.strip():
        raise DataError(f"{name}: row {index}: empty problem")
    if isinstance(answer, float) and answer.is_integer():
        answer = int(answer)
    if isinstance(answer, (list, tuple)):
        answer = ", ".join(str(a).strip("$ ") for a in answer)
    answer = str(answer).strip() if answer is not None else ""
    if not answer:
        raise DataError(f"{name}: row {index}: empty answer")
    return {"id": f"{name}-{row_id if row_id is not None else index}", "problem": problem.strip(), "answer": answer,
            "source": name, **extra}


_DAPO_PREFIX = re.compile(r"^.*?is the answer to the problem\.\s*", re.S)
_DAPO_SUFFIX = re.compile(r"\s*Remember to put your answer on its own line after \"Answer:\"\.\s*$")


def convert_dapo_math(raw: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """DAPO-Math-17K: the verl rows carry DAPO's own "Answer:" instruction around the problem; keep the
    problem (our prompt adds the paper's \\boxed{} instruction), the integer answer, and one row per
    distinct problem (the published file repeats each about 100 times)."""
    out, seen = [], set()
    for i, row in enumerate(_only(raw)):
        text = row["prompt"][0]["content"]
        problem = _DAPO_SUFFIX.sub("", _DAPO_PREFIX.sub("", text, count=1))
        if problem in seen:
            continue
        seen.add(problem)
        out.append(_math_row("dapo_math_17k", i, problem, row["reward_model"]["ground_truth"], len(out)))
    return {"math/dapo_math_17k.jsonl": out}


def convert_deepmath(raw: dict[str, list[dict]]) -> dict[str, list[dict]]:
    return {"math/deepmath_103k.jsonl": [
        _math_row("deepmath_103k", i, r["question"], r["final_answer"], i, difficulty=r.get("difficulty"))
        for i, r in enumerate(_only(raw))]}


def _simple(name: str, out: str, problem: str, answer: str, row_id: str | None = None):
    def convert(raw: dict[str, list[dict]]) -> dict[str, list[dict]]:
        return {out: [_math_row(name, i, r[problem], r[answer], r.get(row_id) if row_id else None)
                      for i, r in enumerate(_only(raw))]}
    return convert


def convert_gsm8k(raw: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """GSM8K: the answer is the number after the solution's final `####`, without thousands commas."""
    rows = []
    for i, r in enumerate(_only(raw)):
        if "####" not in r["answer"]:
            raise DataError(f"gsm8k: row {i}: answer has no '####' final answer")
        rows.append(_math_row("gsm8k", i, r["question"], r["answer"].rsplit("####", 1)[1].replace(",", "").strip()))
    return {"math/gsm8k_test.jsonl": rows}


def convert_olympiadbench(raw: dict[str, list[dict]]) -> dict[str, list[dict]]:
    return {"math/olympiadbench.jsonl": [
        _math_row("olympiadbench", i, r["question"], r["final_answer"], r.get("id", i),
                  answer_type=r.get("answer_type"), unit=r.get("unit"))
        for i, r in enumerate(_only(raw))]}


def convert_rlla(raw: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """ToolRL rlla_4k: verl RL rows already (chat `prompt`, `reward_model.ground_truth`); kept as they are."""
    out = {}
    for file, rows in raw.items():
        split = "test" if file.endswith("test.parquet") else "train"
        for i, row in enumerate(rows):
            if not isinstance(row.get("prompt"), list) or "ground_truth" not in (row.get("reward_model") or {}):
                raise DataError(f"rlla_4k {split}: row {i}: expected verl rows (prompt list, reward_model.ground_truth)")
        out[f"tool/rlla_4k_{split}.jsonl"] = rows
    return out


BFCL_V3 = {"simple": 400, "multiple": 200, "parallel": 200, "parallel_multiple": 200, "irrelevance": 240,
           "live_simple": 258, "live_multiple": 1053, "live_parallel": 16, "live_parallel_multiple": 24}


def convert_bfcl(raw: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """BFCL v3 question and possible-answer files: already in the loader's layout, kept as they are."""
    out = {}
    for file, rows in raw.items():
        for i, row in enumerate(rows):
            if "id" not in row or not ({"question", "function"} <= set(row) or "ground_truth" in row):
                raise DataError(f"{file}: row {i}: not a BFCL question (id, question, function) or answer row")
        out[f"bfcl/{file}"] = rows
    return out


def _bfcl_files() -> tuple[str, ...]:
    return tuple(f"BFCL_v3_{c}.json" for c in BFCL_V3) + tuple(
        f"possible_answer/BFCL_v3_{c}.json" for c in BFCL_V3 if c != "irrelevance")


SOURCES: dict[str, Source] = {
    "dapo_math_17k": Source(
        "BytedTsinghua-SIA/DAPO-Math-17k", "65877096c24ffa7abc4e4fa5edb95cf3413a5674", convert_dapo_math,
        {"math/dapo_math_17k.jsonl": 17398}, files=("data/dapo-math-17k.parquet",), licence="Apache-2.0",
        note="the paper's maths training set; one row per distinct problem", verl=("math/dapo_math_17k.jsonl",)),
    "deepmath_103k": Source(
        "zwhe99/DeepMath-103K", "5cf055d1fe3d7a2eb19719ac020211469736ae44", convert_deepmath,
        {"math/deepmath_103k.jsonl": 103022}, files=tuple(f"data/train-{i:05d}-of-00010.parquet" for i in range(10)),
        licence="MIT", verl=("math/deepmath_103k.jsonl",)),
    "aime24": Source("HuggingFaceH4/aime_2024", "2fe88a2f1091d5048c0f36abc874fb997b3dd99a",
                     _simple("aime24", "math/aime24.jsonl", "problem", "answer", "id"), {"math/aime24.jsonl": 30},
                     split="train", licence="MIT", verl=("math/aime24.jsonl",)),
    "aime25": Source("math-ai/aime25", "563bb8404243c5f09de6ec262f2db674fe5bce9b",
                     _simple("aime25", "math/aime25.jsonl", "problem", "answer", "id"), {"math/aime25.jsonl": 30},
                     split="test", verl=("math/aime25.jsonl",)),
    "amc23": Source("math-ai/amc23", "80815d37005feb82cd7f8fbc6901d5d3eff43057",
                    _simple("amc23", "math/amc23.jsonl", "question", "answer", "id"), {"math/amc23.jsonl": 40},
                    split="test", verl=("math/amc23.jsonl",)),
    "math500": Source("HuggingFaceH4/MATH-500", "6e4ed1a2a79af7d8630a6b768ec859cb5af4d3be",
                      _simple("math500", "math/math500.jsonl", "problem", "answer", "unique_id"),
                      {"math/math500.jsonl": 500}, split="test", licence="MIT", verl=("math/math500.jsonl",)),
    "olympiadbench": Source("Hothan/OlympiadBench", "91184b52131e7fc9455fef848035173aea8cc01a", convert_olympiadbench,
                            {"math/olympiadbench.jsonl": 675}, split="train", config="OE_TO_maths_en_COMP",
                            licence="Apache-2.0", note="open-ended, text-only, English maths (OE_TO_maths_en_COMP)",
                            verl=("math/olympiadbench.jsonl",)),
    "gsm8k": Source("openai/gsm8k", "740312add88f781978c0658806c59bc2815b9866", convert_gsm8k,
                    {"math/gsm8k_test.jsonl": 1319}, split="test", config="main", licence="MIT"),
    "rlla_4k": Source("github:qiancheng0/ToolRL", "8cee13ec0ca72f0461da372a93a6fd8140dbb840", convert_rlla,
                      {"tool/rlla_4k_train.jsonl": 3920, "tool/rlla_4k_test.jsonl": 80},
                      files=("dataset/rlla_4k/train.parquet", "dataset/rlla_4k/test.parquet"), licence="Apache-2.0",
                      note="ToolRL's tool-call RL set (GitHub, not on the Hub)",
                      verl=("tool/rlla_4k_train.jsonl", "tool/rlla_4k_test.jsonl")),
    "bfcl_v3": Source("gorilla-llm/Berkeley-Function-Calling-Leaderboard", "main", convert_bfcl,
                      {f"bfcl/{f}": BFCL_V3[Path(f).stem.removeprefix("BFCL_v3_")] for f in _bfcl_files()},
                      files=_bfcl_files(), licence="Apache-2.0",
                      note="AST categories; no commit pin found offline: pass --revision to pin one"),
}
ALIASES = {"dapo": "dapo_math_17k", "dapo_math": "dapo_math_17k", "deepmath": "deepmath_103k", "math_500": "math500",
           "toolrl": "rlla_4k", "rlla": "rlla_4k", "bfcl": "bfcl_v3"}


def source_name(name: str) -> str:
    """Canonical source name (`DAPO-Math-17K` -> `dapo_math_17k`), or DataError listing the known names."""
    key = name.strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in SOURCES:
        raise DataError(f"unknown dataset {name!r}; choose from {sorted(SOURCES)}")
    return key


# -- download, convert, verify, write ----------------------------------------------------------------


def download(source: Source, revision: str | None = None) -> dict[str, list[dict]]:
    """Raw rows per file (or per split) from the pinned source. Needs network access (or a warm
    Hugging Face cache); any failure becomes one DataError line naming the source."""
    rev = revision or source.revision
    where = f"{source.repo}@{rev}"
    host = "raw.githubusercontent.com" if source.repo.startswith("github:") else "huggingface.co"
    if not _reachable(host):  # fail in one line at once, not after the hub client's retries
        raise DataError(f"cannot download {where}: {host} is not reachable (offline?); copy prepared files into "
                        "$DIPO_DATA_DIR instead")
    try:
        if source.repo.startswith("github:"):
            return {f: _read_downloaded(_github_file(source.repo.removeprefix("github:"), rev, f)) for f in source.files}
        if source.files:
            from huggingface_hub import hf_hub_download

            return {f: _read_downloaded(Path(hf_hub_download(source.repo, f, repo_type="dataset", revision=rev)))
                    for f in source.files}
        from datasets import load_dataset

        return {source.split: list(load_dataset(source.repo, source.config, split=source.split, revision=rev))}
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - network, auth, missing file: one line for the user
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot download {where} (no network access?): {type(exc).__name__}: {reason}") from exc


def _reachable(host: str, timeout: float = 5.0) -> bool:
    """Whether `host` resolves and accepts a TCP connection on 443 (a proxy counts as reachable)."""
    import os
    import socket

    if os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return True
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _github_file(repo: str, commit: str, path: str) -> Path:
    import tempfile
    import urllib.request

    target = Path(tempfile.mkdtemp(prefix="dipo-data-")) / Path(path).name
    url = f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - fixed https URL
        target.write_bytes(response.read())
    return target


def _read_downloaded(path: Path) -> list[dict]:
    if path.suffix == ".json":  # BFCL ships JSON Lines under .json
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return read_records(path)


def convert_and_check(name: str, raw: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """`SOURCES[name].convert(raw)`, then every output's row count checked against the expected one."""
    source = SOURCES[source_name(name)]
    outputs = source.convert(raw)
    for path, expected in source.rows.items():
        got = len(outputs.get(path, []))
        if got != expected:
            raise DataError(f"{name}: {path} has {got} rows, expected {expected} ({source.repo}@{source.revision}); "
                            "the source changed or the download is incomplete")
    return outputs


def verl_rows(rows: list[dict], data_source: str) -> list[dict]:
    """Loader rows as verl RL rows; maths rows get the paper's prompt (`math_messages`), tool rows stay."""
    out = []
    for i, row in enumerate(rows):
        if "reward_model" in row:
            out.append(row)
            continue
        out.append({"data_source": data_source, "prompt": math_messages(row["problem"]), "ability": "math",
                    "reward_model": {"style": "rule", "ground_truth": row["answer"]},
                    "extra_info": {"index": i, "id": row["id"]}})
    return out


def write_outputs(name: str, outputs: dict[str, list[dict]], out_dir: Path) -> list[Path]:
    """Write the loader files (JSON Lines, BFCL `.json` as JSON Lines too) and the verl parquet copies."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = SOURCES[source_name(name)]
    written = []
    for relative, rows in outputs.items():
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        written.append(path)
        if relative in source.verl:
            verl_path = out_dir / "verl" / (Path(relative).stem + ".parquet")
            verl_path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pylist(verl_rows(rows, f"dipo/{Path(relative).stem}")), verl_path)
            written.append(verl_path)
    return written


def prepare(name: str, out_dir: str | Path, revision: str | None = None) -> list[Path]:
    """Download, convert, verify and write one dataset; returns the files written."""
    key = source_name(name)
    outputs = convert_and_check(key, download(SOURCES[key], revision))
    return write_outputs(key, outputs, Path(out_dir))
