"""Fuzz the rewards with hostile model outputs: crashes, time per item, deadline overruns, memory.

    OMP_NUM_THREADS=1 python benchmarks/fuzz_rewards.py            # full run, ~10,400 outputs
    python benchmarks/fuzz_rewards.py --per-family 20 --no-slow     # a quick pass

Every output is scored against real gold answers from ../shared/data: maths outputs by
`math_reward` (the process-wide grader, deadline DIPO_GRADER_TIMEOUT, default 5 s) against
AIME/MATH-500/OlympiadBench answers; tool outputs by `tool_call_reward`, the partial-credit
reward (ToolRL rows with and without a gold call) and `bfcl_ast_check` (simple, parallel and
irrelevance entries). One output is one item, timed from the call to the returned score.

A crash is a reward that raises or returns anything but a number in [0, 1]. An item is over the
deadline when it takes longer than the grader's deadline plus `--start-allowance` seconds (a
killed worker's replacement must start before the next item can be graded). Peak memory: the
largest resident set of this process and of any grading worker. Writes
benchmarks/results/fuzz_rewards.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results" / "fuzz_rewards.json"

# Families that each cost up to a full deadline per item (math-verify grinds until killed).
SLOW_FAMILIES = {"math_power_tower", "math_huge_factorial", "math_big_exponent"}


# ---------------------------------------------------------------------------------------------
# Hostile outputs, by family: each generator takes a random.Random and returns one text
# ---------------------------------------------------------------------------------------------
def _digits(rng: random.Random, low: int, high: int) -> str:
    n = rng.randint(low, high)
    return str(rng.randint(1, 9)) + "".join(rng.choices("0123456789", k=n - 1))


_LATEX = [r"\frac", r"\sqrt", "{", "}", "^", "_", r"\left(", r"\right)", r"\cdot", r"\pi", "x", "2", "+", "-", "=",
          r"\infty", r"\{", r"\}", ",", ".", r"\boxed{", r"\text{", "$", "\\", r"\begin{pmatrix}", "&", r"\\"]

MATH_FAMILIES: dict[str, Callable[[random.Random], str]] = {
    # integers past Python's 4,300-digit int() limit, boxed: int() used to raise
    "math_long_integer": lambda r: rf"The answer is \boxed{{{_digits(r, 4_301, 20_000)}}}.",
    # long digit strings with a tail that defeats a plain-integer match (quadratic regex)
    "math_digit_string": lambda r: rf"\boxed{{{_digits(r, 16_000, 100_000)}{r.choice('x.,;')}}}",
    "math_long_decimal": lambda r: rf"\boxed{{{_digits(r, 1_000, 50_000)}.{_digits(r, 1_000, 50_000)}}}",
    "math_huge_answer": lambda r: r"\boxed{" + "x+" * r.randint(200_000, 500_000) + "1}",
    "math_huge_completion": lambda r: "Let me think. " * r.randint(20_000, 80_000) + r"\boxed{5}",
    "math_unclosed_boxed": lambda r: r"\boxed{" * r.randint(1_000, 50_000),
    "math_deep_braces": lambda r: r"\boxed{" + "{" * (n := r.randint(100, 5_000)) + "1" + "}" * (n + 1),
    "math_many_boxed": lambda r: r"\boxed{1} " * r.randint(1_000, 30_000),
    "math_latex_soup": lambda r: r"\boxed{" + "".join(r.choices(_LATEX, k=r.randint(5, 400))) + "}",
    "math_nested_fracs": lambda r: r"\boxed{" + r"\frac{1}{" * (n := r.randint(5, 300)) + "2" + "}" * n + "}",
    "math_nul_and_controls": lambda r: "".join(r.choices("\x00\x01\x1b\x7f\ufeff\u202e", k=r.randint(1, 2_000)))
    + r"\boxed{" + "\x00" * r.randint(0, 5) + "}",
    "math_lone_surrogate": lambda r: rf"\boxed{{{r.randint(0, 999)}\ud800}} \udfff",
    "math_random_unicode": lambda r: r"\boxed{" + "".join(chr(r.randint(32, 0x2FFFF)) for _ in range(r.randint(1, 300))) + "}",
    "math_empty": lambda r: r.choice(["", " ", r"\boxed{}", r"\boxed", r"\boxed{ }", "\n" * 1000]),
    "math_big_exponent": lambda r: rf"\boxed{{{r.randint(2, 9)}^{{{_digits(r, 3, 12)}}}}}",
    "math_power_tower": lambda r: r"\boxed{" + "^{".join(["9"] * (n := r.randint(4, 8))) + "}" * (n - 1) + "}",
    "math_huge_factorial": lambda r: rf"\boxed{{(10^{{{r.randint(7, 9)}}})!}}",
}


def _tool_json(name: str, args_text: str) -> str:
    return f'<tool_call>\n{{"name": "{name}", "arguments": {args_text}}}\n</tool_call>'


TOOL_FAMILIES: dict[str, Callable[[random.Random], str]] = {
    "tool_deep_json": lambda r: "<tool_call>" + "[" * (n := r.randint(1_000, 50_000)) + "]" * n + "</tool_call>",
    "tool_deep_arguments": lambda r: _tool_json("f", '{"a": ' + "[" * (n := r.randint(500, 20_000)) + "]" * n + "}"),
    "tool_deep_python": lambda r: "[f(a=" + "[" * (n := r.randint(50, 5_000)) + "]" * n + ")]",
    "tool_long_json_int": lambda r: _tool_json("f", '{"a": ' + _digits(r, 4_301, 50_000) + "}"),
    "tool_hex_literal": lambda r: f"[f(a=0x{'F' * r.randint(1_000, 50_000)})]",
    "tool_bin_literal": lambda r: f"[f(a=0b{'1' * r.randint(10_000, 90_000)})]",
    "tool_long_decimal_literal": lambda r: f"[f(a={_digits(r, 4_301, 50_000)})]",
    "tool_repeated_tool_call": lambda r: "<tool_call>" * r.randint(1_000, 9_000),
    "tool_repeated_think": lambda r: "<think>" * r.randint(1_000, 14_000) + "<tool_call>" * r.randint(0, 1_000),
    "tool_bare_tags": lambda r: r.choice(["<tool_call>", "</tool_call>", "<tool_call></tool_call>", "<response></response>",
                                          "<think></think>"]) * r.randint(1, 8_000),
    "tool_empty_or_nul": lambda r: r.choice(["", " ", "\n", "\x00" * r.randint(1, 5_000), "\ufeff"]),
    "tool_huge_arithmetic": lambda r: "[f(a=" + "*".join(["999999**64"] * r.randint(2, 2_000)) + ")]",
    "tool_string_concat": lambda r: "[f(a=" + "+".join(["'x'"] * r.randint(100, 20_000)) + ")]",
    "tool_python_injection": lambda r: r.choice([
        "[f(a=__import__('os').system('touch /tmp/dipo_fuzz_pwned'))]", "[f(a=open('/etc/passwd').read())]",
        "[f(a=(lambda: 1)())]", "[f(a=[x for x in range(10**9)])]", "[f(**{'a': 1})]", "[eval(a='1+1')]"]),
    "tool_lone_surrogate": lambda r: _tool_json("f", '{"a": "\ud800"}') + "\udfff",
    "tool_huge_output": lambda r: _tool_json("f", '{"a": "' + "x" * r.randint(100_000, 1_000_000) + '"}'),
    "tool_many_calls": lambda r: "<tool_call>\n" + '{"name": "f", "arguments": {"a": 1}}\n' * r.randint(100, 5_000)
    + "</tool_call>",
    "tool_json_soup": lambda r: "<tool_call>" + "".join(r.choices('{}[]":,0123456789aenrtu \\', k=r.randint(1, 3_000)))
    + "</tool_call>",
}


def math_golds() -> list[str]:
    golds = []
    for name in ("aime24", "math500", "olympiadbench"):
        with open(DATA / "math" / f"{name}.jsonl") as f:
            golds += [json.loads(line)["answer"] for line in f]
    return golds


def tool_golds() -> tuple[list[str], list[dict]]:
    """(ToolRL gold texts, with and without calls; BFCL rows of three categories)."""
    from dipo.data import load_bfcl

    with open(DATA / "tool" / "rlla_test.jsonl") as f:
        rlla = [json.loads(line)["reward_model"]["ground_truth"] for line in f]
    bfcl = [row for category in ("simple_python", "parallel", "irrelevance")
            for row in load_bfcl(category, data_dir_=DATA / "bfcl", limit=40)]
    return rlla, bfcl


def family_counts(per_family: int, slow: bool = True) -> dict[str, int]:
    """Outputs per family: `per_family`, a tenth of it for the slow families (or none)."""
    return {family: (max(1, per_family // 10) if slow else 0) if family in SLOW_FAMILIES else per_family
            for family in {**MATH_FAMILIES, **TOOL_FAMILIES}}


def hostile_items(per_family: int, seed: int = 0, slow: bool = True) -> Iterator[tuple[str, str]]:
    """(family, output) pairs, made one at a time (some are a megabyte): see `family_counts`."""
    rng = random.Random(seed)
    makers = {**MATH_FAMILIES, **TOOL_FAMILIES}
    for family, count in family_counts(per_family, slow).items():
        for _ in range(count):
            yield family, makers[family](rng)


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------
def _scorers(rng: random.Random) -> tuple[Callable[[str], list[float]], Callable[[str], list[float]]]:
    from dipo.rewards import bfcl_ast_check, make_tool_call_reward, math_reward, tool_call_reward

    golds, (rlla, bfcl) = math_golds(), tool_golds()
    partial = make_tool_call_reward(partial_credit=True)

    def score_math(text: str) -> list[float]:
        return math_reward([text], answer=[rng.choice(golds)])

    def score_tool(text: str) -> list[float]:
        gold, row = rng.choice(rlla), rng.choice(bfcl)
        return [tool_call_reward([text], answer=[gold])[0], partial([text], answer=[gold])[0],
                float(bfcl_ast_check(row["functions"], text, row["possible_answer"], row["category"]).valid)]

    return score_math, score_tool


def run(per_family: int, seed: int = 0, slow: bool = True, start_allowance: float = 1.0,
        progress: bool = True) -> dict:
    """Score every hostile item; returns the summary (see the module doc)."""
    from dipo.rewards import default_grader

    rng = random.Random(seed + 1)
    score_math, score_tool = _scorers(rng)
    grader = default_grader()
    limit = grader.timeout + start_allowance
    families: dict[str, dict] = {}
    times: list[float] = []
    examples: list[dict] = []
    score_math(r"\boxed{1}")  # start the workers before timing
    total = sum(family_counts(per_family, slow).values())
    canary = Path("/tmp/dipo_fuzz_pwned")  # what tool_python_injection would create if run
    canary.unlink(missing_ok=True)
    for n, (family, text) in enumerate(hostile_items(per_family, seed, slow)):
        stats = families.setdefault(family, {"n": 0, "crashes": 0, "over_deadline": 0, "max_s": 0.0, "total_s": 0.0,
                                             "scores": {}})
        start = time.perf_counter()
        try:
            scores = (score_math if family.startswith("math_") else score_tool)(text)
            error = None if all(isinstance(s, float) and 0.0 <= s <= 1.0 for s in scores) else f"bad scores {scores}"
        except Exception as exc:  # noqa: BLE001 - a crash is what we count
            scores, error = [], f"{type(exc).__name__}: {str(exc)[:200]}"
        elapsed = time.perf_counter() - start
        times.append(elapsed)
        stats["n"] += 1
        stats["max_s"] = max(stats["max_s"], elapsed)
        stats["total_s"] += elapsed
        for s in scores:
            stats["scores"][str(s)] = stats["scores"].get(str(s), 0) + 1
        if error:
            stats["crashes"] += 1
            examples.append({"family": family, "error": error})
        if elapsed > limit:
            stats["over_deadline"] += 1
            examples.append({"family": family, "error": f"took {elapsed:.2f} s"})
        if progress and (n + 1) % 500 == 0:
            print(f"  {n + 1}/{total} items, {sum(times):.0f} s", file=sys.stderr, flush=True)
    timeouts, crashes = grader.timeouts, grader.crashes
    grader.close()
    ordered = sorted(times)
    summary = {
        "items": len(times),
        "model_output_executed": canary.exists(),
        "math_items": sum(s["n"] for f, s in families.items() if f.startswith("math_")),
        "tool_items": sum(s["n"] for f, s in families.items() if f.startswith("tool_")),
        "crashes": sum(s["crashes"] for s in families.values()),
        "over_deadline": sum(s["over_deadline"] for s in families.values()),
        "deadline_s": grader.timeout,
        "limit_s": limit,
        "max_s": round(ordered[-1], 4),
        "p99_s": round(ordered[int(0.99 * (len(ordered) - 1))], 4),
        "median_s": round(ordered[len(ordered) // 2], 4),
        "total_s": round(sum(times), 1),
        "grader_timeouts": timeouts,
        "grader_worker_crashes": crashes,
        # ru_maxrss is in KiB on Linux; children = the largest grading worker that has exited
        "peak_rss_mb_main": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_rss_mb_largest_worker": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "families": {f: {**s, "max_s": round(s["max_s"], 4), "total_s": round(s["total_s"], 2)} for f, s in families.items()},
        "failures": examples[:20],
    }
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-family", type=int, default=310, help="outputs per family (slow families: a tenth)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-slow", action="store_true", help="skip the families that cost a full deadline each")
    parser.add_argument("--start-allowance", type=float, default=1.0,
                        help="seconds beyond the deadline an item may take (a killed worker's replacement starting)")
    parser.add_argument("--out", default=str(RESULTS), help="JSON file to write ('' = do not write)")
    args = parser.parse_args(argv)
    os.environ.setdefault("DIPO_GRADER_WORKERS", "2")
    start = time.time()
    summary = run(args.per_family, args.seed, not args.no_slow, args.start_allowance)
    summary["config"] = {"per_family": args.per_family, "seed": args.seed, "slow_families": not args.no_slow,
                         "grader_workers": int(os.environ["DIPO_GRADER_WORKERS"]), "cpus": os.cpu_count(),
                         "python": platform.python_version(), "wall_s": round(time.time() - start, 1),
                         "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    for family, stats in summary["families"].items():
        print(f"{family:28s} n={stats['n']:5d} crashes={stats['crashes']} over={stats['over_deadline']} "
              f"max={stats['max_s']:.3f}s total={stats['total_s']:.1f}s")
    print(f"\n{summary['items']} items ({summary['math_items']} maths, {summary['tool_items']} tool): "
          f"{summary['crashes']} crashes, {summary['over_deadline']} over the deadline "
          f"({summary['deadline_s']} s + {args.start_allowance} s); max {summary['max_s']} s, p99 {summary['p99_s']} s; "
          f"peak RSS main {summary['peak_rss_mb_main']} MB, largest worker {summary['peak_rss_mb_largest_worker']} MB")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(summary, indent=2))
        print(f"wrote {args.out}")
    return 0 if summary["crashes"] == 0 and summary["over_deadline"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
