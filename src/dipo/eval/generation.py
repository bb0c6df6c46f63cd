"""Batched sampling of k completions per prompt: transformers, or vLLM when installed with a GPU.

The one home for sampling: `generate_transformers` and `VLLMGenerator` give every caller (`dipo eval`, the
trainer's held-out evaluation, `dipo probe`, the testbed's competence check) its completions cut at the first
end-of-sequence token (`completion_from_ids`) and, when asked (`logprobs=True`), each one's sampling-time
log-PPL at the sampling temperature.
"""

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
    """One sampled completion: its text, number of generated tokens (the end-of-sequence token not
    counted), and whether it hit the token limit before the end-of-sequence token.

    With `logprobs=True` also `logppl`, ``-(1/n) * sum_t log p_T(y_t)`` over the sampled tokens at the
    sampling temperature T, and `logppl_tokens`, its n: the tokens up to and including the first
    end-of-sequence token, which counts as a completion token, as in training."""

    text: str
    length: int
    truncated: bool
    logppl: float | None = None
    logppl_tokens: int | None = None


def completion_from_ids(tokens: list[int], eos_ids: set[int], max_new_tokens: int, tokenizer: Any,
                        pad_id: int | None = None) -> Completion:
    """One sampled sequence's new token ids as a `Completion`: cut at the first end-of-sequence id (not
    kept), trailing `pad_id` removed (unless it is an end-of-sequence id), `truncated` when no end came
    within `max_new_tokens`."""
    end = _first_eos(tokens, eos_ids)
    kept = list(tokens) if end is None else list(tokens[:end])
    while kept and pad_id is not None and kept[-1] == pad_id and pad_id not in eos_ids:
        kept.pop()
    return Completion(tokenizer.decode(kept, skip_special_tokens=True), len(kept),
                      truncated=end is None and len(kept) >= max_new_tokens)


def _first_eos(tokens: list[int], eos_ids: set[int]) -> int | None:
    """Index of the first end-of-sequence id in `tokens`, None when there is none."""
    return next((t for t, tok in enumerate(tokens) if tok in eos_ids), None)


def _add_logppl(model: Any, sequences: Any, prompt_attention: Any, new_tokens: list[list[int]], eos_ids: set[int],
                temperature: float, completions: list[Completion]) -> None:
    """Fill each completion's `logppl` at `temperature` and `logppl_tokens` (its tokens up to and including the
    first end-of-sequence id) from one forward pass over the sampled ids, left-padded prompts included
    (positions count from each row's first real token): ``-(1/n) * sum_t log softmax(z_t / T)[y_t]``, what the
    trainer records. With top_p < 1 the sampler's truncation is not in it."""
    import torch

    from dipo.core import sequence_logppl

    scored = [len(tokens) if end is None else end + 1 for tokens, end in
              ((tokens, _first_eos(tokens, eos_ids)) for tokens in new_tokens)]
    width = prompt_attention.shape[1]
    new = sequences[:, width:]
    mask = torch.arange(new.shape[1], device=new.device)[None, :] < torch.tensor(scored, device=new.device)[:, None]
    attention = torch.cat([prompt_attention, mask.long()], dim=1)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=sequences, attention_mask=attention, position_ids=positions).logits
    logits = logits[:, width - 1:-1].float() / max(temperature, 1e-6)
    token_lp = torch.log_softmax(logits, dim=-1).gather(-1, new[..., None]).squeeze(-1)
    for completion, value, n in zip(completions, sequence_logppl(token_lp, mask).tolist(), scored):
        completion.logppl, completion.logppl_tokens = value, n


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
                          progress: bool = True, desc: str = "generating",
                          logprobs: bool = False) -> list[list[Completion]]:
    """k completions per prompt text with `model.generate`, `batch_size` sequences at a time, cut at the
    first end-of-sequence token; with `logprobs`, each with its sampling-time log-PPL at `temperature`
    (`Completion.logppl`, one forward pass over each call's sampled ids, which draws no random numbers).

    Prompts are left-padded; the model is put in eval mode and restored afterwards, so a
    trainer can call this mid-training. Temperature 0 is greedy decoding (k identical copies).
    Sampling draws from its own stream seeded with `seed`, leaving the caller's RNG state as it was.
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
                completions = [completion_from_ids(tokens, eos_ids, max_new_tokens, tokenizer, pad_id)
                               for tokens in new_tokens]
                if logprobs:
                    _add_logppl(model, out, enc["attention_mask"].repeat_interleave(k, dim=0), new_tokens, eos_ids,
                                temperature, completions)
            results += [completions[i * k : (i + 1) * k] for i in range(len(chunk))]
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
    """k completions per prompt text with vLLM; the engine is built once, on first use. With `logprobs`, each
    completion's log-PPL from the sampled tokens' processed log-probs (after temperature; vLLM's
    ``logprobs_mode="processed_logprobs"``), over all its tokens (vLLM keeps the end-of-sequence token)."""

    def __init__(self, model_path: str, seed: int = 0, logprobs: bool = False, **llm_kwargs: Any):
        if logprobs:
            llm_kwargs.setdefault("logprobs_mode", "processed_logprobs")
        self.model_path, self.seed, self.logprobs, self.llm_kwargs = model_path, seed, logprobs, llm_kwargs
        self._llm = None

    def __call__(self, prompts: list[str], k: int = 1, temperature: float = 0.6, top_p: float = 0.95,
                 max_new_tokens: int = 1024) -> list[list[Completion]]:
        from vllm import LLM, SamplingParams

        _sampling_kwargs(temperature, top_p)  # same validation as the transformers path
        if self._llm is None:
            self._llm = LLM(model=self.model_path, seed=self.seed, **self.llm_kwargs)
        params = SamplingParams(n=k, temperature=temperature, top_p=top_p if temperature > 0 else 1.0,
                                max_tokens=max_new_tokens, seed=self.seed, **({"logprobs": 0} if self.logprobs else {}))
        outputs = self._llm.generate(prompts, params)
        return [[self._completion(o) for o in out.outputs] for out in outputs]

    def _completion(self, output: Any) -> Completion:
        completion = Completion(output.text, len(output.token_ids), output.finish_reason == "length")
        if self.logprobs:
            import numpy as np

            lps = [step[token].logprob for step, token in zip(output.logprobs, output.token_ids)]
            completion.logppl, completion.logppl_tokens = -float(np.mean(lps)) if lps else 0.0, len(lps)
        return completion
