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

    Besides the batches in push order, the queue keeps each batch sorted by log-PPL: a push sorts
    only its new samples, and ``sorted()`` merges the sorted batches (O(n)) instead of re-sorting
    the whole window for PSD every step.

    The state round-trips through ``state_dict()`` / ``load_state_dict()`` (plain lists, JSON- and
    torch.save-friendly) so a resumed run continues with the same queue.
    """

    def __init__(self, num_batches: int = 2) -> None:
        if not isinstance(num_batches, int) or isinstance(num_batches, bool) or num_batches < 1:
            raise ValueError(f"PerplexityQueue.num_batches={num_batches!r}: must be an integer >= 1")
        self.num_batches = num_batches
        self._batches: deque[tuple[np.ndarray, np.ndarray]] = deque()         # push order
        self._sorted_batches: deque[tuple[np.ndarray, np.ndarray]] = deque()  # each sorted by log-PPL
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None             # merged window, until next push

    def push(self, logppl, correct, new_batch: bool = True) -> None:
        """Add ``logppl`` [N] floats with ``correct`` [N] bools (or 0/1).

        ``new_batch=True`` opens a new queue batch (the oldest batch leaves once ``num_batches`` are
        held); ``new_batch=False`` appends to the newest batch (a later dynamic-sampling round of the
        same training step), or opens the first one when the queue is empty.
        """
        # np.array copies: the caller may reuse its buffers
        lp = np.array(to_numpy(logppl), dtype=np.float64).reshape(-1)
        ok = np.array(to_numpy(correct), dtype=bool).reshape(-1)
        if lp.shape != ok.shape:
            raise ValueError(f"PerplexityQueue.push: logppl has {lp.size} values but correct has {ok.size}")
        keep = np.isfinite(lp)
        if not keep.all():
            lp, ok = lp[keep], ok[keep]
        order = np.argsort(lp)
        lp_sorted, ok_sorted = lp[order], ok[order]
        if new_batch or not self._batches:
            self._batches.append((lp, ok))
            self._sorted_batches.append((lp_sorted, ok_sorted))
            if len(self._batches) > self.num_batches:
                self._batches.popleft()
                self._sorted_batches.popleft()
        else:
            last_lp, last_ok = self._batches[-1]
            self._batches[-1] = (np.concatenate((last_lp, lp)), np.concatenate((last_ok, ok)))
            self._sorted_batches[-1] = _merge_sorted([self._sorted_batches[-1], (lp_sorted, ok_sorted)])
        self._sorted = None

    def sorted(self) -> tuple[np.ndarray, np.ndarray]:
        """``([n] log-PPLs ascending, [n] labels in the same order)`` over the whole window.

        Each batch is sorted once when pushed; the window is a merge of those sorted runs (O(n) per
        step rather than an O(n log n) re-sort), cached until the next push. Equal log-PPLs come in
        no particular order (PSD does not depend on it). Read-only arrays.
        """
        if self._sorted is None:
            lp, ok = _merge_sorted(list(self._sorted_batches))
            lp.flags.writeable = ok.flags.writeable = False
            self._sorted = (lp, ok)
        return self._sorted

    @property
    def logppl(self) -> np.ndarray:
        """``[n]`` log-PPLs in push order (oldest batch first)."""
        return np.concatenate([b[0] for b in self._batches]) if self._batches else np.zeros(0)

    @property
    def correct(self) -> np.ndarray:
        """``[n]`` labels in push order, aligned with :attr:`logppl`."""
        return np.concatenate([b[1] for b in self._batches]) if self._batches else np.zeros(0, dtype=bool)

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


def _merge_sorted(runs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Merge runs ``(log-PPLs ascending, labels)`` into one: a stable sort of the runs laid end to
    end, which numpy's timsort does by merging the runs, in O(n log(number of runs)))."""
    if not runs:
        return np.zeros(0), np.zeros(0, dtype=bool)
    if len(runs) == 1:
        return runs[0]
    lp = np.concatenate([r[0] for r in runs])
    merge = np.argsort(lp, kind="stable")
    return lp[merge], np.concatenate([r[1] for r in runs])[merge]
