"""benchmarks/learning.py: the paired statistics on hand-made numbers."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def bench():
    path = Path(__file__).parents[1] / "benchmarks" / "learning.py"
    spec = importlib.util.spec_from_file_location("learning_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(variant, values, metric="final_eval_accuracy"):
    return [{"variant": variant, "seed": seed, metric: value} for seed, value in values.items()]


def test_paired_difference_uses_only_seeds_both_variants_ran(bench):
    results = (_rows("dapo", {0: 0.40, 1: 0.42, 2: 0.38, 3: 0.41, 5: float("nan")})
               + _rows("dipo", {0: 0.45, 1: 0.44, 2: 0.40, 3: 0.47, 4: 0.90, 5: 0.50}))
    out = bench.paired_difference(results, "dipo", "dapo", "final_eval_accuracy")
    # seed 4 has no DAPO run, seed 5 no finite DAPO value: neither is paired
    assert out["seeds"] == [0, 1, 2, 3] and out["n"] == 4
    assert out["differences"] == pytest.approx([0.05, 0.02, 0.02, 0.06])
    assert out["mean"] == pytest.approx(0.0375)
    sd = math.sqrt((0.0125**2 + 2 * 0.0175**2 + 0.0225**2) / 3)  # deviations from the mean 0.0375
    half = 3.1824 * sd / 2  # t_{0.975, 3} * s / sqrt(4)
    assert out["t_ci"] == pytest.approx([0.0375 - half, 0.0375 + half], abs=2e-4)
    low, high = out["bootstrap_ci"]
    assert 0.02 <= low < 0.0375 < high <= 0.06  # resampled means of four differences stay within them


def test_paired_difference_is_not_the_difference_of_unpaired_means(bench):
    # a large seed effect shared by both variants: unpaired intervals overlap, the paired one excludes 0
    base = {s: 0.2 + 0.1 * s for s in range(5)}
    results = _rows("dapo", base) + _rows("dipo", {s: v + 0.01 * (1 + s % 2) for s, v in base.items()})
    out = bench.paired_difference(results, "dipo", "dapo", "final_eval_accuracy")
    assert out["t_ci"][0] > 0 and out["bootstrap_ci"][0] > 0
    _, dapo_low, dapo_high = bench.t_interval(list(base.values()))
    assert dapo_high - dapo_low > 0.1  # the shared seed effect dwarfs the difference


def test_bootstrap_interval_on_hand_made_numbers(bench):
    # two values: resampled means are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4
    assert bench.bootstrap_interval([0.0, 1.0]) == (0.0, 1.0)
    assert bench.bootstrap_interval([0.1, 0.1, 0.1]) == pytest.approx((0.1, 0.1))
    assert all(math.isnan(x) for x in bench.bootstrap_interval([0.3]))
    assert bench.bootstrap_interval([0.0, 1.0, 2.0, 5.0]) == bench.bootstrap_interval([0.0, 1.0, 2.0, 5.0])
    # about 95% of the resampled means of a large normal sample: close to mean +- 1.96 sd / sqrt(n)
    x = np.random.default_rng(1).normal(size=400)
    low, high = bench.bootstrap_interval(x)
    assert (high - low) / 2 == pytest.approx(1.96 * x.std(ddof=1) / 20, rel=0.1)


def test_t_interval_edge_cases(bench):
    assert bench.t_interval([1.0, 2.0, 3.0]) == pytest.approx((2.0, 2.0 - 4.303 / math.sqrt(3), 2.0 + 4.303 / math.sqrt(3)),
                                                              abs=1e-3)
    mean, low, high = bench.t_interval([0.5, float("nan")])
    assert mean == 0.5 and math.isnan(low) and math.isnan(high)
    assert all(math.isnan(x) for x in bench.t_interval([]))


def test_results_tables_name_the_primary_comparison(bench, tmp_path):
    results = []
    for seed in range(3):
        for variant, acc in (("dapo", 0.40), ("dipo", 0.43)):
            results.append({"variant": variant, "seed": seed, "seconds": 1.0, "final_eval_accuracy": acc + 0.01 * seed,
                            "eval_accuracy_auc": acc, "final_pass_at_k": acc + 0.2, "initial_eval_accuracy": 0.3,
                            "zero_advantage_fraction": 0.5, "final_entropy": 0.2, "brr_firings": 3.0 * (variant == "dipo"),
                            "split_valid_fraction": 1.0, "frac_easy": 0.3, "frac_hard": 0.3})
    bench.write_results(tmp_path / "learning", results, ["dapo", "dipo"], {"max_steps": 1})
    text = (tmp_path / "learning.md").read_text()
    assert "**Primary comparison** (DIPO − DAPO, final held-out accuracy, 3 seeds): +0.030" in text
    import json

    payload = json.loads((tmp_path / "learning.json").read_text())
    assert [p["metric"] for p in payload["paired"]] == bench.PAIRED_METRICS
    assert payload["paired"][0]["differences"] == pytest.approx([0.03] * 3)


def test_plateau_rule_on_the_committed_pilot_numbers(bench):
    """long_horizon.md's rule on the pilot's mean accuracies: P = 300 (nothing later beats its 3-point
    average by a point), L = P + 150 = 450; a curve still climbing at the end gets the full length."""
    steps = list(range(0, 550, 50))
    pilot = [0.469, 0.579, 0.578, 0.578, 0.593, 0.576, 0.593, 0.611, 0.589, 0.593, 0.594]
    assert bench.plateau_length(steps, pilot, max_steps=500) == (300, 450)
    assert bench.plateau_length(steps, [0.4 + 0.02 * i for i in range(11)], max_steps=500) == (None, 500)


def test_no_psd_runs_at_the_best_alpha_once_every_alpha_ran(bench, tmp_path):
    gains = {"dapo": 0.0, "dipo": 0.01, "dipo-a0.3": 0.03, "dipo-a1": -0.02}
    runs = [{"variant": v, "seed": s, "final_eval_accuracy": 0.5 + g + 0.001 * s} for v, g in gains.items()
            for s in (0, 1)]
    out = tmp_path / "long"
    out.with_suffix(".json").write_text(json.dumps({"runs": runs[:-1]}))  # dipo-a1 seed 1 still missing
    assert bench.no_psd_variant(out, [0, 1]) == []
    out.with_suffix(".json").write_text(json.dumps({"runs": runs}))
    assert bench.no_psd_variant(out, [0, 1]) == ["dipo-nopsd-a0.3"]
    assert "dipo-nopsd-a0.3" in bench.VARIANTS
