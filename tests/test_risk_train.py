"""Risk prediction end to end: the paper recipe dry-runs on a tiny model, `dipo eval` scores a
classification set, and a short DiPO run on the testbed risk family moves the weights (slow)."""

from __future__ import annotations

import json

import pytest

from dipo.engines.trl import cli as train_cli
from dipo.eval import cli as eval_cli

CPU = ["--use_vllm", "false", "--bf16", "false", "--use_cpu", "true"]
RECIPE = "configs/trl/qwen3_8b_risk_dipo.yaml"


def test_paper_risk_recipe_values():
    script, training, model = train_cli.parse(["--config", RECIPE, *CPU])
    assert model.model_name_or_path == "Qwen/Qwen3-8B" and script.rewards == ["label"]
    assert (training.method, training.alpha, training.loss_type, training.epsilon, training.epsilon_high) == (
        "dipo", 0.1, "dapo", 0.2, 0.28)
    assert training.dynamic_sampling and training.overlong_shaping and training.beta == 0.0
    assert training.num_generations == 8


def test_paper_risk_recipe_dry_runs_on_a_tiny_model(tiny_model_dir, tmp_path, capsys):
    code = train_cli.main(["--config", RECIPE, *CPU, "--model_name_or_path", str(tiny_model_dir), "--dtype", "float32",
                           "--testbed_size", "64", "--output_dir", str(tmp_path / "run"), "--report_to", "none",
                           "--dry_run", "true"])
    assert code == 0 and "dry run OK (dipo, 64 prompts)" in capsys.readouterr().out


def test_dipo_eval_scores_a_classification_file(tiny_model_dir, tmp_path, capsys):
    cases = tmp_path / "cases.jsonl"
    cases.write_text("".join(json.dumps({"text": f"Case {i}: late payments {i}.", "label": i % 2}) + "\n"
                             for i in range(6)))
    out = tmp_path / "eval"
    code = eval_cli.main(["--model", str(tiny_model_dir), "--benchmarks", f"testbed:risk,labels:{cases}",
                          "--positive-label", "1", "--limit", "4", "--k", "2", "--max-new-tokens", "8",
                          "--temperature", "1.0", "--backend", "transformers", "--output", str(out), "--no-progress"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())["classification"]
    assert results["risk"]["n"] == 4 and results["cases"]["n"] == 4
    assert results["cases"]["positive_label"] == "1" and results["risk"]["positive_label"] == "high"
    for metrics in results.values():
        assert {"accuracy", "mean@2", "maj@2", "precision", "recall", "f1", "per_label", "counts"} <= set(metrics)
        assert sum(metrics["counts"]["predicted"].values()) == 8
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 16 and {s["benchmark"] for s in samples} == {"risk", "cases"}
    assert "precision" in capsys.readouterr().out


def test_dipo_eval_rejects_a_bad_classification_file(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "a case"}) + "\n")
    code = eval_cli.main(["--model", str(tmp_path), "--benchmarks", f"labels:{bad}", "--output", str(tmp_path / "o")])
    assert code == 2 and "row 0: missing field 'label'" in capsys.readouterr().err


@pytest.mark.slow
def test_short_dipo_run_on_the_risk_family_moves_weights_and_evaluates(tmp_path):
    """`dipo train` with the CPU risk recipe from the testbed policy (built or cached), then `dipo eval`."""
    from dipo.testbed import build_testbed, weights_hash

    start = build_testbed()
    run = tmp_path / "run"
    code = train_cli.main(["--config", "configs/trl/testbed_risk_dipo.yaml", "--output_dir", str(run),
                           "--max_steps", "4", "--heldout_eval_steps", "0", "--save_strategy", "no"])
    assert code == 0
    assert weights_hash(run / "final") != weights_hash(start)
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("reward" in m for m in metrics)
    code = eval_cli.main(["--model", str(run / "final"), "--benchmarks", "testbed:risk", "--limit", "16", "--k", "4",
                          "--max-new-tokens", "48", "--temperature", "1.0", "--backend", "transformers",
                          "--output", str(tmp_path / "eval"), "--no-progress"])
    assert code == 0
    risk = json.loads((tmp_path / "eval" / "results.json").read_text())["classification"]["risk"]
    assert risk["n"] == 16 and risk["positive_label"] == "high" and 0.0 <= risk["accuracy"] <= 1.0


def _cases_file(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_dipo_train_reads_a_user_classification_file(tiny_model_dir, tmp_path, capsys):
    cases = _cases_file(tmp_path / "cases.jsonl", [{"text": f"Case {i}", "label": ["yes", "no"][i % 2]} for i in range(10)])
    args = ["--config", "configs/trl/testbed_risk_dipo.yaml", "--model_name_or_path", str(tiny_model_dir),
            "--dataset_name", cases, "--heldout_dataset", cases, "--problem_field", "text", "--answer_field", "label",
            "--reward_funcs", "label", "--output_dir", str(tmp_path / "run"), "--dry_run", "true"]
    assert train_cli.main(args) == 0
    assert "dry run OK (dipo, 10 prompts)" in capsys.readouterr().out
    bad = _cases_file(tmp_path / "bad.jsonl", [{"text": "Case", "label": "yes"}, {"text": "", "label": "no"}])
    args[args.index(cases)] = bad
    assert train_cli.main(args) == 2
    assert "row 1: field 'text' must be non-empty text" in capsys.readouterr().err
