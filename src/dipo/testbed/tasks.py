"""Synthetic tasks with graded difficulty for the CPU testbed, deterministic by seed.

Two families, five difficulty levels each (1 = easiest):

- **maths**: arithmetic word problems. The target completion is a short chain of thought, one
  equation per step, ending in `\\boxed{answer}` (scored by `dipo.rewards.math_reward`). Levels
  add steps, larger numbers and multiplication. Each step and the closing sentence are written in
  one of a few equivalent styles (`7+5=12.`, `Then 7+5=12.`, `So 7+5=12.`, `Now 7+5=12.`; `\\boxed{12}`,
  `The answer is \\boxed{12}.`, ...), drawn per problem: like a real LLM's, a correct answer then has
  a perplexity of its own (the phrasing), so the perplexities of right and wrong answers overlap
  instead of every correct answer being near-deterministic. Level 6 ("question twist", not in the default
  set) is a level-1 story that asks for a number already given ("How many apples did Tom buy?").
  SFT never shows it, so the warm-started policy answers it *confidently wrong* (it computes the
  usual total at very low perplexity): the hard, low-perplexity groups DiPO's max-PPL reward is
  for, which a tiny model that is unsure whenever it is wrong would otherwise never produce.
- **tools**: one function call against a few small JSON schemas; the target completion is
  `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` (scored by the function-call checker
  in `dipo.rewards`). Levels add parameters, distractor tools, and values that need a unit
  conversion.

Rows: `id`, `prompt` (the chat template rendered for one user turn, a plain string, so TRL
treats it as a standard prompt), `answer` (gold: the number as a string, or the gold call as
JSON), `completion` (a correct target, used for SFT), `difficulty` (1-5), `task` ("math" |
"tool"), and for tools `tools` (the JSON schemas offered). Train and held-out rows are disjoint
by construction: a problem's split is a function of a hash of its text.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Sequence

from dipo.testbed.model import chat_prompt

LEVELS = (1, 2, 3, 4, 5)  # the graded levels (the default set)
TWIST_LEVEL = 6  # a one-step story whose question asks for a given number: never in SFT (see below)
ALL_LEVELS = (*LEVELS, TWIST_LEVEL)
# The levels `dipo demo` and benchmarks/learning.py train and evaluate on: level 1 gives the easy groups,
# level 3 (and part of level 2) the hard ones, levels 2-3 the guesses RL can unlearn. Levels 4-5 are out of
# the warm start's reach (accuracy <= 0.1): they only diluted the held-out gain and the share of easy groups.
RL_LEVELS = (1, 2, 3)
# RL sampling temperature of `dipo demo`, the learning benchmark and `dipo testbed --check` (TRL's default).
# Lower ones give more easy groups but put guesses and right answers at the same low perplexity: at 0.7
# the PSD split was not valid on either check sample (docs/testbed.md).
RL_TEMPERATURE = 1.0
SPLITS = ("train", "test")
HELD_OUT_PERCENT = 20  # share of all possible problems that belong to the held-out split

NAMES = [("Tom", "He"), ("Ann", "She"), ("Sam", "He"), ("Mia", "She"), ("Ben", "He"), ("Eva", "She"),
         ("Leo", "He"), ("Zoe", "She"), ("Max", "He"), ("Ivy", "She")]
ITEMS = ["apples", "pens", "coins", "books", "cards", "eggs", "stamps", "shells", "marbles", "stickers"]
GAIN_VERBS = ["buys", "finds", "gets", "receives"]
LOSS_VERBS = ["gives away", "loses", "sells"]

# level -> (number of operations, largest operand, which operations)
MATH_LEVELS: dict[int, tuple[int, int, str]] = {
    1: (1, 9, "+-"),
    2: (2, 9, "+-"),
    3: (2, 20, "+-*"),
    4: (3, 30, "+-*"),
    5: (4, 60, "+-*"),
}


def _split_of(text: str) -> str:
    bucket = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % 100
    return "test" if bucket < HELD_OUT_PERCENT else "train"


def _check_args(n: int, levels: Sequence[int], split: str) -> None:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not levels or any(level not in ALL_LEVELS for level in levels):
        raise ValueError(f"levels must be a non-empty subset of {ALL_LEVELS}, got {tuple(levels)}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


GAIN_PAST = {"buys": "buy", "finds": "find", "gets": "get", "receives": "receive"}
LOSS_PAST = {"gives away": "give away", "loses": "lose", "sells": "sell"}


# Equivalent ways to write one step and the closing answer. Only the words around the equation
# vary: the equation is always `x op k = n`, so the arithmetic is learnt once, not per style.
STEP_STYLES = ("{x}{op}{k}={n}.", "Then {x}{op}{k}={n}.", "So {x}{op}{k}={n}.", "Now {x}{op}{k}={n}.")
ANSWER_STYLES = ("\\boxed{{{n}}}", "The answer is \\boxed{{{n}}}.", "So the answer is \\boxed{{{n}}}.")


def _write_answer(question: str, steps: Sequence[tuple[int, str, int, int]], answer: int) -> str:
    """The target chain of thought for `question`: one sentence per (x, op, k, n) step, then the
    boxed answer. The styles are drawn from a hash of the question (not the problem generator's
    random stream), so adding styles leaves the problems themselves unchanged."""
    rng = random.Random(hashlib.sha256(("style:" + question).encode()).hexdigest())
    sentences = [rng.choice(STEP_STYLES).format(x=x, op=op, k=k, n=n) for x, op, k, n in steps]
    return " ".join([*sentences, rng.choice(ANSWER_STYLES).format(n=answer)])


def guess_completion(question: str) -> str:
    """A guess instead of a solution: the story's last number, boxed without working, in one of the
    answer styles (`The answer is \\boxed{k}.`). Almost always wrong: SFT shows it on part of the
    harder problems (`TestbedConfig.guess_rates`), so the warm start sometimes guesses, confidently
    wrong (low perplexity), and RL can learn to work the problem out instead."""
    return _write_answer(question, [], int(re.findall(r"[0-9]+", question)[-1]))


def _twist_problem(rng: random.Random) -> tuple[str, str, str]:
    name, pronoun = rng.choice(NAMES)
    item = rng.choice(ITEMS)
    value = rng.randint(1, 9)
    if rng.random() < 0.5:
        verb, k = rng.choice(GAIN_VERBS), rng.randint(1, 9)
        story = f"{name} has {value} {item}. {pronoun} {verb} {k} more."
        past = GAIN_PAST[verb]
    else:
        verb, k = rng.choice(LOSS_VERBS), rng.randint(1, value)
        story = f"{name} has {value} {item}. {pronoun} {verb} {k}."
        past = LOSS_PAST[verb]
    if rng.random() < 0.5:
        question, answer = f"{story} How many {item} did {name} {past}?", k
    else:
        question, answer = f"{story} How many {item} did {name} have at first?", value
    return question, _write_answer(question, [], answer), str(answer)


def _math_problem(rng: random.Random, level: int) -> tuple[str, str, str]:
    """One word problem: (question, chain-of-thought completion, answer)."""
    if level == TWIST_LEVEL:
        return _twist_problem(rng)
    n_ops, top, ops = MATH_LEVELS[level]
    name, pronoun = rng.choice(NAMES)
    item = rng.choice(ITEMS)
    value = rng.randint(1, top)
    sentences = [f"{name} has {value} {item}."]
    steps = []
    for _ in range(n_ops):
        op = rng.choice(ops)
        if op == "-" and value == 0:
            op = "+"
        if op == "+":
            k = rng.randint(1, top)
            sentences.append(f"{pronoun} {rng.choice(GAIN_VERBS)} {k} more.")
            new = value + k
        elif op == "-":
            k = rng.randint(1, value)
            sentences.append(f"{pronoun} {rng.choice(LOSS_VERBS)} {k}.")
            new = value - k
        else:
            k = rng.choice([2, 3])
            sentences.append(f"{pronoun} {'doubles' if k == 2 else 'triples'} the {item}.")
        if op == "*":
            new = value * k
        steps.append((value, op, k, new))
        value = new
    sentences.append(f"How many {item} does {name} have now?")
    question = " ".join(sentences)
    return question, _write_answer(question, steps, value), str(value)


# name -> (description, {param: (type, values or None)}, templates); {x} fills a parameter, a
# template part `{minutes_h}` asks for a value given in hours that the call needs in minutes.
TOOLS: dict[str, dict] = {
    "get_weather": {
        "params": {"city": ("string", ["Paris", "London", "Berlin", "Tokyo", "Rome", "Madrid", "Oslo",
                                       "Cairo", "Lima", "Delhi"]),
                   "unit": ("string", ["celsius", "fahrenheit"])},
        "required": ["city"],
        "asks": {("city",): "What is the weather in {city}?",
                 ("city", "unit"): "What is the weather in {city} in {unit}?"},
    },
    "set_timer": {
        "params": {"minutes": ("integer", None)},
        "required": ["minutes"],
        "asks": {("minutes",): "Please set a timer for {minutes} minutes."},
    },
    "convert_currency": {
        "params": {"amount": ("integer", None), "from_currency": ("string", ["USD", "EUR", "GBP", "JPY", "CHF"]),
                   "to_currency": ("string", ["USD", "EUR", "GBP", "JPY", "CHF"])},
        "required": ["amount", "from_currency", "to_currency"],
        "asks": {("amount", "from_currency", "to_currency"): "Convert {amount} {from_currency} to {to_currency}."},
    },
    "play_song": {
        "params": {"title": ("string", ["Yesterday", "Imagine", "Hello", "Friday", "Monday"]),
                   "artist": ("string", ["Tom", "Ann", "Sam", "Mia", "Ben"])},
        "required": ["title"],
        "asks": {("title",): "Play the song {title}.", ("title", "artist"): "Play {title} by {artist}."},
    },
    "book_table": {
        "params": {"people": ("integer", None),
                   "day": ("string", ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
                                      "Sunday"])},
        "required": ["people", "day"],
        "asks": {("people", "day"): "Book a table for {people} people on {day}."},
    },
}

# level -> (number of tools offered, fewest parameters asked for, hours instead of minutes)
TOOL_LEVELS: dict[int, tuple[int, int, bool]] = {
    1: (1, 1, False),
    2: (1, 2, False),
    3: (2, 2, False),
    4: (3, 3, False),
    5: (3, 1, True),
}


def tool_schema(name: str) -> dict:
    """The JSON schema of one testbed tool (OpenAI function style)."""
    spec = TOOLS[name]
    props = {}
    for param, (kind, values) in spec["params"].items():
        props[param] = {"type": kind, **({"enum": values} if values else {})}
    return {"name": name, "parameters": {"type": "object", "properties": props, "required": spec["required"]}}


def _tool_problem(rng: random.Random, level: int) -> tuple[str, str, str, list[dict]]:
    """One tool-call problem: (request, completion, gold call JSON, offered schemas)."""
    n_tools, min_params, in_hours = TOOL_LEVELS[level]
    if in_hours:
        name, asked = "set_timer", ("minutes",)
    else:
        choices = [(t, a) for t, spec in TOOLS.items() for a in spec["asks"] if len(a) >= min_params]
        name, asked = rng.choice(sorted(choices))
    args: dict[str, object] = {}
    for param in asked:
        kind, values = TOOLS[name]["params"][param]
        args[param] = rng.choice(values) if values else rng.randint(2, 9 if in_hours else 60)
    if in_hours:
        request = f"Please set a timer for {args['minutes']} hours."
        args["minutes"] = int(args["minutes"]) * 60
    else:
        request = TOOLS[name]["asks"][asked].format(**args)
    offered = [name] + rng.sample(sorted(set(TOOLS) - {name}), n_tools - 1)
    rng.shuffle(offered)
    schemas = [tool_schema(t) for t in offered]
    call = json.dumps({"name": name, "arguments": args})
    return request, f"<tool_call>{call}</tool_call>", call, schemas


def tool_user_text(request: str, schemas: list[dict]) -> str:
    """The user turn for a tool task: the tool schemas as compact JSON, then the request."""
    return "Tools: " + json.dumps(schemas, separators=(",", ":")) + "\n" + request


def _make_rows(task: str, problem: Callable, n: int, seed: int, levels: Sequence[int], split: str) -> list[dict]:
    _check_args(n, levels, split)
    if task == "tool" and TWIST_LEVEL in levels:
        raise ValueError(f"levels: the question twists (level {TWIST_LEVEL}) are maths tasks; tool levels are {LEVELS}")
    rng = random.Random(f"{task}-{seed}")
    rows, seen = [], set()
    attempts = 0
    while len(rows) < n:
        attempts += 1
        if attempts > 200 * max(n, 10):
            raise ValueError(f"cannot draw {n} distinct {split} {task} problems at levels {tuple(levels)}")
        level = levels[len(rows) % len(levels)]  # levels in equal shares, in a fixed order
        made = problem(rng, level)
        user_text = made[0] if task == "math" else tool_user_text(made[0], made[3])
        if user_text in seen or _split_of(user_text) != split:
            continue
        seen.add(user_text)
        row = {"id": f"{task}-{split}-{seed}-{len(rows):05d}", "prompt": chat_prompt(user_text),
               "answer": made[2], "completion": made[1], "difficulty": level, "task": task}
        if task == "tool":
            row["tools"] = json.dumps(made[3])
        rows.append(row)
    return rows


def make_math_tasks(n: int, seed: int = 0, levels: Sequence[int] = LEVELS, split: str = "train") -> list[dict]:
    """`n` distinct arithmetic word problems, levels in equal shares, deterministic by `seed`."""
    return _make_rows("math", _math_problem, n, seed, levels, split)


def make_tool_tasks(n: int, seed: int = 0, levels: Sequence[int] = LEVELS, split: str = "train") -> list[dict]:
    """`n` distinct tool-call requests, levels in equal shares, deterministic by `seed`."""
    return _make_rows("tool", _tool_problem, n, seed, levels, split)


# -- risk prediction: the paper's third domain, as a binary-label task ------------------------------
#
# A loan case lists a few facts; a hidden points rule labels it, then the label is flipped with
# probability `noise` (real risk labels are noisy: the rule is only approximately recoverable).
# Points: +1 per late payment, +2 when the debt exceeds half the yearly income, +1 when less than
# 2 years in the job, -1 with 10 or more years in the job, -1 for a home owner, +1 for a loan taken
# for travel. The risk is "high" when the points reach RISK_THRESHOLD, else "low". A fact a case
# does not state adds nothing. Levels add facts (and distractors that carry no points) and bring
# the points closer to the threshold: level 1 states two facts and misses the threshold by 2 or
# more points, level 5 states every fact plus distractors and sits one point from it.

RISK_LABELS = ("high", "low")
RISK_POSITIVE = "high"
# The label reward also accepts these spellings (the prompt says so): 1/0 codes and "... risk".
RISK_SYNONYMS = {"1": "high", "0": "low", "high risk": "high", "low risk": "low"}
RISK_THRESHOLD = 3
RISK_NOISE = 0.1  # default share of flipped labels
PURPOSES = ["car", "house", "study", "travel", "business"]

# level -> (facts stated besides the late payments, distractors, points at least this far from the threshold)
RISK_LEVELS: dict[int, tuple[int, int, int]] = {
    1: (1, 0, 2),
    2: (2, 0, 2),
    3: (3, 0, 1),
    4: (4, 1, 1),
    5: (4, 2, 0),
}
_RISK_FACTS = ("income", "years", "home", "purpose")  # the order facts are added by level


def risk_points(case: dict) -> int:
    """The hidden rule's points for a case (the facts it states; see the comment above)."""
    points = case["late"]
    if "debt" in case and case["debt"] * 2 > case["income"]:
        points += 2
    if "years" in case:
        points += (case["years"] < 2) - (case["years"] >= 10)
    points -= case.get("home") == "owns"
    points += case.get("purpose") == "travel"
    return points


def risk_rule_label(case: dict) -> str:
    return "high" if risk_points(case) >= RISK_THRESHOLD else "low"


def _risk_case(rng: random.Random, level: int, target: str) -> dict:
    """A case of `level` whose rule label is `target`."""
    n_facts, _, margin = RISK_LEVELS[level]
    while True:  # rejection sampling: a few dozen tries at most
        case = {"late": rng.randint(0, 6)}
        for fact in _RISK_FACTS[:n_facts]:
            if fact == "income":
                case["income"] = rng.randint(15, 150)
                case["debt"] = rng.randint(0, case["income"])
            elif fact == "years":
                case["years"] = rng.randint(0, 15)
            elif fact == "home":
                case["home"] = rng.choice(["owns", "rents"])
            elif fact == "purpose":
                case["purpose"] = rng.choice(PURPOSES)
        points = risk_points(case)
        distance = points - RISK_THRESHOLD if points >= RISK_THRESHOLD else RISK_THRESHOLD - 1 - points
        close_enough = distance >= margin if margin else distance == 0
        if close_enough and (points >= RISK_THRESHOLD) == (target == "high"):
            return case


def risk_case_text(case: dict, distractors: Sequence[str] = ()) -> str:
    """The case description: its facts in a fixed order, then the distractors."""
    facts = [f"late payments {case['late']}"]
    if "income" in case:
        facts += [f"income {case['income']}k a year", f"debt {case['debt']}k"]
    if "years" in case:
        facts.append(f"years in job {case['years']}")
    if "home" in case:
        facts.append(f"home: {case['home']}")
    if "purpose" in case:
        facts.append(f"loan for {case['purpose']}")
    return "Loan case: " + ", ".join([*facts, *distractors]) + "."


def _risk_reasoning(case: dict, label: str) -> str:
    """A target completion: the points of each fact that has any, the total, the boxed label."""
    parts = [f"late payments +{case['late']}"] if case["late"] else []
    if "debt" in case and case["debt"] * 2 > case["income"]:
        parts.append("debt over half of income +2")
    if "years" in case and (case["years"] < 2 or case["years"] >= 10):
        parts.append("short job +1" if case["years"] < 2 else "long job -1")
    if case.get("home") == "owns":
        parts.append("owns home -1")
    if case.get("purpose") == "travel":
        parts.append("travel loan +1")
    reasons = ", ".join(parts) if parts else "nothing adds points"
    return f"{reasons.capitalize()}. Points {risk_points(case)}, so the risk is {label}. \\boxed{{{label}}}"


def risk_question(case_text: str) -> str:
    """The user turn: the case, the question, and the labels with their accepted codes."""
    return f"{case_text} Is the risk high or low? Give \\boxed{{high}} or \\boxed{{low}} (or 1 for high, 0 for low)."


def make_risk_tasks(n: int, seed: int = 0, levels: Sequence[int] = LEVELS, split: str = "train",
                    noise: float = RISK_NOISE) -> list[dict]:
    """`n` distinct loan cases, levels in equal shares, deterministic by `seed`.

    Rows: `id`, `prompt`, `answer` (the gold label: the hidden rule's, flipped with probability
    `noise`), `rule_label` (the rule's label before noise), `completion` (the rule's reasoning
    ending in `\\boxed{rule label}`), `labels` (["high", "low"]), `label_synonyms` (JSON text),
    `positive_label` ("high"), `difficulty`, `task` ("risk"). Train and held-out cases are disjoint
    (a hash of the text decides); both carry label noise, so no policy reaches accuracy 1.
    """
    _check_args(n, levels, split)
    if TWIST_LEVEL in levels:
        raise ValueError(f"levels: the question twists (level {TWIST_LEVEL}) are maths tasks; risk levels are {LEVELS}")
    if not 0.0 <= noise < 0.5:
        raise ValueError(f"noise must be in [0, 0.5), got {noise}")
    rng = random.Random(f"risk-{seed}")
    cities = sorted({c for spec in TOOLS.values() for c in spec["params"].get("city", ("", []))[1] or []})
    rows, seen, attempts = [], set(), 0
    while len(rows) < n:
        attempts += 1
        if attempts > 200 * max(n, 10):
            raise ValueError(f"cannot draw {n} distinct {split} risk cases at levels {tuple(levels)}")
        level = levels[len(rows) % len(levels)]
        case = _risk_case(rng, level, RISK_LABELS[len(rows) // len(levels) % 2])  # labels alternate per level
        n_distractors = RISK_LEVELS[level][1]
        distractors = [f"age {rng.randint(21, 70)}", f"city {rng.choice(cities)}"][:n_distractors]
        flipped = rng.random() < noise  # drawn for every case, so the noise does not shift the cases
        question = risk_question(risk_case_text(case, distractors))
        if question in seen or _split_of(question) != split:
            continue
        seen.add(question)
        rule = risk_rule_label(case)
        gold = ("low" if rule == "high" else "high") if flipped else rule
        rows.append({"id": f"risk-{split}-{seed}-{len(rows):05d}", "prompt": chat_prompt(question), "answer": gold,
                     "rule_label": rule, "completion": _risk_reasoning(case, rule), "labels": list(RISK_LABELS),
                     "label_synonyms": json.dumps(RISK_SYNONYMS), "positive_label": RISK_POSITIVE,
                     "difficulty": level, "task": "risk"})
    return rows
