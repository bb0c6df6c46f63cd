"""The PPL queue: a sliding window of (log-PPL, correct) pairs over recent batches (paper Eq. 4)."""

from __future__ import annotations

from collections import deque

import numpy as np

from dipo.core._util import to_numpy


class PerplexityQueue:
    """Keeps the ``(logppl, correct)`` pairs of the last ``num_batches`` queue batches.

    One queue batch is one training step: with dynamic sampling, the first round of a step opens a
    batch (``push(..., new_batch=True)``) and the refill rounds join it (``new_batch=False``).
    Memory is bounded by ``num_batches`` batches. NaN log-PPLs (empty completions) are dropped on push.

    Besides the batches in push order, the queue keeps its history sorted by log-PPL (``sorted()``):
    each push merges the new samples in (O(n + m log m)) instead of re-sorting the whole queue, so
    PSD costs no sort per step.

    The state round-trips through ``state_dict()`` / ``load_state_dict()`` (plain lists, JSON- and
    torch.save-friendly) so a resumed run continues with the same queue.
    """

    def __init__(self, num_batches: int = 2) -> None:
        if not isinstance(num_batches, int) or isinstance(num_batches, bool) or num_batches < 1:
            raise ValueError(f"PerplexityQueue.num_batches={num_batches!r}: must be an integer >= 1")
        self.num_batches = num_batches
        self._batches: deque[tuple[np.ndarray, np.ndarray]] = deque()
        self._first_batch = 0  # serial number of self._batches[0]
        # Sorted history: log-PPL ascending, labels and batch serial numbers in the same order.
        self._sorted_lp = np.zeros(0)
        self._sorted_ok = np.zeros(0, dtype=bool)
        self._sorted_batch = np.zeros(0, dtype=np.int64)

    def push(self, logppl, correct, new_batch: bool = True) -> None:
        """Add ``logppl`` [N] floats with ``correct`` [N] bools (or 0/1).

        ``new_batch=True`` opens a new queue batch (the oldest batch leaves once ``num_batches`` are
        held); ``new_batch=False`` appends to the newest batch (a later dynamic-sampling round of the
        same training step), or opens the first one when the queue is empty.
        """
        lp = np.asarray(to_numpy(logppl), dtype=np.float64).reshape(-1)
        ok = np.asarray(to_numpy(correct)).reshape(-1).astype(bool)
        if lp.shape != ok.shape:
            raise ValueError(f"PerplexityQueue.push: logppl has {lp.size} values but correct has {ok.size}")
        keep = np.isfinite(lp)
        lp, ok = lp[keep], ok[keep]
        if new_batch or not self._batches:
            self._batches.append((lp, ok))
            if len(self._batches) > self.num_batches:
                self._batches.popleft()
                self._first_batch += 1
                stay = self._sorted_batch >= self._first_batch
                self._sorted_lp, self._sorted_ok = self._sorted_lp[stay], self._sorted_ok[stay]
                self._sorted_batch = self._sorted_batch[stay]
        else:
            last_lp, last_ok = self._batches[-1]
            self._batches[-1] = (np.concatenate((last_lp, lp)), np.concatenate((last_ok, ok)))
        self._merge(lp, ok, self._first_batch + len(self._batches) - 1)

    def _merge(self, lp: np.ndarray, ok: np.ndarray, batch: int) -> None:
        """Merge new samples into the sorted history (new samples go after equal old values)."""
        order = np.argsort(lp, kind="stable")
        new_lp, new_ok = lp[order], ok[order]
        at = np.searchsorted(self._sorted_lp, new_lp, side="right") + np.arange(new_lp.size)
        size = self._sorted_lp.size + new_lp.size
        is_new = np.zeros(size, dtype=bool)
        is_new[at] = True
        merged_lp = np.empty(size)
        merged_ok = np.empty(size, dtype=bool)
        merged_batch = np.empty(size, dtype=np.int64)
        merged_lp[at], merged_ok[at], merged_batch[at] = new_lp, new_ok, batch
        old = ~is_new
        merged_lp[old], merged_ok[old], merged_batch[old] = self._sorted_lp, self._sorted_ok, self._sorted_batch
        self._sorted_lp, self._sorted_ok, self._sorted_batch = merged_lp, merged_ok, merged_batch

    def sorted(self) -> tuple[np.ndarray, np.ndarray]:
        """``([n] log-PPLs ascending, [n] labels in the same order)``; read-only views, no copy."""
        lp, ok = self._sorted_lp.view(), self._sorted_ok.view()
        lp.flags.writeable = ok.flags.writeable = False
        return lp, ok

    @property
    def logppl(self) -> np.ndarray:
        """``[n]`` log-PPLs in push order (oldest batch first)."""
        return np.concatenate([b[0] for b in self._batches]) if self._batches else np.zeros(0)

    @property
    def correct(self) -> np.ndarray:
        """``[n]`` labels in push order, aligned with :attr:`logppl`."""
        return np.concatenate([b[1] for b in self._batches]) if self._batches else np.zeros(0, dtype=bool)

    def __len__(self) -> int:
        return self._sorted_lp.size

    def state_dict(self) -> dict:
        return {
            "num_batches": self.num_batches,
            "batches": [{"logppl": lp.tolist(), "correct": ok.tolist()} for lp, ok in self._batches],
        }

    def load_state_dict(self, state: dict) -> None:
        try:
            batches = state["batches"]
            num_batches = int(state.get("num_batches", self.num_batches))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"PerplexityQueue.load_state_dict: malformed state ({exc!r})") from exc
        if num_batches != self.num_batches:
            raise ValueError(
                f"PerplexityQueue.load_state_dict: checkpoint queue holds {num_batches} batches, "
                f"this run is configured for {self.num_batches} (queue_batches)"
            )
        self.__init__(self.num_batches)
        for b in batches:
            self.push(b["logppl"], b["correct"])
