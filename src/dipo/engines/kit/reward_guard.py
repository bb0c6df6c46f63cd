"""Reward functions that cannot kill a run: a raising function or a bad value gives `fallback` + a count.

TRL calls reward functions as `f(prompts=..., completions=..., completion_ids=..., **columns)` and
lets exceptions through. `guard_reward` wraps such a callable: if the batch call raises, each sample
is retried alone so only the failing ones get `fallback`; non-numeric or non-finite values also
become `fallback`. Failures are logged once per batch (first error shown) and counted through TRL's
`log_metric` hook as `reward_errors/<name>` (failed samples in the batch), so they show up beside
the other metrics. `None` keeps TRL's meaning ("this function does not apply to this sample").
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable

logger = logging.getLogger(__name__)

_CONTROL_KWARGS = ("trainer_state", "log_extra", "log_metric", "environments")


def _clean(value, fallback: float) -> tuple[float | None, bool]:
    """(value to use, whether it was bad). Numbers (Python, numpy, torch scalars) pass; text does not."""
    if value is None:
        return None, False
    if isinstance(value, (str, bytes)):
        return fallback, True
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        return fallback, True
    return (as_float, False) if math.isfinite(as_float) else (fallback, True)


def _sample_kwargs(kwargs: dict, i: int, n: int) -> dict:
    """The kwargs of sample i: per-sample lists sliced to one element, the rest passed as is."""
    return {
        k: ([v[i]] if isinstance(v, list) and len(v) == n and k not in _CONTROL_KWARGS else v)
        for k, v in kwargs.items()
    }


def guard_reward(func: Callable, fallback: float = 0.0) -> Callable:
    """Wrap a TRL reward function (see module docstring). Modules (reward models) are returned unchanged."""
    if not callable(func) or hasattr(func, "forward") or getattr(func, "__dipo_guarded__", False):
        return func
    name = getattr(func, "__name__", type(func).__name__)

    @functools.wraps(func)
    def guarded(prompts=None, completions=None, **kwargs):
        n = len(completions)
        errors: list[str] = []
        try:
            raw = list(func(prompts=prompts, completions=completions, **kwargs))
            if len(raw) != n:
                raise ValueError(f"returned {len(raw)} rewards for {n} completions")
        except Exception as exc:  # noqa: BLE001 - any failure of user code must not kill the run
            errors.append(f"{type(exc).__name__}: {exc}")
            raw = []
            for i in range(n):
                try:
                    one = func(prompts=[prompts[i]], completions=[completions[i]], **_sample_kwargs(kwargs, i, n))
                    raw.append(list(one)[0])
                except Exception as exc_i:  # noqa: BLE001
                    errors.append(f"{type(exc_i).__name__}: {exc_i}")
                    raw.append(_Failed(fallback))
        values, n_bad = [], 0
        for value in raw:
            if isinstance(value, _Failed):
                values.append(value.fallback)
                n_bad += 1
                continue
            clean, bad = _clean(value, fallback)
            values.append(clean)
            n_bad += bad
        if n_bad:
            # errors[0] is the whole-batch failure; errors[1], if any, is the first per-sample one
            detail = errors[-1 if len(errors) == 1 else 1] if errors else "non-numeric or non-finite value"
            logger.warning("reward function %r failed on %d/%d samples (reward %s given); first error: %s",
                           name, n_bad, n, fallback, detail)
        log_metric = kwargs.get("log_metric")
        if log_metric is not None:
            log_metric(f"reward_errors/{name}", float(n_bad))
        return values

    guarded.__dipo_guarded__ = True
    return guarded


class _Failed:
    """Marks a sample whose reward call raised (distinct from a bad return value)."""

    __slots__ = ("fallback",)

    def __init__(self, fallback: float):
        self.fallback = fallback
