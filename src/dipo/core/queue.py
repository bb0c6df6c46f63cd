"""The PPL queue: a sliding window of (log-PPL, correct) pairs over recent batches (paper Eq. 4)."""

from __future__ import annotations

from collections import deque

import numpy as np

from dipo.core._util import to_numpy


class PerplexityQueue:
    """Keeps the ``(logppl, correct)`` pairs of the last ``num_batches`` pushed batches.

    Memory is bounded by ``num_batches`` batches. NaN log-PPLs (empty completions) are dropped on push.
    The state round-trips through ``state_dict()`` / ``load_state_dict()`` (plain lists, JSON- and
    torch.save-friendly) so a resumed run continues with the same queue.
    """

    def __init__(self, num_batches: int = 2) -> None:
        if not isinstance(num_batches, int) or isinstance(num_batches, bool) or num_batches < 1:
            raise ValueError(f"PerplexityQueue.num_batches={num_batches!r}: must be an integer >= 1")
        self.num_batches = num_batches
        self._batches: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=num_batches)

    def push(self, logppl, correct) -> None:
        """Add one batch: ``logppl`` [N] floats, ``correct`` [N] bools (or 0/1)."""
        lp = np.asarray(to_numpy(logppl), dtype=np.float64).reshape(-1)
        ok = np.asarray(to_numpy(correct)).reshape(-1).astype(bool)
        if lp.shape != ok.shape:
            raise ValueError(f"PerplexityQueue.push: logppl has {lp.size} values but correct has {ok.size}")
        keep = np.isfinite(lp)
        self._batches.append((lp[keep].copy(), ok[keep].copy()))

    @property
    def logppl(self) -> np.ndarray:
        return np.concatenate([b[0] for b in self._batches]) if self._batches else np.zeros(0)

    @property
    def correct(self) -> np.ndarray:
        return np.concatenate([b[1] for b in self._batches]) if self._batches else np.zeros(0, dtype=bool)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return self.logppl, self.correct

    def __len__(self) -> int:
        return sum(b[0].size for b in self._batches)

    def state_dict(self) -> dict:
        return {
            "num_batches": self.num_batches,
            "batches": [{"logppl": lp.tolist(), "correct": ok.tolist()} for lp, ok in self._batches],
        }

    def load_state_dict(self, state: dict) -> None:
        try:
            batches = state["batches"]
            num_batches = int(state.get("num_batches", self.num_batches))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"PerplexityQueue.load_state_dict: malformed state ({exc!r})") from exc
        if num_batches != self.num_batches:
            raise ValueError(
                f"PerplexityQueue.load_state_dict: checkpoint queue holds {num_batches} batches, "
                f"this run is configured for {self.num_batches} (queue_batches)"
            )
        self._batches.clear()
        for b in batches:
            self.push(b["logppl"], b["correct"])

