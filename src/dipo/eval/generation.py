"""Batched sampling of k completions per prompt: transformers, or vLLM when installed with a GPU."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

# The eval protocol's sampling defaults (`dipo eval`, and the trainer's held-out evaluation): mean@k /
# maj@k with Qwen3's recommended thinking-mode settings (Qwen3 model card and technical report:
# temperature 0.6, top-p 0.95, up to 32,768 output tokens), so the reasoning of the paper's Qwen3-8B is
# not cut off. DAPO's validation uses temperature 1.0 / top-p 0.7 instead. `truncated` in the results
# says how many samples hit the limit.
PAPER_SAMPLING = {"k": 8, "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 32768}


@dataclass
class Completion:
    """One sampled completion: its text, number of generated tokens, and whether it hit the
    token limit before the end-of-sequence token."""

    text: str
    length: int
    truncated: bool


def completion_from_ids(tokens: list[int], eos_ids: set[int], max_new_tokens: int, tokenizer: Any,
                        pad_id: int | None = None) -> Completion:
    """One sampled sequence's new token ids as a `Completion`: cut at the first end-of-sequence id (not
    kept), trailing `pad_id` removed (unless it is an end-of-sequence id), `truncated` when no end came
    within `max_new_tokens`."""
    end = next((t for t, tok in enumerate(tokens) if tok in eos_ids), None)
    kept = list(tokens) if end is None else list(tokens[:end])
    while kept and pad_id is not None and kept[-1] == pad_id and pad_id not in eos_ids:
        kept.pop()
    return Completion(tokenizer.decode(kept, skip_special_tokens=True), len(kept),
                      truncated=end is None and len(kept) >= max_new_tokens)


def _sampling_kwargs(temperature: float, top_p: float) -> dict[str, Any]:
    if temperature < 0 or not 0 < top_p <= 1:
        raise ValueError(f"temperature must be >= 0 and top_p in (0, 1], got {temperature}, {top_p}")
    if temperature == 0:
        return {"do_sample": False}
    # top_k=0: no top-k cut. transformers otherwise applies its default top_k=50 unasked, which TRL's
    # trainer (top_k=0) and vLLM (-1) do not: the same temperature and top-p would sample differently.
    return {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0}


def generate_transformers(model: Any, tokenizer: Any, prompts: list[str], k: int = 1, temperature: float = 0.6,
                          top_p: float = 0.95, max_new_tokens: int = 1024, batch_size: int = 16, seed: int = 0,
                          progress: bool = True, desc: str = "generating") -> list[list[Completion]]:
    """k completions per prompt text with `model.generate`, `batch_size` sequences at a time.

    Prompts are left-padded; the model is put in eval mode and restored afterwards, so a
    trainer can call this mid-training. Temperature 0 is greedy decoding (k identical copies).
    """
    import torch

    if k < 1 or batch_size < 1 or max_new_tokens < 1:
        raise ValueError(f"k, batch_size and max_new_tokens must be >= 1, got {k}, {batch_size}, {max_new_tokens}")
    sampling = _sampling_kwargs(temperature, top_p)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos_ids = model.generation_config.eos_token_id or tokenizer.eos_token_id
    eos_ids = set(eos_ids if isinstance(eos_ids, list) else [eos_ids])
    padding_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    was_training = model.training
    model.eval()
    per_batch = max(1, batch_size // k)  # prompts per generate call; each yields k sequences
    results: list[list[Completion]] = []
    # Our own seeded RNG stream, so evaluating mid-training leaves the trainer's RNG untouched.
    cuda_devices = [model.device] if model.device.type == "cuda" else []
    rng = torch.random.fork_rng(devices=cuda_devices)
    rng.__enter__()
    torch.manual_seed(seed)
    try:
        bar = tqdm(total=len(prompts), desc=desc, disable=not progress, unit="prompt")
        for start in range(0, len(prompts), per_batch):
            chunk = prompts[start : start + per_batch]
            enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            with torch.no_grad():
                copies = 1 if not sampling["do_sample"] else k  # greedy: one sequence, copied k times
                out = model.generate(**enc, max_new_tokens=max_new_tokens, num_return_sequences=copies,
                                     pad_token_id=pad_id, **sampling).repeat_interleave(k // copies, dim=0)
            new_tokens = out[:, enc["input_ids"].shape[1]:].tolist()
            for i in range(len(chunk)):
                results.append([completion_from_ids(tokens, eos_ids, max_new_tokens, tokenizer, pad_id)
                                for tokens in new_tokens[i * k : (i + 1) * k]])
            bar.update(len(chunk))
        bar.close()
    finally:
        tokenizer.padding_side = padding_side
        rng.__exit__(None, None, None)
        model.train(was_training)
    return results


def vllm_available() -> bool:
    """vLLM is importable and a CUDA GPU is present."""
    try:
        import torch
        import vllm  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


class VLLMGenerator:
    """k completions per prompt text with vLLM; the engine is built once, on first use."""

    def __init__(self, model_path: str, seed: int = 0, **llm_kwargs: Any):
        self.model_path, self.seed, self.llm_kwargs = model_path, seed, llm_kwargs
        self._llm = None

    def __call__(self, prompts: list[str], k: int = 1, temperature: float = 0.6, top_p: float = 0.95,
                 max_new_tokens: int = 1024) -> list[list[Completion]]:
        from vllm import LLM, SamplingParams

        _sampling_kwargs(temperature, top_p)  # same validation as the transformers path
        if self._llm is None:
            self._llm = LLM(model=self.model_path, seed=self.seed, **self.llm_kwargs)
        params = SamplingParams(n=k, temperature=temperature, top_p=top_p if temperature > 0 else 1.0,
                                max_tokens=max_new_tokens, seed=self.seed)
        outputs = self._llm.generate(prompts, params)
        return [[Completion(o.text, len(o.token_ids), o.finish_reason == "length") for o in out.outputs]
                for out in outputs]
