"""dipo.eval: metrics against hand-computed values, scoring, and `dipo eval` end to end on CPU."""

from __future__ import annotations

import json

import pytest

from dipo.eval import (
    Completion,
    cluster_answers,
    evaluate_math,
    maj_at_k,
    majority_index,
    mean_at_k,
    mean_pass_at_k,
    pass_at_k,
    score_math,
)
from dipo.eval.cli import format_table, main, parse_benchmarks
from dipo.rewards import MathGrader


@pytest.fixture(scope="module")
def grader():
    with MathGrader(num_workers=1, timeout=4.0) as g:
        yield g


def test_pass_at_k_hand_computed():
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - 3 / 6)  # 1 - C(3,2)/C(4,2)
    assert pass_at_k(5, 2, 3) == pytest.approx(1 - 1 / 10)  # 1 - C(3,3)/C(5,3)
    assert pass_at_k(8, 0, 8) == 0.0 and pass_at_k(8, 8, 1) == 1.0 and pass_at_k(8, 1, 8) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    assert mean_pass_at_k([[True, False, False, False], [False] * 4], 2) == pytest.approx(0.25)


def test_mean_at_k_hand_computed():
    assert mean_at_k([[1, 0, 0, 0], [1, 1, 1, 1]]) == pytest.approx(0.625)
    assert mean_at_k([[0, 1], [1, 1, 0, 0]]) == pytest.approx(0.5)


def test_clustering_and_ties():
    same = {(0, 2): True, (1, 3): True}
    assert cluster_answers(["a", "b", "a'", "b'", None], same) == [0, 1, 0, 1, -1]
    assert majority_index([0, 1, 0, 1, -1]) == 0  # tie: the cluster formed first
    assert majority_index([0, 1, 1]) == 1
    assert majority_index([-1, -1]) is None


def test_maj_at_k_groups_by_math_equivalence_not_strings(grader):
    # "3" is the most frequent string, but 1/2, 0.5 and \frac{1}{2} are one answer, voted 3 to 2.
    answers = [[r"\frac{1}{2}", "3", "0.5", "3", "1/2"], [None, None], ["7", "8", "8"]]
    correct = [[True, False, True, False, True], [False, False], [True, False, False]]
    assert maj_at_k(answers, correct, grader) == pytest.approx(1 / 3)
    assert maj_at_k(answers[:1], correct[:1], grader) == 1.0


def test_score_math_records_and_metrics(grader):
    rows = [{"id": "p1", "answer": "4"}, {"id": "p2", "answer": r"\frac{1}{3}"}]
    completions = [[Completion(r"so \boxed{4}", 5, False), Completion("no idea", 64, True)],
                   [Completion(r"\boxed{2/6}", 7, False), Completion(r"\boxed{1/3}", 7, False)]]
    result = score_math(rows, completions, k=2, grader=grader)
    assert result["mean@2"] == pytest.approx(0.75) and result["accuracy"] == result["mean@2"]
    assert result["maj@2"] == 1.0 and result["pass@2"] == 1.0 and result["pass@1"] == pytest.approx(0.75)
    assert result["truncated"] == 0.25 and result["answered"] == 0.75
    assert [r["correct"] for r in result["records"]] == [True, False, True, True]
    assert result["records"][1]["answer"] is None and result["records"][0]["majority"]


def test_parse_benchmarks():
    maths, bfcl = parse_benchmarks("aime24, math500,bfcl:multiple,data/x.jsonl")
    assert maths == ["aime24", "math500", "data/x.jsonl"] and bfcl == ["multiple"]
    assert len(parse_benchmarks("bfcl")[1]) == 9
    with pytest.raises(ValueError, match="unknown BFCL category"):
        parse_benchmarks("bfcl:cobol")


def test_evaluate_math_on_a_model_in_memory_leaves_its_state_alone(tiny_model_dir, grader):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model.train()
    padding_side = tokenizer.padding_side
    rows = [{"id": "a", "problem": "What is 2+3?", "answer": "5"},
            {"id": "b", "prompt": [{"role": "user", "content": "What is 1+1?"}], "answer": "2"}]
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    result = evaluate_math(model, tokenizer, rows, k=3, max_new_tokens=8, batch_size=4, progress=False, grader=grader)
    assert torch.equal(torch.rand(3), expected_next)  # the caller's RNG stream is untouched
    assert model.training and tokenizer.padding_side == padding_side
    assert len(result["records"]) == 6 and result["k"] == 3
    assert all(0 < r["length"] <= 8 for r in result["records"])
    assert 0.0 <= result["mean@3"] <= result["pass@3"] <= 1.0


def test_dipo_eval_end_to_end_on_every_benchmark_file(tiny_model_dir, tmp_path, capsys):
    math_names = ["aime24", "aime25", "amc23", "math500", "olympiadbench", "gsm8k"]
    out = tmp_path / "eval"
    code = main(["--model", str(tiny_model_dir), "--benchmarks", ",".join(math_names) + ",bfcl", "--k", "2",
                 "--limit", "3", "--max-new-tokens", "12", "--bfcl-max-new-tokens", "12", "--batch-size", "8",
                 "--output", str(out), "--no-progress", "--backend", "transformers"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results["math"]) == math_names
    for metrics in results["math"].values():
        assert metrics["n"] == 3 and 0.0 <= metrics["mean@2"] <= metrics["pass@2"] <= 1.0
    assert len(results["bfcl"]["categories"]) == 9
    # a random tiny model calls no function, which is exactly right for irrelevance only
    assert results["bfcl"]["categories"]["irrelevance"]["accuracy"] == 1.0
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 6 * 3 * 2 + 9 * 3
    table = capsys.readouterr().out
    assert "mean@2" in table and "ast_mean" in table and table.startswith(format_table(results).split("\n")[0])


def test_dipo_eval_rejects_bad_input_before_loading_a_model(tmp_path, capsys):
    assert main(["--model", str(tmp_path / "no-model"), "--benchmarks", "aime99"]) == 2
    assert "aime99" in capsys.readouterr().err
    assert main(["--model", str(tmp_path), "--benchmarks", "aime24", "--k", "0"]) == 2
    assert main(["--model", str(tmp_path), "--benchmarks", "aime24", "--dtype", "float99"]) == 2
    assert main(["--benchmarks", "aime24"]) == 2


HOSTILE_SAMPLES = [rf"\boxed{{{'9' * 5_000}}}", "lone surrogate \ud800 here", "[f(a=0x" + "F" * 5_000 + ")]",
                   '<tool_call>{"name": "f", "arguments": {"a": ' + "9" * 5_000 + "}}</tool_call>", "\x00" * 50]


def _hostile_generator(fail_on_bfcl: bool = False):
    def generate(model, tokenizer, prompts, k=1, desc="", **kwargs):
        if fail_on_bfcl and desc == "bfcl":
            raise RuntimeError("generation died")
        return [[Completion(HOSTILE_SAMPLES[(i + j) % len(HOSTILE_SAMPLES)], 10, False) for j in range(k)]
                for i in range(len(prompts))]
    return generate


def test_dipo_eval_scores_hostile_samples_zero_and_writes_them_safely(tiny_model_dir, tmp_path, monkeypatch):
    from dipo.eval import harness

    monkeypatch.setattr(harness, "generate_transformers", _hostile_generator())
    out = tmp_path / "eval"
    code = main(["--model", str(tiny_model_dir), "--benchmarks", "aime24,bfcl:simple_python,bfcl:irrelevance",
                 "--k", "2", "--limit", "3", "--output", str(out), "--no-progress", "--backend", "transformers"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["math"]["aime24"]["mean@2"] == 0.0 and results["math"]["aime24"]["grading_timeouts"] == 0
    assert results["bfcl"]["categories"]["simple_python"]["accuracy"] == 0.0 and results["bfcl"]["errors"] == 0
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(samples) == 3 * 2 + 3 + 3
    assert any("\ud800" in s["completion"] for s in samples)  # read back exactly as the model wrote it


def test_dipo_eval_keeps_finished_benchmarks_when_a_later_one_fails(tiny_model_dir, tmp_path, monkeypatch):
    from dipo.eval import harness

    monkeypatch.setattr(harness, "generate_transformers", _hostile_generator(fail_on_bfcl=True))
    out = tmp_path / "eval"
    with pytest.raises(RuntimeError, match="generation died"):
        main(["--model", str(tiny_model_dir), "--benchmarks", "aime24,bfcl:simple_python", "--k", "2", "--limit", "2",
              "--output", str(out), "--no-progress", "--backend", "transformers"])
    assert list(json.loads((out / "results.json").read_text())["math"]) == ["aime24"]
    assert len((out / "samples.jsonl").read_text().splitlines()) == 4


def test_bfcl_entry_that_cannot_be_checked_is_counted_not_fatal():
    from dipo.eval import evaluate_bfcl

    rows = [{"id": "j1", "category": "java", "functions": [], "possible_answer": [], "prompt": "x"},
            {"id": "i1", "category": "irrelevance", "functions": [], "possible_answer": None, "prompt": "y"}]
    result = evaluate_bfcl(None, None, rows, generate_fn=lambda prompts, k: [[Completion("no call", 2, False)]] * 2)
    assert result["errors"] == 1 and result["records"][0]["error_type"] == "entry_error"
    assert result["categories"]["irrelevance"]["accuracy"] == 1.0


def test_transformers_sampling_applies_no_hidden_top_k(tiny_model_dir):
    """temperature/top_p sampling is exactly that: transformers' default top_k=50 is not applied unasked
    (TRL's trainer and vLLM apply none), so a near-uniform random model samples more than 50 distinct tokens."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from dipo.eval import generate_transformers

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    [samples] = generate_transformers(model, tokenizer, ["Tom has 3 apples."], k=256, temperature=1.0, top_p=1.0,
                                      max_new_tokens=1, batch_size=256, progress=False)
    assert len({s.text for s in samples}) > 50  # one token each: at most 50 distinct texts under a top-50 cut
