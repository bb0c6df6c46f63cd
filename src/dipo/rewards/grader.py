"""Grading in worker processes with a hard per-item deadline: maths answers, tool calls.

math-verify bounds its own work with `signal.alarm`, which only works in a process's main thread
and replaces any alarm the caller had set; and a pathological answer (a power tower, a huge
factorial) can block inside C code where no signal handler runs. So grading runs in persistent
worker processes: the parent hands each worker one item at a time, waits at most `timeout`
seconds for it, and otherwise kills the worker, scores the item 0 and starts a replacement.
The same pool runs the tool-call checks (`run("tool", ...)`, `run("bfcl", ...)`), so every
reward has a deadline covering parsing and checking. Workers are fresh interpreters (`python -m dipo.rewards.worker`) talking over a socket: they
never import the caller's main module, so grading works from a script without a
`if __name__ == "__main__":` guard, from stdin and from a notebook.

Cheap cases never reach a worker: answers equal after light normalisation, and pairs of plain
integers, are decided in the parent by code that is linear in the answer's length. Predictions
longer than `MAX_ANSWER_CHARS` (or twice the gold's length, if that is more) score 0 without
grading. Results are cached per (prediction, gold) pair, since the G samples of a group often
give the same answer; the cache is bounded in entries and in bytes.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0
MAX_ANSWER_CHARS = 1_000  # longer predicted answers score 0 (gold answers of the paper's benchmarks: <= 202)
CACHE_MAX_ENTRIES = 200_000
CACHE_MAX_BYTES = 32 * 2**20

# ---------------------------------------------------------------------------------------------
# Fast path in the parent process (linear time: no backtracking patterns)
# ---------------------------------------------------------------------------------------------
_INTEGER = re.compile(r"[+-]?+(?:\d++|\d{1,3}+(?:,\d{3})++)")
_DECIMAL = re.compile(r"[+-]?+(?:\d++(?:\.\d*+)?+|\.\d++)")
_DROP = re.compile(r"\\left|\\right|\\!|\\,|\\;|\\:|\\ |\$|\s|\^\{?\\circ\}?|\\%|%")


def normalize_answer(text: str) -> str:
    """Light, meaning-preserving normalisation used only to spot identical answers cheaply:
    drops spaces, `$`, `\\left`/`\\right`, LaTeX spacing, degree signs and percent signs, a
    trailing full stop, and maps `\\dfrac`/`\\tfrac` to `\\frac`."""
    text = _DROP.sub("", text).replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return text.rstrip(".")


def _integer_key(text: str) -> tuple[bool, str]:
    """(negative, digits without leading zeros) of a plain integer: equal keys mean equal
    values, with no int() conversion (which refuses more than 4,300 digits)."""
    negative = text.startswith("-")
    digits = text.lstrip("+-").replace(",", "").lstrip("0")
    return (negative and digits != "", digits)


def quick_verdict(pred: str, gold: str) -> bool | None:
    """True/False when the answer is decided without math-verify, None when it needs it.

    Equal normalised strings are equal; two plain integers are compared by value (any number
    of digits); two plain decimals are equal if their values are (unequal decimals go to
    math-verify, which rounds). Linear in the length of the answers."""
    p, g = normalize_answer(pred), normalize_answer(gold)
    if not p:
        return False
    if p == g:
        return True
    if _INTEGER.fullmatch(p) and _INTEGER.fullmatch(g):
        return _integer_key(p) == _integer_key(g)
    if _DECIMAL.fullmatch(p) and _DECIMAL.fullmatch(g):
        try:
            if Decimal(p) == Decimal(g):
                return True
        except (InvalidOperation, ValueError):
            return None
    return None


# ---------------------------------------------------------------------------------------------
# Worker side (run by `dipo.rewards.worker`)
# ---------------------------------------------------------------------------------------------
def _parse(text: str, soft_timeout: int | None):
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    return parse(
        f"${text}$",
        extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()],
        parsing_timeout=soft_timeout,
    )


def verify_answer(pred: str, gold: str, soft_timeout: int | None = 3) -> bool:
    """math-verify's judgement of `pred` against `gold` (both bare answers, no `\\boxed`).

    Runs math-verify's SIGALRM timeouts, so call it only in a process's main thread (the
    grading workers do). Any error counts as not equal."""
    from math_verify import verify

    try:
        gold_parsed = _parse(gold, soft_timeout)
        pred_parsed = _parse(pred, soft_timeout)
        if not gold_parsed or not pred_parsed:
            return False
        return bool(verify(gold_parsed, pred_parsed, timeout_seconds=soft_timeout))
    except Exception:  # noqa: BLE001 - a grader error is a wrong answer, never a crash
        return False


# ---------------------------------------------------------------------------------------------
# Parent side
# ---------------------------------------------------------------------------------------------
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding `dipo`


class _Worker:
    """One `python -m dipo.rewards.worker` process and the parent's end of its socket."""

    def __init__(self, soft_timeout: int | None, memory_mb: int):
        parent_end, child_end = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        command = [sys.executable, "-m", "dipo.rewards.worker", str(child_end.fileno()), str(soft_timeout or 0),
                   str(memory_mb), str(os.getpid())]
        # Own session: a Ctrl-C meant for the caller does not kill a worker mid-item.
        self.process = subprocess.Popen(command, pass_fds=(child_end.fileno(),), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, env=env, start_new_session=True)
        child_end.close()
        self.conn = Connection(parent_end.detach())
        self.started = time.monotonic()
        self.ready = False
        self.has_math_verify = False  # as the worker reports when ready
        self.job: tuple[int, float] | None = None  # (item index, dispatch time)

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=5)
        self.conn.close()


class _ResultCache:
    """(prediction, gold) -> verdict, dropping the oldest entries beyond `max_entries` or
    `max_bytes` (the summed length of the keys' strings)."""

    def __init__(self, max_entries: int = CACHE_MAX_ENTRIES, max_bytes: int = CACHE_MAX_BYTES):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._items: OrderedDict[tuple[str, str], bool] = OrderedDict()
        self.bytes = 0

    def get(self, key: tuple[str, str]) -> bool | None:
        return self._items.get(key)

    def put(self, key: tuple[str, str], verdict: bool) -> None:
        size = len(key[0]) + len(key[1])
        if size > self.max_bytes or key in self._items:
            return
        self._items[key] = verdict
        self.bytes += size
        while len(self._items) > self.max_entries or self.bytes > self.max_bytes:
            old, _ = self._items.popitem(last=False)
            self.bytes -= len(old[0]) + len(old[1])

    def __len__(self) -> int:
        return len(self._items)


class MathGrader:
    """A pool of grading processes; `grade(pairs)` returns one bool per (prediction, gold), and
    `run(task, items, default)` runs another task of `dipo.rewards.worker.TASKS` per item.

    `timeout` is the hard per-item deadline in seconds, counted from when a ready worker
    receives the item; a prediction of None (no answer found), and one longer than
    `MAX_ANSWER_CHARS` (or twice the gold's length, if that is more), is False without grading.
    `num_workers` defaults to min(4, CPUs). `soft_timeouts` lets math-verify interrupt itself
    (SIGALRM, whole seconds, half the deadline) before the hard kill; without them every slow
    item costs a killed worker. `memory_mb` caps each worker's address space (0: no cap).
    Use as a context manager or call `close()`; `default_grader()` keeps one for the whole process.
    """

    def __init__(self, num_workers: int | None = None, timeout: float = DEFAULT_TIMEOUT,
                 startup_timeout: float = 120.0, soft_timeouts: bool = True, memory_mb: int = 2048):
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        if num_workers is not None and num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        if memory_mb < 0:
            raise ValueError(f"memory_mb must be >= 0 (0: no cap), got {memory_mb}")
        self.num_workers = num_workers or max(1, min(4, os.cpu_count() or 1))
        self.timeout = float(timeout)
        self.startup_timeout = startup_timeout
        self.memory_mb = memory_mb
        # math-verify's own soft timeout (whole seconds) below the hard deadline.
        self._soft_timeout = max(1, int(self.timeout / 2)) if soft_timeouts else None
        self._workers: list[_Worker] = []
        self._cache = _ResultCache()
        self.timeouts = 0  # items killed at the deadline, over the grader's life
        self.crashes = 0  # workers that died on an item
        self.errors = 0  # items whose task raised in the worker (scored as the default)

    # -- pool management ----------------------------------------------------------------------
    def _new_worker(self) -> _Worker:
        return _Worker(self._soft_timeout, self.memory_mb)

    def _ensure_workers(self) -> None:
        self._workers = [w for w in self._workers if w.alive()]
        while len(self._workers) < self.num_workers:
            self._workers.append(self._new_worker())

    def close(self) -> None:
        for worker in self._workers:
            try:
                worker.conn.send(None)
            except OSError:
                pass
            try:
                worker.process.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
            if worker.alive():
                worker.kill()
            worker.conn.close()
        self._workers = []

    def __enter__(self) -> MathGrader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- grading ------------------------------------------------------------------------------
    def grade(self, pairs: Sequence[tuple[str | None, str]]) -> list[bool]:
        results: list[bool | None] = [None] * len(pairs)
        todo: dict[tuple[str, str], list[int]] = {}
        for i, (pred, gold) in enumerate(pairs):
            if pred is None or gold is None:
                results[i] = False
                continue
            pred, gold = str(pred), str(gold)
            if len(pred) > max(MAX_ANSWER_CHARS, 2 * len(gold)):
                results[i] = False
                continue
            verdict = self._cache.get((pred, gold))
            if verdict is None:
                verdict = quick_verdict(pred, gold)
            if verdict is not None:
                results[i] = verdict
            else:
                todo.setdefault((pred, gold), []).append(i)
        if todo:
            keys = list(todo)
            for key, verdict in zip(keys, self.run("math", keys, False)):
                self._cache.put(key, verdict)
                for i in todo[key]:
                    results[i] = verdict
        return [bool(r) for r in results]

    def run(self, task: str, items: Sequence[tuple], default: Any) -> list:
        """`task(*item)` for each item on the pool (tasks: `dipo.rewards.worker.TASKS`); each
        gets at most `timeout` seconds on a ready worker. An item past the deadline, whose
        worker died, or whose task raised gives `default`."""
        if not items:
            return []
        self._ensure_workers()
        verdicts = [default] * len(items)
        pending = deque(range(len(items)))
        while pending or any(w.job for w in self._workers):
            now = time.monotonic()
            for worker in self._workers:
                if worker.ready and worker.job is None and pending:
                    if task == "math" and not worker.has_math_verify:
                        raise RuntimeError("maths grading needs math-verify, which the grading worker cannot import "
                                           f"({sys.executable}): pip install math-verify")
                    job = pending.popleft()
                    try:
                        worker.conn.send((job, task, items[job]))
                    except OSError:  # died between items: retry the item on its replacement
                        pending.appendleft(job)
                        self._replace(worker, crashed=True)
                        continue
                    worker.job = (job, now)
            deadlines = [w.job[1] + self.timeout for w in self._workers if w.job]
            wait_for = max(0.0, min(deadlines) - now) if deadlines else 0.5
            for conn in wait([w.conn for w in self._workers], timeout=wait_for):
                worker = next(w for w in self._workers if w.conn is conn)
                try:
                    job, ok, result = conn.recv()
                except (EOFError, OSError):  # died (e.g. out of memory) on its item
                    self._replace(worker, crashed=True)
                    continue
                if job == "ready":
                    worker.ready, worker.has_math_verify = True, bool(result)
                elif worker.job and job == worker.job[0]:
                    if ok:
                        verdicts[job] = result
                    else:
                        self.errors += 1
                        logger.warning("grading task %r raised %s; scored as %r (%d so far)", task, result, default,
                                       self.errors)
                    worker.job = None
            now = time.monotonic()
            for worker in list(self._workers):
                if worker.job and now - worker.job[1] >= self.timeout:
                    self.timeouts += 1
                    logger.warning("grading (%s) exceeded %.1fs; scored 0 (%d so far)", task, self.timeout,
                                   self.timeouts)
                    self._replace(worker)
                elif not worker.ready and now - worker.started > self.startup_timeout:
                    raise RuntimeError(f"grading worker did not start within {self.startup_timeout}s")
        return verdicts

    def _replace(self, worker: _Worker, crashed: bool = False) -> None:
        """Kill `worker` (its item, if any, keeps its verdict False) and start a replacement."""
        if crashed:
            self.crashes += 1
            if not worker.ready:
                worker.kill()
                self._workers.remove(worker)
                raise RuntimeError(f"grading worker failed to start (try: {sys.executable} -m dipo.rewards.worker)")
        worker.kill()
        worker.job = None
        self._workers[self._workers.index(worker)] = self._new_worker()


_DEFAULT: MathGrader | None = None


def default_grader() -> MathGrader:
    """The process-wide grader used by `math_reward` (created on first use, closed at exit).

    Its settings come from the environment: DIPO_GRADER_WORKERS, DIPO_GRADER_TIMEOUT (seconds),
    DIPO_GRADER_MEMORY_MB (per-worker address-space cap, 0 = none)."""
    global _DEFAULT
    if _DEFAULT is None:
        workers = os.environ.get("DIPO_GRADER_WORKERS")
        _DEFAULT = MathGrader(
            num_workers=int(workers) if workers else None,
            timeout=float(os.environ.get("DIPO_GRADER_TIMEOUT", DEFAULT_TIMEOUT)),
            memory_mb=int(os.environ.get("DIPO_GRADER_MEMORY_MB", 2048)),
        )
        atexit.register(_DEFAULT.close)
    return _DEFAULT
