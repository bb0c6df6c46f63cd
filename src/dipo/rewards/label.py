"""Label reward for classification tasks (the paper's risk prediction): 1.0 when the completion's
final label is the gold label, else 0.0.

The rule (`extract_label`):

1. *Answer markers* are every `\\boxed{...}` / `\\fbox{...}` and every `Answer: ...` (the word
   "answer", any case, then a colon; the rest of that line), so `Final answer: low` and
   `**Answer:** low` count too.
2. A marker's content is normalised: LaTeX wrappers (`\\text{}`, `\\textbf{}`, `\\mathrm{}`, ...),
   `$`, `*`, `_`, quotes and brackets around it and a trailing `.`, `,`, `;`, `:` or `!` are removed,
   inner white space collapsed, and letters lower-cased (unless `case_sensitive`).
3. The content names a label when it *equals* a label or a configured synonym after that
   normalisation (`high risk` is `high` only if declared as a synonym: containment would read
   `not high` as `high`).
4. The completion's label is the one its markers name. No marker naming a label gives no label;
   markers naming two different labels (`\\boxed{high} ... Answer: low`: a hedge) give no label.
   Markers naming nothing in the label set are ignored. Without a label set every marker's
   content counts as a label, so two markers with different contents give no label.

The label set and synonyms come from the factory (`make_label_reward(labels=..., synonyms=...)`)
or, for `dipo train --reward_funcs label`, from the dataset's `labels` column (a list of strings
per row) and optional `label_synonyms` column (a `{surface: label}` mapping or its JSON text),
which `dipo.data.load_label_dataset` and the `testbed:risk` tasks write. The gold label is the
`answer` column, normalised the same way.

Bounded time and memory: only the last `MAX_CHARS` characters of a completion are read, at most
`MAX_MARKERS` markers (the last ones) are looked at, and a marker's content is cut at
`MAX_LABEL_CHARS` (longer content names no label). Never raises on model output: anything
unexpected scores 0.0.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dipo.rewards.maths import completion_text

MAX_CHARS = 20_000  # only the tail of a completion is read
MAX_MARKERS = 64  # the last this many answer markers decide
MAX_LABEL_CHARS = 200  # content longer than this names no label

_MARKER = re.compile(r"\\(?:boxed|fbox)[ \t]*\{|\banswer\b[ \t*_]*[:\uff1a]", re.IGNORECASE)
_BRACE_OR_ESCAPE = re.compile(r"\\.|[{}]", re.DOTALL)  # an escaped character is content, not a brace
_WRAPPER = re.compile(r"^\\[A-Za-z]+[ \t]*\{(.*)\}$", re.DOTALL)
_EDGE = " \t\r\n$*_\"'`()[]<>"
_TRAILING = ".,;:!"


def normalise_label(text: str, case_sensitive: bool = False) -> str:
    """A marker's content or a label in comparable form (rule 2 of the module doc)."""
    text = text.strip()
    for _ in range(8):  # wrappers nest a few levels at most: \text{\textbf{high}}
        before = text
        text = text.strip(_EDGE).rstrip(_TRAILING).strip(_EDGE)
        match = _WRAPPER.match(text)
        if match:
            text = match.group(1)
        if text == before:
            break
    text = " ".join(text.split())
    return text if case_sensitive else text.lower()


def _braced(text: str, start: int) -> str | None:
    """Content of the brace group opened just before `start`, up to MAX_LABEL_CHARS; None if
    unclosed or longer (escaped braces are content)."""
    window, depth = text[start: start + MAX_LABEL_CHARS + 1], 1
    for token in _BRACE_OR_ESCAPE.finditer(window):
        if token.group() == "{":
            depth += 1
        elif token.group() == "}":
            depth -= 1
            if depth == 0:
                return window[: token.start()]
    return None


def answer_markers(text: str) -> list[str]:
    """Raw contents of the answer markers of `text` (rule 1), in order, the last MAX_MARKERS."""
    text = text[-MAX_CHARS:]
    markers = list(_MARKER.finditer(text))[-MAX_MARKERS:]
    contents = []
    for match in markers:
        if match.group(0).endswith("{"):
            content = _braced(text, match.end())
        else:
            line_end = text.find("\n", match.end(), match.end() + MAX_LABEL_CHARS + 1)
            content = text[match.end(): line_end if line_end >= 0 else match.end() + MAX_LABEL_CHARS + 1]
            if len(content) > MAX_LABEL_CHARS:
                content = None
        if content is not None:
            contents.append(content)
    return contents


class LabelSet:
    """A label set with synonyms, for looking up normalised marker contents.

    labels: the canonical labels (None: any content is a label, see the module doc);
    synonyms: `{surface form: canonical label}`. Raises ValueError on a bad configuration
    (a synonym naming an unknown label, two labels equal after normalisation, an empty label).
    """

    def __init__(self, labels: Sequence[str] | None = None, synonyms: Mapping[str, str] | None = None,
                 case_sensitive: bool = False):
        self.case_sensitive = case_sensitive
        self.labels = None if labels is None else [str(label) for label in labels]
        self._lookup: dict[str, str] = {}
        for label in self.labels or []:
            key = self._key(label, "labels")
            if key in self._lookup:
                raise ValueError(f"labels: {label!r} and {self._lookup[key]!r} are the same label after normalisation")
            self._lookup[key] = label
        for surface, label in (synonyms or {}).items():
            if self.labels is not None and str(label) not in self.labels:
                raise ValueError(f"label_synonyms: {surface!r} maps to {label!r}, which is not one of {self.labels}")
            key = self._key(str(surface), "label_synonyms")
            if self._lookup.get(key, label) != label:
                raise ValueError(f"label_synonyms: {surface!r} already names label {self._lookup[key]!r}")
            self._lookup[key] = str(label)

    def _key(self, text: str, where: str) -> str:
        key = normalise_label(text, self.case_sensitive)
        if not key:
            raise ValueError(f"{where}: {text!r} is empty after normalisation")
        return key

    def lookup(self, content: str) -> str | None:
        """The canonical label `content` names, or None (rule 3)."""
        key = normalise_label(content, self.case_sensitive)
        if not key:
            return None
        if key in self._lookup:
            return self._lookup[key]
        return key if self.labels is None else None


def extract_label(text: Any, labels: Sequence[str] | LabelSet | None = None,
                  synonyms: Mapping[str, str] | None = None, case_sensitive: bool = False) -> str | None:
    """The completion's final label by the module doc's rule, or None (no label, or two
    different labels). `text`: a string or TRL conversational messages. Never raises on
    model output; a bad label configuration raises ValueError."""
    label_set = labels if isinstance(labels, LabelSet) else LabelSet(labels, synonyms, case_sensitive)
    try:
        named = {label for label in map(label_set.lookup, answer_markers(completion_text(text))) if label}
    except Exception:  # noqa: BLE001 - model output must never raise
        return None
    return named.pop() if len(named) == 1 else None


def parse_synonyms(value: Any) -> dict[str, str] | None:
    """A `label_synonyms` column value (a mapping, its JSON text, or "" / None for none) as a dict."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, Mapping):
        raise ValueError(f"label_synonyms must be a mapping or its JSON text, got {type(value).__name__}")
    return {str(k): str(v) for k, v in value.items()}


def _per_row(value: Any, n: int, name: str) -> list:
    """A column as n values: TRL passes one value per completion; a scalar or one label list is
    shared by all completions."""
    if value is None or isinstance(value, (str, Mapping)):
        return [value] * n
    value = list(value)
    if name == "labels" and value and all(isinstance(v, str) and not v.startswith("[") for v in value):
        return [value] * n  # one label set for every completion (per-row sets are lists or JSON lists)
    if len(value) != n:
        raise ValueError(f"{name}: got {len(value)} values for {n} completions")
    return value


def make_label_reward(labels: Sequence[str] | None = None, synonyms: Mapping[str, str] | None = None,
                      case_sensitive: bool = False) -> Callable[..., list[float]]:
    """A TRL reward function: 1.0 when `extract_label(completion)` equals the gold `answer`, else 0.0.

    With `labels` / `synonyms` given here they apply to every row; otherwise each row's `labels`
    and `label_synonyms` columns are used (module doc). A gold answer that names no label of the
    row's set scores 0.0 for every completion (loaders reject such rows up front).
    """
    fixed = LabelSet(labels, synonyms, case_sensitive) if labels is not None or synonyms else None
    cache: dict[str, LabelSet] = {}

    def label_set_of(row_labels: Any, row_synonyms: Any) -> LabelSet:
        if fixed is not None:
            return fixed
        key = json.dumps([row_labels, row_synonyms], sort_keys=True, default=str)
        if key not in cache:
            parsed = None if row_labels is None else [str(x) for x in (
                json.loads(row_labels) if isinstance(row_labels, str) else row_labels)]
            cache[key] = LabelSet(parsed, parse_synonyms(row_synonyms), case_sensitive)
        return cache[key]

    def label_reward(completions: Sequence[Any], answer: Sequence[Any] | str | None = None,
                     labels: Any = None, label_synonyms: Any = None, **kwargs: Any) -> list[float]:
        n = len(completions)
        if answer is None:
            raise ValueError("label_reward needs an `answer` column (the gold label)")
        golds = _per_row(answer, n, "answer")
        label_sets = _per_row(labels, n, "labels")
        synonym_maps = _per_row(label_synonyms, n, "label_synonyms")
        scores = []
        for completion, gold, row_labels, row_synonyms in zip(completions, golds, label_sets, synonym_maps):
            label_set = label_set_of(row_labels, row_synonyms)
            gold_label = None if gold is None else label_set.lookup(str(gold))
            predicted = extract_label(completion, label_set)
            scores.append(1.0 if gold_label is not None and predicted == gold_label else 0.0)
        return scores

    return label_reward


label_reward = make_label_reward()
label_reward.__doc__ = ("Label reward for classification rows (`answer` = gold label, `labels`, optional "
                        "`label_synonyms` columns); see dipo.rewards.label.")
