"""Risk prediction (the paper's third domain): the label reward, classification metrics against
hand-computed values, the testbed risk family and the user-data loader."""

from __future__ import annotations

import json
import time

import pytest

from dipo.data.io import DataError
from dipo.data.labels import load_label_dataset
from dipo.eval.classification import classification_metrics, positive_class_scores, score_classification, vote
from dipo.eval.generation import Completion
from dipo.rewards import extract_label, label_reward, make_label_reward
from dipo.rewards.label import MAX_CHARS, LabelSet
from dipo.testbed.tasks import (
    LEVELS,
    RISK_LEVELS,
    RISK_SYNONYMS,
    RISK_THRESHOLD,
    make_risk_tasks,
    risk_points,
)

LABELS = ["high", "low"]


# -- label reward ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "label"), [
    ("Points 4, so the risk is high. \\boxed{high}", "high"),
    ("Answer: low", "low"),
    ("**Answer:** HIGH.", "high"),  # case and markdown tolerant
    ("Final answer: Low!", "low"),
    ("\\boxed{\\text{High}}", "high"),
    ("\\boxed{ low }.", "low"),
    ("Answer: \\boxed{low}.", "low"),  # two markers, one label
    ("I must answer: high or low. ... \\boxed{low}", "low"),  # a marker naming no label is ignored
    ("\\boxed{high} Answer: low", None),  # two different labels: a hedge
    ("\\boxed{high}\\boxed{low}", None),
    ("\\boxed{high or low}", None),
    ("\\boxed{not high}", None),  # no containment: 'not high' is not 'high'
    ("The risk is high.", None),  # no marker
    ("\\boxed{medium}", None),  # not in the label set
    ("\\boxed{high", None),  # unclosed
    ("", None),
    ("\\boxed{}", None),
    ("Answer:", None),
])
def test_extract_label_rule(text, label):
    assert extract_label(text, LABELS) == label


def test_case_sensitivity_and_synonyms_are_configured():
    assert extract_label("\\boxed{HIGH}", LABELS, case_sensitive=True) is None
    assert extract_label("\\boxed{high}", LABELS, case_sensitive=True) == "high"
    assert extract_label("\\boxed{1}", LABELS) is None
    assert extract_label("\\boxed{1}", LABELS, synonyms={"1": "high"}) == "high"
    assert extract_label("Answer: High Risk", LABELS, synonyms={"high risk": "high"}) == "high"
    # a synonym and its label agree, so they are not two labels
    assert extract_label("\\boxed{1} Answer: high", LABELS, synonyms={"1": "high"}) == "high"
    assert extract_label("\\boxed{1} Answer: low", LABELS, synonyms={"1": "high"}) is None


def test_without_a_label_set_every_marker_content_is_a_label():
    assert extract_label("\\boxed{yes}") == "yes"
    assert extract_label("\\boxed{yes} Answer: no") is None


@pytest.mark.parametrize(("labels", "synonyms", "match"), [
    (["high", "High"], None, "same label"),
    (["high", "low"], {"1": "medium"}, "not one of"),
    (["high", "low"], {"low": "high"}, "already names"),
    (["high", "  "], None, "empty"),
])
def test_bad_label_configuration_raises(labels, synonyms, match):
    with pytest.raises(ValueError, match=match):
        LabelSet(labels, synonyms)


@pytest.mark.parametrize("completion", [
    None, 123, b"\\boxed{high}", {"content": 5}, [object()], float("nan"), "\x00\ud800\\boxed{\x00}",
    "\\boxed{" * 50_000, "}" * 100_000, "Answer:" * 50_000, "\\boxed{high}" * 20_000 + "\\boxed{low}",
    "\\boxed{" + "{" * 10_000 + "high", "Answer: " + "high " * 50_000,
])
def test_hostile_outputs_score_zero_quickly_and_never_raise(completion):
    started = time.perf_counter()
    assert label_reward([completion], answer=["high"], labels=[LABELS]) == [0.0]
    assert time.perf_counter() - started < 1.0


def test_only_the_tail_is_read():
    assert extract_label("\\boxed{low}" + " " * MAX_CHARS + "Answer: high", LABELS) == "high"


def test_reward_reads_trl_columns():
    completions = ["\\boxed{high}", "Answer: LOW", "\\boxed{1}", "\\boxed{high} \\boxed{low}", "no idea",
                   [{"role": "assistant", "content": "Answer: high"}]]
    n = len(completions)
    rewards = label_reward(completions, answer=["high", "low", "high", "high", "low", "high"],
                           labels=[LABELS] * n, label_synonyms=[json.dumps({"1": "high"})] * n, prompts=["p"] * n)
    assert rewards == [1.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    # the gold is normalised like the completion; a gold outside the label set scores 0
    assert label_reward(["\\boxed{high}"] * 2, answer=["HIGH ", "medium"], labels=[LABELS] * 2) == [1.0, 0.0]
    # labels as JSON text per row (a Parquet column written by other tools) and one shared list
    assert label_reward(["\\boxed{low}"], answer=["low"], labels=[json.dumps(LABELS)]) == [1.0]
    assert label_reward(["\\boxed{low}", "\\boxed{low}"], answer="low", labels=LABELS) == [1.0, 1.0]
    fixed = make_label_reward(labels=["yes", "no"], synonyms={"y": "yes"})
    assert fixed(["\\boxed{Y}", "\\boxed{high}"], answer=["yes", "yes"], labels=[LABELS] * 2) == [1.0, 0.0]
    with pytest.raises(ValueError, match="answer"):
        label_reward(["\\boxed{high}"])


def test_label_is_a_dipo_train_reward_name():
    from dipo.engines.trl.data import REWARD_FUNCTIONS, reward_functions

    assert "label" in REWARD_FUNCTIONS
    assert reward_functions(["label"]) == [label_reward]


# -- metrics against hand-computed values ----------------------------------------------------------

def test_metrics_by_hand():
    # 4 cases, k = 3, positive class "high"
    gold = ["high", "high", "low", "low"]
    predicted = [["high", "high", "low"],   # 2/3 right, vote high (right)
                 [None, "low", "high"],     # 1/3 right, vote low (a tie: seen first; wrong)
                 ["low", "low", "low"],     # 3/3 right, vote low (right)
                 ["high", None, None]]      # 0/3 right, vote high (wrong)
    m = classification_metrics(gold, predicted, LABELS, positive="high")
    assert m["n"] == 4 and m["k"] == 3
    assert m["mean@3"] == m["accuracy"] == pytest.approx((2 / 3 + 1 / 3 + 1 + 0) / 4)
    assert m["maj@3"] == pytest.approx(2 / 4)
    # samples: gold high 6 (cases 1-2), predicted high among them 3 -> TP 3, FN 3 (a missing label is a
    # miss); gold low predicted high once (case 4) -> FP 1
    assert m["precision"] == pytest.approx(3 / 4)
    assert m["recall"] == pytest.approx(3 / 6)
    assert m["f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 3))
    # votes: high, low, low, high vs gold high, high, low, low -> TP 1, FP 1, FN 1
    assert (m["maj@3_precision"], m["maj@3_recall"], m["maj@3_f1"]) == (0.5, 0.5, 0.5)
    # the low class over samples: predicted low 5 times (cases 1, 2 once, case 3 three times), 3 right
    assert m["per_label"]["low"]["precision"] == pytest.approx(3 / 5)
    assert m["per_label"]["low"]["recall"] == pytest.approx(3 / 6)
    assert m["answered"] == pytest.approx(9 / 12)
    assert m["pass@3"] == pytest.approx(3 / 4)
    assert m["counts"]["gold"] == {"high": 2, "low": 2}
    assert m["counts"]["predicted"] == {"high": 4, "low": 5, "none": 3}
    assert m["counts"]["confusion"] == {"high": {"high": 3, "low": 2, "none": 1},
                                        "low": {"high": 1, "low": 3, "none": 2}}


def test_undefined_ratios_are_none_not_zero():
    scores = positive_class_scores(["low", "low"], ["low", None], "high")
    assert scores["precision"] is None and scores["recall"] is None and scores["f1"] is None
    scores = positive_class_scores(["high", "low"], ["low", "low"], "high")
    assert scores["precision"] is None and scores["recall"] == 0.0 and scores["f1"] == 0.0


def test_vote_ties_and_empty():
    assert vote(["low", "high", "high", "low"]) == "low"  # a tie: the label seen first, as maths' maj@k
    assert vote(["low", "high", "high"]) == "high"
    assert vote([None, None]) is None
    assert vote([None, "low"]) == "low"


def test_score_classification_records_and_synonyms():
    rows = make_risk_tasks(4, seed=0, split="test")
    texts = [[f"\\boxed{{{row['answer']}}}", "\\boxed{1}", "no label"] for row in rows]
    completions = [[Completion(text=t, length=len(t), truncated=False) for t in group] for group in texts]
    m = score_classification(rows, completions, k=3)
    assert m["positive_label"] == "high" and len(m["records"]) == 12
    gold_high = [row["answer"] == "high" for row in rows]
    assert m["accuracy"] == pytest.approx(sum((1 + g) / 3 for g in gold_high) / 4)  # \boxed{1} means high
    assert m["records"][2]["label"] is None and m["records"][1]["label"] == "high"
    with pytest.raises(ValueError, match="different label sets"):
        score_classification([rows[0], {**rows[1], "labels": ["yes", "no"], "label_synonyms": ""}], completions[:2], k=3)


# -- testbed risk family ---------------------------------------------------------------------------

def test_risk_tasks_deterministic_disjoint_balanced():
    rows = make_risk_tasks(200, seed=0)
    assert rows == make_risk_tasks(200, seed=0) and rows != make_risk_tasks(200, seed=1)
    test = make_risk_tasks(50, seed=0, split="test")
    assert not {r["prompt"] for r in rows} & {r["prompt"] for r in test}
    assert len({r["prompt"] for r in rows}) == 200
    for level in LEVELS:
        at_level = [r for r in rows if r["difficulty"] == level]
        assert len(at_level) == 40 and sum(r["rule_label"] == "high" for r in at_level) == 20
    for row in rows:
        assert "high" in row["prompt"] and "low" in row["prompt"]  # the prompt names the labels
        assert row["labels"] == LABELS and row["positive_label"] == "high"
        assert json.loads(row["label_synonyms"]) == RISK_SYNONYMS


def test_risk_labels_follow_the_hidden_rule_with_noise():
    rows = make_risk_tasks(1000, seed=0)
    flipped = sum(r["answer"] != r["rule_label"] for r in rows) / len(rows)
    assert 0.07 < flipped < 0.13  # noise 0.1
    assert all(r["answer"] == r["rule_label"] for r in make_risk_tasks(100, seed=0, noise=0.0))
    # the target completion is the rule's reasoning; the label reward accepts it against the rule label
    assert label_reward([r["completion"] for r in rows], answer=[r["rule_label"] for r in rows],
                        labels=[r["labels"] for r in rows]) == [1.0] * len(rows)


def _case_of(prompt: str) -> dict:
    import re

    case = {"late": int(re.search(r"late payments (\d+)", prompt).group(1))}
    if m := re.search(r"income (\d+)k a year, debt (\d+)k", prompt):
        case["income"], case["debt"] = int(m.group(1)), int(m.group(2))
    if m := re.search(r"years in job (\d+)", prompt):
        case["years"] = int(m.group(1))
    if m := re.search(r"home: (\w+)", prompt):
        case["home"] = m.group(1)
    if m := re.search(r"loan for (\w+)", prompt):
        case["purpose"] = m.group(1)
    return case


def test_levels_grade_facts_and_closeness_to_the_threshold():
    for row in make_risk_tasks(250, seed=2):
        case = _case_of(row["prompt"])
        n_facts, n_distractors, margin = RISK_LEVELS[row["difficulty"]]
        assert len(case) - 1 - ("income" in case) == n_facts  # besides late payments; income and debt go together
        assert row["prompt"].count("age ") + row["prompt"].count("city ") == n_distractors
        points = risk_points(case)
        assert ("high" if points >= RISK_THRESHOLD else "low") == row["rule_label"]
        distance = points - RISK_THRESHOLD if points >= RISK_THRESHOLD else RISK_THRESHOLD - 1 - points
        assert distance >= margin if margin else distance == 0


@pytest.mark.parametrize(("kw", "match"), [({"levels": (6,)}, "risk levels"), ({"noise": 0.5}, "noise"),
                                           ({"split": "dev"}, "split")])
def test_risk_task_arguments_are_checked(kw, match):
    with pytest.raises(ValueError, match=match):
        make_risk_tasks(4, **kw)


def test_testbed_risk_dataset_for_dipo_train():
    from types import SimpleNamespace

    from dipo.engines.trl.data import load_prompts

    script = SimpleNamespace(testbed_size=20, testbed_levels=[1, 2, 3, 4, 5], rewards=["label"], reward_funcs=["label"])
    train = load_prompts("testbed:risk", script, "train")
    assert len(train) == 20 and "completion" not in train.column_names
    assert {"prompt", "answer", "labels", "label_synonyms"} <= set(train.column_names)
    assert len(load_prompts("testbed:risk", script, "test")) == 8


# -- user data loader ------------------------------------------------------------------------------

def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_label_loader_builds_reward_ready_rows(tmp_path):
    path = _write(tmp_path / "cases.jsonl", [{"text": "Case A", "label": 1}, {"text": "Case B", "label": 0},
                                             {"text": "Case C", "label": "1", "id": "c"}])
    rows = load_label_dataset(path, positive_label="1", synonyms={"default": "1"}, as_dataset=False)
    assert [r["answer"] for r in rows] == ["1", "0", "1"] and rows[2]["id"] == "c"
    assert rows[0]["labels"] == ["0", "1"] and rows[0]["positive_label"] == "1"
    assert "one of 0, 1" in rows[0]["prompt"][-1]["content"] and rows[0]["prompt"][-1]["content"].startswith("Case A")
    columns = {k: [r[k] for r in rows] for k in ("answer", "labels", "label_synonyms")}
    assert label_reward(["\\boxed{default}", "\\boxed{0}", "\\boxed{0}"], **columns) == [1.0, 1.0, 0.0]
    # gold labels are matched to the label set ignoring case
    path = _write(tmp_path / "case.jsonl", [{"t": "x", "y": "HIGH"}, {"t": "y", "y": "low"}])
    rows = load_label_dataset(path, text_field="t", label_field="y", labels=LABELS, as_dataset=False)
    assert [r["answer"] for r in rows] == ["high", "low"]


@pytest.mark.parametrize(("rows", "kw", "match"), [
    ([{"label": "high"}], {}, "row 0: missing field 'text'"),
    ([{"text": "a"}], {}, "row 0: missing field 'label'"),
    ([{"text": " ", "label": "high"}], {}, "non-empty text"),
    ([{"text": "a", "label": ["high"]}], {}, "non-empty label"),
    ([{"text": "a", "label": "high"}, {"text": "b", "label": "high"}], {}, "at least two labels"),
    ([{"text": "a", "label": "medium"}], {"labels": LABELS}, "row 0: field 'label': label 'medium'"),
    ([{"text": "a", "label": "high"}], {"labels": LABELS, "positive_label": "yes"}, "positive label"),
    ([{"text": "a", "label": "high"}], {"labels": ["high", "High"]}, "distinct"),
])
def test_label_loader_errors_name_the_problem(tmp_path, rows, kw, match):
    path = _write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataError, match=match):
        load_label_dataset(path, **kw)
