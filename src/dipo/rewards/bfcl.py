"""Function-call checking by the Berkeley Function Calling Leaderboard's AST rules.

`bfcl_ast_check(functions, output, possible_answer, category)` follows the rules of BFCL's
official checker (`bfcl_eval.eval_checker.ast_eval.ast_checker`, Apache-2.0, version 2026.3.23),
re-implemented here so that training needs no BFCL install; `tests/test_bfcl_conformance.py`
measures the agreement with the official code on the real BFCL files. The rules, for Python:

- the output is decoded to calls `[{name: {param: value}}]`: Python call syntax
  (`[f(a=1), g(b="x")]`, one call without brackets too), JSON in `<tool_call>` tags
  (`{"name": ..., "arguments": {...}}`), or calls already parsed. Decoding uses `ast`/`json`
  only; keyword arguments count, positional ones are ignored, as in BFCL; arithmetic in
  arguments is folded only for number literals (BFCL runs `eval`; we never do);
- `irrelevance`: correct when no call is decoded; `relevance`: when one is;
- simple categories: exactly one call, checked against the first function;
  `multiple`: one call, checked against the expected function; `parallel*`: as many calls as
  expected, matched in any order (greedily, expected call by expected call, as BFCL does);
- a call is correct when the function name matches, every required parameter is present, every
  given parameter is documented and expected, its type matches the documented type (int is
  accepted for float; one level of array item types is checked), its value is one of the allowed
  values (strings compared case-insensitively without spaces and `,./-_*^`, lists and dicts
  element by element), and every expected parameter not marked optional (`""`) is given.
Known BFCL quirks are kept on purpose (e.g. an empty list passes an optional list parameter),
so scores are comparable with the leaderboard's.

Bounds on model output: text longer than `MAX_OUTPUT_CHARS` does not decode; decoding and
checking are linear in the text's length (no backtracking patterns, arithmetic folding refuses
results over `MAX_FOLDED_BITS` bits); anything that goes wrong inside decoding or checking,
including nesting too deep for Python's recursion limit and integers too long to print, is a
failed check, never an exception.
"""

from __future__ import annotations

import ast
import json
import operator
import re
from dataclasses import dataclass, field
from typing import Any

_PYTHON_TYPES = {"string": str, "integer": int, "float": float, "boolean": bool, "array": list,
                 "tuple": list, "dict": dict, "any": str}
_NESTED_TYPES = ("array", "tuple")
MAX_OUTPUT_CHARS = 100_000  # a function call is short; longer model output does not decode
MAX_FOLDED_BITS = 4_096  # arithmetic folded in arguments stops at this size (2**4096 ~ 1e1233)


class ToolCallParseError(ValueError):
    """The model output is not a function call in a supported format."""


@dataclass
class BFCLResult:
    """Outcome of one check: `valid`, human-readable `errors`, and BFCL-style `error_type`."""

    valid: bool
    errors: list[str] = field(default_factory=list)
    error_type: str = ""

    def __bool__(self) -> bool:
        return self.valid


_OK = BFCLResult(True)


def _fail(error_type: str, message: str) -> BFCLResult:
    return BFCLResult(False, [message], error_type)


def _show(value: Any, limit: int = 200) -> str:
    """repr() for messages, shortened, and safe on values repr() refuses (a 5,000-digit int)
    or cannot reach the end of (deep nesting)."""
    try:
        text = repr(value)
    except (ValueError, RecursionError, MemoryError):
        return f"<{type(value).__name__} too large to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# Decoding model output
# ---------------------------------------------------------------------------------------------
_OPEN, _CLOSE = "<tool_call>", "</tool_call>"
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}


def _fold_arithmetic(node: ast.AST) -> Any:
    """Value of an arithmetic expression over number literals (and string concatenation);
    anything else raises. Powers are bounded so a model cannot make us compute 9**9**9."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _fold_arithmetic(node.operand)
        return -value if isinstance(node.op, ast.USub) else +value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _fold_arithmetic(node.left), _fold_arithmetic(node.right)
        if isinstance(left, str) != isinstance(right, str) or (isinstance(left, str) and not isinstance(node.op, ast.Add)):
            raise ToolCallParseError("unsupported string arithmetic in argument")
        if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 10**6):
            raise ToolCallParseError("exponent too large in argument")
        try:
            value = _BINOPS[type(node.op)](left, right)
        except (ArithmeticError, ValueError) as exc:
            raise ToolCallParseError(f"bad arithmetic in argument: {exc}") from exc
        if isinstance(value, int) and value.bit_length() > MAX_FOLDED_BITS:
            raise ToolCallParseError("arithmetic result too large in argument")
        if isinstance(value, str) and len(value) > MAX_OUTPUT_CHARS:
            raise ToolCallParseError("string concatenation too long in argument")
        return value
    raise ToolCallParseError(f"unsupported expression in argument: {type(node).__name__}")


def _literal(node: ast.AST) -> Any:
    """A call argument as a Python value, the way BFCL's decoder reads it (without eval)."""
    if isinstance(node, ast.Constant):
        return "..." if node.value is Ellipsis else node.value
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant)
            and isinstance(node.operand.value, (int, float, complex))):
        return -node.operand.value
    if isinstance(node, ast.List):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise ToolCallParseError("dict unpacking (**) in argument")
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.BinOp):
        return _fold_arithmetic(node)
    if isinstance(node, ast.Name):
        return node.id  # a variable name stands for itself, as in BFCL
    if isinstance(node, ast.Call):
        return _call(node) if node.keywords else ast.unparse(node)
    if isinstance(node, ast.Subscript):
        return f"{ast.unparse(node.value)}[{ast.unparse(node.slice)}]"
    raise ToolCallParseError(f"unsupported argument type {type(node).__name__}")


def _call(node: ast.Call) -> dict[str, dict]:
    parts, func = [], node.func
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    name = ".".join(reversed(parts))
    return {name: {kw.arg: _literal(kw.value) for kw in node.keywords if kw.arg is not None}}


def parse_python_calls(text: str) -> list[dict[str, dict]]:
    """Decode `[f(a=1), g(b=2)]` (or a single call) into `[{"f": {"a": 1}}, {"g": {"b": 2}}]`,
    like BFCL's prompting decoder: outer backticks, newlines and spaces are stripped, missing
    brackets are added, keyword arguments are kept."""
    if len(text) > MAX_OUTPUT_CHARS:
        raise ToolCallParseError(f"output longer than {MAX_OUTPUT_CHARS} characters")
    text = text.strip("`\n ")
    if not text.startswith("["):
        text = "[" + text
    if not text.endswith("]"):
        text = text + "]"
    try:
        tree = ast.parse(text.strip().strip("'"), mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        raise ToolCallParseError(f"not Python call syntax: {type(exc).__name__}") from exc
    body = tree.body
    if isinstance(body, ast.Call):
        body = ast.List(elts=[body])
    if not isinstance(body, (ast.List, ast.Tuple)):
        raise ToolCallParseError("expected a list of function calls")
    calls = []
    for element in body.elts:
        if not isinstance(element, ast.Call):
            raise ToolCallParseError(f"not a function call: {type(element).__name__}")
        try:
            calls.append(_call(element))
        except ToolCallParseError:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. {[1]: 2}, huge literals, deep nesting
            raise ToolCallParseError(f"bad argument: {type(exc).__name__}") from exc
    return calls


def _json_call(obj: Any) -> dict[str, dict]:
    if not isinstance(obj, dict):
        raise ToolCallParseError(f"tool call is not a JSON object: {_show(obj)}")
    if "name" in obj:
        args = obj.get("arguments", obj.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except (ValueError, RecursionError) as exc:  # also too-long integers, deep nesting
                raise ToolCallParseError(f"arguments are not JSON: {type(exc).__name__}") from exc
        if not isinstance(obj["name"], str) or not isinstance(args, dict):
            raise ToolCallParseError("tool call needs a string name and an object of arguments")
        return {obj["name"]: args}
    if len(obj) == 1 and isinstance(next(iter(obj.values())), dict):
        return dict(obj)  # already {name: {param: value}}
    raise ToolCallParseError(f"tool call has no name: {_show(obj)}")


def tool_call_blocks(text: str) -> list[str]:
    """Contents of the `<tool_call>...</tool_call>` blocks of `text`, as
    `re.findall(r"<tool_call>(.*?)</tool_call>", text, re.DOTALL)` gives them, in linear time
    (that pattern is quadratic on many unclosed tags)."""
    blocks, pos = [], 0
    while (start := text.find(_OPEN, pos)) >= 0:
        end = text.find(_CLOSE, start + len(_OPEN))
        if end < 0:
            break
        blocks.append(text[start + len(_OPEN) : end])
        pos = end + len(_CLOSE)
    return blocks


def parse_json_tool_calls(text: str) -> list[dict[str, dict]]:
    """Calls in `<tool_call>...</tool_call>` blocks, each holding one or more JSON objects
    (`{"name": ..., "arguments"|"parameters": {...}}`, one per line or a JSON list)."""
    if len(text) > MAX_OUTPUT_CHARS:
        raise ToolCallParseError(f"output longer than {MAX_OUTPUT_CHARS} characters")
    calls: list[dict[str, dict]] = []
    decoder = json.JSONDecoder()
    for block in tool_call_blocks(text):
        block, pos = block.strip(), 0
        while pos < len(block):
            try:
                obj, end = decoder.raw_decode(block, pos)
            except (ValueError, RecursionError) as exc:  # also too-long integers, deep nesting
                raise ToolCallParseError(f"invalid JSON in <tool_call>: {type(exc).__name__}") from exc
            calls.extend(_json_call(o) for o in (obj if isinstance(obj, list) else [obj]))
            pos = end
            while pos < len(block) and block[pos] in " \t\r\n,":
                pos += 1
    return calls


def parse_function_calls(output: Any) -> list[dict[str, dict]]:
    """Model output as BFCL's decoded form `[{name: {param: value}}]`.

    `output` is text with `<tool_call>` JSON blocks, text in Python call syntax, or a list of
    calls already parsed (`{name: {...}}` or `{"name": ..., "arguments": {...}}`).
    Raises ToolCallParseError when it is none of these."""
    if isinstance(output, str):
        if _OPEN in output:
            return parse_json_tool_calls(output)
        return parse_python_calls(output)
    if isinstance(output, dict):
        output = [output]
    if isinstance(output, (list, tuple)):
        return [_json_call(item) for item in output]
    raise ToolCallParseError(f"unsupported output type {type(output).__name__}")


def _is_call_list(calls: Any) -> bool:
    return isinstance(calls, list) and all(
        isinstance(c, dict) and len(c) == 1 and isinstance(next(iter(c.values())), dict) for c in calls)


def _is_empty(calls: Any) -> bool:
    return not _is_call_list(calls) or len(calls) == 0 or (len(calls) == 1 and len(calls[0]) == 0)


# ---------------------------------------------------------------------------------------------
# Values and types
# ---------------------------------------------------------------------------------------------
def standardize_string(text: str) -> str:
    """BFCL's string normalisation: drop spaces and `,./-_*^`, lowercase, ' -> "."""
    return re.sub(r"[ \,\.\/\-\_\*\^]", "", text).lower().replace("'", '"')


def _std(value: Any) -> Any:
    return standardize_string(value) if type(value) is str else value


def _answer_type(allowed: list) -> type | None:
    """Type of the first allowed value that is not the optional marker ""."""
    return next((type(a) for a in allowed if a != ""), None)


def _check_type(param: str, value: Any, allowed: list, type_name: str, expected: type,
                item_type: type | None) -> tuple[BFCLResult, bool]:
    """(result, is_variable). When the allowed values have another type than documented, a
    value of that type is a 'variable' and is compared as it is. Item types of lists are
    checked one level deep against each allowed list."""
    answer_type = _answer_type(allowed)
    is_variable = answer_type is not None and answer_type != expected
    if type(value) is expected:
        if item_type is None:
            return _OK, is_variable
        for option in allowed:
            if type(option) is not list or all(
                    _check_type(param, item, option, str(item_type), item_type, None)[0].valid for item in value):
                return _OK, is_variable
        return _fail("type_error:nested", f"Nested type check failed for {_show(param)}: expected {type_name} of "
                     f"{item_type.__name__}, got {_show(value)}."), is_variable
    if answer_type is not None and type(value) is answer_type:
        return _OK, True
    return _fail("type_error:simple", f"Incorrect type for parameter {_show(param)}: expected {type_name}, "
                 f"got {type(value).__name__} ({_show(value)})."), is_variable


def _check_string(param: str, value: str, allowed: list) -> BFCLResult:
    if standardize_string(value) in [standardize_string(a) for a in allowed if type(a) is str]:
        return _OK
    return _fail("value_error:string", f"Invalid value for {_show(param)}: {_show(value)}; expected one of {allowed}.")


def _check_list(param: str, value: list, allowed: list) -> BFCLResult:
    # Iterating "" gives [], so an empty list matches an optional parameter (BFCL does the same).
    options = [[_std(x) for x in option] for option in allowed]
    if [_std(x) for x in value] in options:
        return _OK
    return _fail("value_error:list/tuple", f"Invalid value for {_show(param)}: {_show(value)}; expected one of {allowed}.")


def _check_dict(param: str, value: dict, allowed: list) -> BFCLResult:
    result = _fail("dict_checker:unclear", f"No allowed dict for {_show(param)}.")
    for option in allowed:
        if option == "":
            continue
        result = _OK
        for key, item in value.items():
            if key not in option:
                result = _fail("value_error:dict_key", f"Unexpected dict key {_show(key)} in {_show(param)}.")
                break
            if _std(item) not in [_std(a) for a in option[key]]:
                result = _fail("value_error:dict_value", f"Invalid value for {_show(param)}[{_show(key)}]: {_show(item)}.")
                break
        if result.valid:
            missing = [k for k, v in option.items() if k not in value and "" not in v]
            if missing:
                result = _fail("value_error:dict_key", f"Missing dict key {missing[0]!r} in {_show(param)}.")
        if result.valid:
            return _OK
    return result


def _check_list_of_dicts(param: str, value: list, allowed: list) -> BFCLResult:
    result = _fail("list_dict_checker:unclear", f"No allowed list of dicts for {_show(param)}.")
    for option in allowed:  # "" has length 0, so an empty list matches an optional parameter
        if len(value) != len(option):
            result = _fail("value_error:list_dict_count", f"Wrong number of dicts in {_show(param)}.")
            continue
        failed = next((r for r in (_check_dict(param, item, [expected]) for item, expected in zip(value, option))
                       if not r.valid), None)
        if failed is None:
            return _OK
        result = failed
    return result


# ---------------------------------------------------------------------------------------------
# Calls
# ---------------------------------------------------------------------------------------------
def _find_function(functions: list[dict] | dict, name: str) -> dict | None:
    if isinstance(functions, dict):
        return functions
    return next((f for f in functions if f.get("name") == name), None)


def check_call(function: dict, call: dict[str, dict], answer: dict[str, dict]) -> BFCLResult:
    """One decoded call `{name: params}` against one function doc and one expected call
    `{name: {param: [allowed values]}}` (BFCL's simple-function rules)."""
    allowed = next(iter(answer.values()))
    name = function["name"]
    if name not in call:
        return _fail("simple_function_checker:wrong_func_name", f"Function {name!r} not called.")
    params = call[name]
    spec = function["parameters"]
    properties = spec.get("properties", {})
    for param in spec.get("required", []):
        if param not in params:
            return _fail("simple_function_checker:missing_required", f"Missing required parameter {_show(param)}.")
    for param, value in params.items():
        if param not in properties or param not in allowed:
            return _fail("simple_function_checker:unexpected_param", f"Unexpected parameter {_show(param)}.")
        type_name = properties[param]["type"]
        expected = _PYTHON_TYPES[type_name]
        item_type = _PYTHON_TYPES[properties[param]["items"]["type"]] if type_name in _NESTED_TYPES else None
        if type_name == "tuple" and type(value) is tuple:
            value = list(value)
        if type_name == "float" and type(value) is int:
            value = float(value)
        result, is_variable = _check_type(param, value, allowed[param], type_name, expected, item_type)
        if not result.valid:
            return result
        if not is_variable:
            if expected is dict:
                result = _check_dict(param, value, allowed[param])
            elif expected is list and item_type is dict:
                result = _check_list_of_dicts(param, value, allowed[param])
            elif expected is str:
                result = _check_string(param, value, allowed[param])
            elif expected is list:
                result = _check_list(param, value, allowed[param])
            else:
                result = None
            if result is not None:
                if not result.valid:
                    return result
                continue
        if value not in allowed[param]:
            return _fail("value_error:others", f"Invalid value for {_show(param)}: {_show(value)}; expected one of {allowed[param]}.")
    for param, values in allowed.items():
        if param not in params and "" not in values:
            return _fail("simple_function_checker:missing_optional", f"Expected parameter {_show(param)} not given.")
    return _OK


def _check_parallel(functions, calls, answers) -> BFCLResult:
    if len(calls) != len(answers):
        return _fail("parallel_function_checker_no_order:wrong_count",
                     f"Wrong number of calls: {len(calls)}, expected {len(answers)}.")
    matched: set[int] = set()
    for i, answer in enumerate(answers):
        function = _find_function(functions, next(iter(answer)))
        if function is None:
            return _fail("parallel_function_checker_no_order:cannot_find_match", "Expected function not documented.")
        errors = []
        for index, call in enumerate(calls):
            if index in matched:
                continue
            result = check_call(function, call, answer)
            if result.valid:
                matched.add(index)
                break
            errors.extend(result.errors)
        else:
            return BFCLResult(False, [f"No call matches expected call {i}.", *errors],
                              "parallel_function_checker_no_order:cannot_find_match")
    return _OK


def check_entry(possible_answer: list[dict] | None, category: str) -> None:
    """Raise ValueError for an entry `bfcl_ast_check` cannot check: a category that is not a
    string or is a Java/JavaScript one, or no `possible_answer` where the category needs one."""
    if not isinstance(category, str) or "java" in category:
        raise ValueError(f"category {category!r}: only Python categories are supported")
    if possible_answer is None and "relevance" not in category:
        raise ValueError(f"category {category!r} needs possible_answer")


def bfcl_ast_check(functions: list[dict] | dict, output: Any, possible_answer: list[dict] | None,
                   category: str) -> BFCLResult:
    """Check a model output against a BFCL entry by BFCL's AST rules (see the module doc).

    functions: the entry's `function` list; output: raw model text or parsed calls;
    possible_answer: the entry's `ground_truth` (list of `{name: {param: [allowed]}}`; None
    for irrelevance); category: e.g. "simple_python", "multiple", "parallel",
    "live_parallel_multiple", "irrelevance". Never raises on model output (whatever goes wrong
    decoding or checking it is a failed check); raises ValueError only for a bad entry (see
    `check_entry`)."""
    check_entry(possible_answer, category)
    try:
        calls = parse_function_calls(output)
    except ToolCallParseError as exc:
        calls, decode_error = None, str(exc)
    except Exception as exc:  # noqa: BLE001 - whatever the model wrote, it failed to decode
        calls, decode_error = None, type(exc).__name__
    if "relevance" in category:  # irrelevance: no call is right; relevance: any call is
        has_call = calls is not None and not _is_empty(calls)
        if ("irrelevance" in category) != has_call:
            return _OK
        if has_call:
            return _fail("irrelevance_error:decoder_success", "A function was called where none should be.")
        return _fail("relevance_error:decoder_failed", "No function call decoded.")
    if calls is None:
        return _fail("ast_decoder:decoder_failed", f"Failed to decode the output: {decode_error}")
    if not _is_call_list(calls):
        return _fail("ast_decoder:decoder_wrong_output_format", "Output is not a list of function calls.")
    try:
        if "parallel" in category:
            return _check_parallel(functions, calls, possible_answer)
        if len(calls) != len(possible_answer):
            return _fail("wrong_count", f"Wrong number of calls: {len(calls)}, expected {len(possible_answer)}.")
        if "multiple" in category:
            function = _find_function(functions, next(iter(possible_answer[0])))
        else:
            function = functions[0] if isinstance(functions, list) else functions
        return check_call(function, calls[0], possible_answer[0])
    except Exception as exc:  # noqa: BLE001 - a malformed entry or odd values must not stop a run
        return _fail("checker_error", f"Could not check the output: {type(exc).__name__}: {exc}")
