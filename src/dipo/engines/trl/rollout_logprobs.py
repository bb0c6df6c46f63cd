"""Sampled-token log-probs from `transformers` generation, recorded while it samples (no extra forward).

TRL's plain-generation path returns no log-probs (its vLLM path does). `SampledTokenLogprobs` is a
logits processor that, at decoding step t, computes `log_softmax(scores / temperature)` and, at step
t+1, reads the token that was sampled at step t from `input_ids[:, -1]` and keeps its log-prob. Only
one `[B, V]` slice is held at a time, so memory stays `O(B * V + B * T)`, not `O(B * T * V)`.

Custom logits processors run before transformers' temperature / top-k / top-p warpers, so the
recorder applies the temperature itself: the log-probs are those of the temperature-scaled policy
(after repetition penalty etc., before top-k/top-p truncation) — the same quantity TRL's training
forward computes (`logits / temperature`), so they equal TRL's `old_per_token_logps` on-policy.
"""

from __future__ import annotations

import contextlib
import functools

import torch
from transformers import LogitsProcessor, LogitsProcessorList


class SampledTokenLogprobs(LogitsProcessor):
    """Records `log pi_T(y_t | y_<t)` of every sampled token during one `generate` call."""

    def __init__(self, temperature: float):
        if not temperature > 0:
            raise ValueError(f"temperature={temperature!r}: must be > 0 to define sampling log-probs")
        self.temperature = float(temperature)
        self._columns: list[torch.Tensor] = []  # [B] log-probs of the tokens sampled at steps 0..t-1
        self._last: torch.Tensor | None = None  # [B, V] log-probs at the latest step, token not yet seen

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._last is not None:  # input_ids[:, -1] is the token sampled from self._last
            self._columns.append(self._last.gather(1, input_ids[:, -1:]).squeeze(1))
        scaled = scores if self.temperature == 1.0 else scores / self.temperature  # one kernel fewer at T=1
        self._last = torch.log_softmax(scaled, dim=-1, dtype=torch.float32)
        return scores

    def per_sequence(self, completion_ids: list[list[int]]) -> list[list[float]]:
        """Log-probs of each completion's tokens (`completion_ids[b]` is row b's sampled tokens, EOS included,
        padding after EOS removed), one list per row."""
        if self._last is None:
            return [[] for _ in completion_ids]
        steps = len(self._columns) + 1
        # The final step's token never reached the processor: take it from the completions.
        last_tokens = torch.tensor(
            [ids[steps - 1] if len(ids) == steps else 0 for ids in completion_ids], device=self._last.device
        )
        table = torch.stack([*self._columns, self._last.gather(1, last_tokens[:, None]).squeeze(1)], dim=1)
        table = table.cpu()
        return [table[b, : len(ids)].tolist() for b, ids in enumerate(completion_ids)]


@contextlib.contextmanager
def extra_logits_processor(model, processor: LogitsProcessor):
    """Within the block, `model.generate(...)` also runs `processor`.

    TRL calls `unwrapped_model.generate(**inputs, generation_config=...)` with no hook for logits
    processors, so the instance's `generate` is shadowed for the duration of one call and restored.
    """
    had_own = "generate" in vars(model)  # an instance attribute (rare) must be put back as it was
    original = model.generate

    @functools.wraps(original)
    def generate(*args, logits_processor=None, **kwargs):
        processors = LogitsProcessorList(logits_processor or [])
        processors.append(processor)
        return original(*args, logits_processor=processors, **kwargs)

    model.generate = generate
    try:
        yield processor
    finally:
        if had_own:
            model.generate = original
        else:
            del model.generate  # back to the class method
