"""Our BFCL AST checker against the official `bfcl-eval` checker on the real BFCL files.

For every entry we build a correct output from its possible answers and systematically
corrupted ones (wrong value, wrong type, missing/extra parameter, wrong function, wrong call
count, reordered parallel calls, free text; int for float, list item types, punctuation in
strings, a missing dict key), decode and check each with both implementations,
and require >= 99.5% agreement per category. Skipped only when bfcl-eval cannot be imported
(`pip install --no-deps bfcl-eval==2026.3.23`).
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest

from dipo.rewards.bfcl import bfcl_ast_check

BFCL = Path(__file__).parents[1].parent / "shared" / "data" / "bfcl"
CATEGORIES = ["simple_python", "multiple", "parallel", "parallel_multiple", "live_simple",
              "live_multiple", "live_parallel", "live_parallel_multiple", "irrelevance"]
TARGET = 0.995


def _stub(name: str, **attrs) -> None:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module


def _missing(name: str) -> bool:
    return name not in sys.modules and importlib.util.find_spec(name) is None


@functools.cache
def _official():
    """(ast_checker, decode, is_empty_output, Language) from bfcl-eval, or skip.

    bfcl-eval's model_config module imports every API client it supports; the checker only
    reads `MODEL_CONFIG_MAPPING[model].underscore_to_dot`, so a stub with one prompting model
    (names kept as they are) stands in. The Java/JS parsers (tree-sitter) and tenacity are
    stubbed when absent: the Python decoder does not use them."""
    if importlib.util.find_spec("bfcl_eval") is None:
        pytest.skip("bfcl-eval is not installed (pip install --no-deps bfcl-eval==2026.3.23)")
    config = types.SimpleNamespace(underscore_to_dot=False)
    _stub("bfcl_eval.constants.model_config", MODEL_CONFIG_MAPPING={"dipo/prompting": config})
    if _missing("tree_sitter"):
        _stub("bfcl_eval.model_handler.parser.java_parser", parse_java_function_call=None)
        _stub("bfcl_eval.model_handler.parser.js_parser", parse_javascript_function_call=None)
    if _missing("tenacity"):
        _stub("tenacity", retry=None, retry_if_exception_message=None, retry_if_exception_type=None,
              wait_random_exponential=None)
    try:
        from bfcl_eval.constants.enums import Language
        from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker
        from bfcl_eval.model_handler.utils import default_decode_ast_prompting
        from bfcl_eval.utils import is_empty_output
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"bfcl-eval cannot be imported: {exc!r}")
    return ast_checker, default_decode_ast_prompting, is_empty_output, Language


def official_valid(functions, text, answer, category) -> bool:
    """The official pipeline for one prompting-model output (eval_runner's AST/relevance path)."""
    ast_checker, decode, is_empty_output, language = _official()
    try:
        decoded = decode(text)
    except Exception:  # noqa: BLE001 - a decode failure is BFCL's "no call"
        decoded = None
    if "irrelevance" in category:
        return decoded is None or is_empty_output(decoded)
    if decoded is None or not (isinstance(decoded, list) and all(
            isinstance(c, dict) and len(c) == 1 and isinstance(next(iter(c.values())), dict) for c in decoded)):
        return False
    try:
        return bool(ast_checker(functions, decoded, answer, language.PYTHON, category, "dipo_prompting")["valid"])
    except Exception:  # noqa: BLE001 - the official checker crashing on odd input = not valid
        return False


# ---------------------------------------------------------------------------------------------
# Building outputs from possible answers
# ---------------------------------------------------------------------------------------------
def _load(path: Path) -> dict[str, dict]:
    with open(path) as f:
        return {row["id"]: row for row in map(json.loads, f)}


def _first(allowed):
    """First allowed value that is not the optional marker, or a sentinel to omit the param."""
    if not isinstance(allowed, list):  # nested dicts may hold plain values
        return allowed
    return next((a for a in allowed if a != ""), _OMIT)


_OMIT = object()


def _pick(value):
    """A concrete value from an allowed value (dicts hold allowed lists per key)."""
    if isinstance(value, dict):
        return {k: _pick(v) for k, v in ((k, _first(v)) for k, v in value.items()) if v is not _OMIT}
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [_pick(v) for v in value]
    return value


def correct_calls(answer: list[dict]) -> list[tuple[str, dict]]:
    calls = []
    for expected in answer:
        name, params = next(iter(expected.items()))
        args = {p: _pick(v) for p, v in ((p, _first(a)) for p, a in params.items()) if v is not _OMIT}
        calls.append((name, args))
    return calls


def render(calls: list[tuple[str, dict]]) -> str:
    return "[" + ", ".join(f"{n}({', '.join(f'{k}={v!r}' for k, v in a.items())})" for n, a in calls) + "]"


def _wrong_value(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 7
    if isinstance(value, float):
        return value + 1.5
    if isinstance(value, str):
        return value + " zzz"
    if isinstance(value, list):
        return value + [value[0]] if value else ["zzz"]
    if isinstance(value, dict):
        return {**value, "zzz_key": "zzz"}
    return "zzz"


def _wrong_type(value):
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return 12345
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return 0


def variants(entry: dict, answer: list[dict] | None) -> list[tuple[str, str]]:
    """(label, output text) for one entry."""
    functions = entry["function"]
    out = [("free_text", "I am sorry, I cannot help with that."), ("empty_list", "[]")]
    if answer is None:  # irrelevance: calling any documented function is wrong
        f = functions[0]
        args = {p: 1 for p in f["parameters"].get("required", [])}
        return out + [("call", render([(f["name"], args)])), ("bare_call", f"{f['name']}()")]
    calls = correct_calls(answer)
    out += [("correct", render(calls)), ("correct_unbracketed", render(calls)[1:-1])]
    for mutate in ("value", "type", "missing", "extra", "upper"):
        mutated = copy.deepcopy(calls)
        name, args = mutated[0]
        if mutate == "extra":
            args["zzz_unexpected"] = 1
        elif not args:
            continue
        else:
            key = sorted(args)[0]
            if mutate == "value":
                args[key] = _wrong_value(args[key])
            elif mutate == "type":
                args[key] = _wrong_type(args[key])
            elif mutate == "missing":
                del args[key]
            elif isinstance(args[key], str):  # upper: case and spaces do not matter for strings
                args[key] = args[key].upper()
            else:
                continue
        out.append((mutate, render(mutated)))
    for mutate in ("int_for_float", "item_type", "punctuation", "dict_key"):  # subtler rules, first matching arg
        mutated = copy.deepcopy(calls)
        args = mutated[0][1]
        for key in sorted(args):
            value = args[key]
            if mutate == "int_for_float" and isinstance(value, float):
                args[key] = int(value)
            elif mutate == "item_type" and isinstance(value, list) and value and not isinstance(value[0], dict):
                args[key] = [str(value[0]) if not isinstance(value[0], str) else 1] + value[1:]
            elif mutate == "punctuation" and isinstance(value, str) and " " in value:
                args[key] = value.replace(" ", "-") + "."
            elif mutate == "dict_key" and isinstance(value, dict) and value:
                args[key] = dict(list(value.items())[1:])
            else:
                continue
            out.append((mutate, render(mutated)))
            break
    other = next((f["name"] for f in functions if f["name"] != calls[0][0]), calls[0][0] + "_x")
    out.append(("wrong_function", render([(other, calls[0][1])] + calls[1:])))
    out.append(("extra_call", render(calls + calls[:1])))
    if len(calls) > 1:
        out.append(("reversed", render(calls[::-1])))
        out.append(("missing_call", render(calls[:-1])))
    return out


@pytest.mark.parametrize("category", CATEGORIES)
def test_agreement_with_official_bfcl_checker(category, capsys):
    _official()
    entries = _load(BFCL / f"BFCL_v4_{category}.json")
    answers = _load(BFCL / "possible_answer" / f"BFCL_v4_{category}.json") if category != "irrelevance" else {}
    total = agree = ours_valid = correct_valid = 0
    disagreements = []
    for entry_id, entry in entries.items():
        answer = answers[entry_id]["ground_truth"] if answers else None
        for label, text in variants(entry, answer):
            ours = bfcl_ast_check(entry["function"], text, answer, category).valid
            official = official_valid(entry["function"], text, answer, category)
            total += 1
            agree += ours == official
            ours_valid += ours
            correct_valid += ours and label == "correct"
            if ours != official:
                disagreements.append((entry_id, label, ours, official))
    rate = agree / total
    with capsys.disabled():
        print(f"\nBFCL {category}: {agree}/{total} agree ({rate:.2%}); ours valid {ours_valid}")
    assert total >= 4 * len(entries)
    assert 0 < ours_valid < total  # both verdicts occur, so agreement is not trivial
    if answers:  # outputs built from the possible answers are right (nearly) everywhere
        assert correct_valid >= 0.97 * len(entries)
    assert rate >= TARGET, disagreements[:10]
