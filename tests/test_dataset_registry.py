"""The dataset registry (`dipo.data.registry`): built-in names and prefixes, files and hub ids, a user's own loader,
and `dipo train`'s data resolver going through it."""

from __future__ import annotations

import json

import pytest

from dipo.data import registry
from dipo.data.registry import DatasetOptions, load_prompt_dataset, register_dataset, resolve_dataset
from dipo.engines.trl.args import TrainScriptArguments
from dipo.engines.trl.data import load_heldout, load_train


@pytest.fixture(autouse=True)
def own_registry(monkeypatch):
    """Registrations made by a test stay in it."""
    monkeypatch.setattr(registry, "DATASET_LOADERS", dict(registry.DATASET_LOADERS))


def script(**overrides):
    """`dipo train`'s data settings."""
    values = dict(dataset_name="testbed:math", heldout_dataset=None, dataset_config=None, dataset_train_split="train",
                  dataset_test_split="test", problem_field="problem", answer_field="answer", max_train_examples=None,
                  testbed_size=12, testbed_levels=[1, 2], reward_funcs=["math"])
    return TrainScriptArguments(**{**values, **overrides})


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


@pytest.mark.parametrize("name, task, columns", [("testbed:math", "math", {"answer"}),
                                                 ("testbed:tool", "tool", {"answer", "tools"}),
                                                 ("testbed:risk", "risk", {"answer", "labels"}),
                                                 ("testbed:arith", None, {"answer"})])
def test_testbed_tasks_come_from_the_registry(name, task, columns):
    options = DatasetOptions(testbed_size=12, testbed_levels=[1, 2])
    train, test = load_prompt_dataset(name, "train", options), load_prompt_dataset(name, "test", options)
    assert (len(train), len(test)) == (12, 8)  # test: a quarter of the train size, at least 8
    assert {"prompt"} | columns <= set(train.column_names) and "completion" not in train.column_names
    assert task is None or set(train["task"]) == {task}
    assert not {json.dumps(p) for p in train["prompt"]} & {json.dumps(p) for p in test["prompt"]}  # chat or text


def test_an_unknown_testbed_task_names_the_registered_ones():
    with pytest.raises(ValueError, match=r"unknown testbed task 'testbed:chess'; use one of testbed:arith, "
                                         r"testbed:math, testbed:risk, testbed:tool"):
        resolve_dataset("testbed:chess")


def test_labels_prefix_loads_classification_rows_whatever_the_rewards(tmp_path):
    path = _jsonl(tmp_path / "cases.jsonl", [{"id": i, "text": f"case {i}", "label": ["low", "high"][i % 2]}
                                             for i in range(6)])
    loader, name = resolve_dataset(f"labels:{path}")
    assert (loader, name) == (registry.load_labels, path)
    rows = load_train(script(dataset_name=f"labels:{path}", problem_field="text", answer_field="label"))
    assert len(rows) == 6 and rows[1]["answer"] == "high" and "case 1" in json.dumps(rows[1]["prompt"])


def test_files_short_names_and_hub_ids_go_to_the_default_loader(tmp_path):
    path = _jsonl(tmp_path / "maths.jsonl", [{"problem": f"{i} + 1 = ?", "answer": str(i + 1)} for i in range(3)])
    for spec in (path, "aime24", "someone/some-dataset"):
        assert resolve_dataset(spec) == (registry.load_file_or_hub, spec)
    rows = load_train(script(dataset_name=path, max_train_examples=2))
    assert len(rows) == 2 and rows[1]["answer"] == "2"


def test_a_users_dataset_by_name_and_by_prefix_reaches_dipo_train(tmp_path):
    calls = []

    def questions(name, split, options):
        calls.append((name, split, options.problem_field))
        return [{"prompt": f"{name} question {i}", "answer": str(i)} for i in range(5 if split == "train" else 2)]

    register_dataset("my_questions", questions)
    register_dataset("mydb:", questions)
    train = load_train(script(dataset_name="my_questions", heldout_dataset="mydb:hard", problem_field="q"))
    heldout = load_heldout(script(dataset_name="my_questions", heldout_dataset="mydb:hard", problem_field="q"))
    assert (len(train), len(heldout)) == (5, 2) and heldout[0]["prompt"] == "hard question 0"
    assert calls == [("my_questions", "train", "q"), ("hard", "test", "q")]  # the prefix is stripped


def test_an_exact_name_wins_over_a_prefix_and_the_longest_prefix_wins():
    def loader(tag):
        return lambda name, split, options: [{"prompt": f"{tag}:{name}", "answer": "0"}]

    register_dataset("db:", loader("short"))
    register_dataset("db:eu:", loader("long"))
    register_dataset("db:eu:special", loader("exact"))
    assert [load_prompt_dataset(s, "train")[0]["prompt"] for s in ("db:x", "db:eu:x", "db:eu:special")] == [
        "short:x", "long:x", "exact:db:eu:special"]


def test_registration_mistakes_are_refused():
    register_dataset("mine", lambda *a: [])
    with pytest.raises(ValueError, match="'mine' is registered already"):
        register_dataset("mine", lambda *a: [])
    register_dataset("mine", lambda *a: [{"prompt": "p"}], replace=True)
    assert load_prompt_dataset("mine", "train")["prompt"] == ["p"]
    with pytest.raises(ValueError, match="not callable"):
        register_dataset("other", "not a function")
    with pytest.raises(ValueError, match="not a dataset name"):
        register_dataset(":", lambda *a: [])


def test_rows_without_prompts_are_refused_naming_the_setting():
    register_dataset("no_prompts", lambda name, split, options: [{"question": "q", "answer": "a"}])
    register_dataset("empty", lambda name, split, options: [])
    with pytest.raises(ValueError, match=r"^dataset_name: dataset 'no_prompts': its rows have no 'prompt' column"):
        load_train(script(dataset_name="no_prompts"))
    with pytest.raises(ValueError, match=r"^heldout_dataset: dataset 'empty': no rows"):
        load_heldout(script(heldout_dataset="empty"))


def test_dipo_eval_reads_classification_sets_through_the_registry(tmp_path):
    """`dipo eval`'s testbed:risk is the registry's held-out split (200 cases, no SFT target), and labels:PATH
    takes its label set and positive class through the registry's options."""
    from argparse import Namespace

    from dipo.eval.classification_cli import TESTBED_RISK_CASES, load_sets
    from dipo.testbed.tasks import make_risk_tasks

    cases = tmp_path / "cases.jsonl"
    cases.write_text("".join(json.dumps({"case": f"Case {i}.", "y": ["low", "high"][i % 2]}) + "\n" for i in range(5)))
    args = Namespace(text_field="case", label_field="y", label_set="low,high,medium", positive_label="high", limit=3)
    sets = load_sets(["testbed:risk", f"labels:{cases}"], args)
    expected = make_risk_tasks(TESTBED_RISK_CASES, seed=0, split="test")[:3]
    assert [r["id"] for r in sets["risk"]] == [r["id"] for r in expected] and "completion" not in sets["risk"][0]
    assert len(sets["cases"]) == 3 and sets["cases"][0]["positive_label"] == "high"
    assert list(sets["cases"][0]["labels"]) == ["low", "high", "medium"]
