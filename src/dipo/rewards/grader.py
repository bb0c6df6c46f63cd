"""Math answer grading in worker processes with a hard per-item deadline.

math-verify bounds its own work with `signal.alarm`, which only works in a process's main thread
and replaces any alarm the caller had set; and a pathological answer (a power tower, a huge
factorial) can block inside C code where no signal handler runs. So grading runs in persistent
worker processes: the parent hands each worker one item at a time, waits at most `timeout`
seconds for it, and otherwise kills the worker, scores the item 0 and starts a replacement.
Workers are forked from a clean forkserver process that preloaded math-verify, so a replacement
costs milliseconds, not a re-import of sympy.

Cheap cases never reach a worker: answers equal after light normalisation, and pairs of plain
integers, are decided in the parent. Results are cached per (prediction, gold) pair, since the G
samples of a group often give the same answer.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing as mp
import os
import re
import time
from collections import deque
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from multiprocessing.connection import wait

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0
_CACHE_LIMIT = 200_000

# ---------------------------------------------------------------------------------------------
# Fast path in the parent process
# ---------------------------------------------------------------------------------------------
_INTEGER = re.compile(r"[+-]?(?:\d+|\d{1,3}(?:,\d{3})+)")
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")
_DROP = re.compile(r"\\left|\\right|\\!|\\,|\\;|\\:|\\ |\$|\s|\^\{?\\circ\}?|\\%|%")


def normalize_answer(text: str) -> str:
    """Light, meaning-preserving normalisation used only to spot identical answers cheaply:
    drops spaces, `$`, `\\left`/`\\right`, LaTeX spacing, degree signs and percent signs, a
    trailing full stop, and maps `\\dfrac`/`\\tfrac` to `\\frac`."""
    text = _DROP.sub("", text).replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return text.rstrip(".")


def quick_verdict(pred: str, gold: str) -> bool | None:
    """True/False when the answer is decided without math-verify, None when it needs it.

    Equal normalised strings are equal; two plain integers are compared as integers (both
    ways); two plain decimals are equal if their values are (unequal decimals go to math-verify,
    which rounds)."""
    p, g = normalize_answer(pred), normalize_answer(gold)
    if not p:
        return False
    if p == g:
        return True
    if _INTEGER.fullmatch(p) and _INTEGER.fullmatch(g):
        return int(p.replace(",", "")) == int(g.replace(",", ""))
    if _DECIMAL.fullmatch(p) and _DECIMAL.fullmatch(g):
        try:
            if Decimal(p) == Decimal(g):
                return True
        except InvalidOperation:
            return None
    return None


# ---------------------------------------------------------------------------------------------
# Worker side
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


def _worker_main(conn, soft_timeout: int | None) -> None:
    """Worker loop: announce readiness, then answer (job, pred, gold) with (job, verdict)."""
    import math_verify  # noqa: F401 - import before announcing, so deadlines exclude it

    logging.disable(logging.WARNING)  # math-verify warns per unparsable answer
    conn.send(("ready", None))
    while True:
        try:
            message = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if message is None:
            return
        job, pred, gold = message
        conn.send((job, verify_answer(pred, gold, soft_timeout)))


# ---------------------------------------------------------------------------------------------
# Parent side
# ---------------------------------------------------------------------------------------------
class _Worker:
    def __init__(self, ctx, soft_timeout: int | None):
        self.conn, child_conn = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child_conn, soft_timeout), daemon=True)
        self.process.start()
        child_conn.close()
        self.started = time.monotonic()
        self.ready = False
        self.job: tuple[int, float] | None = None  # (item index, dispatch time)

    def kill(self) -> None:
        self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


class MathGrader:
    """A pool of grading processes; `grade(pairs)` returns one bool per (prediction, gold).

    `timeout` is the hard per-item deadline in seconds, counted from when a ready worker
    receives the item; a prediction of None (no answer found) is False without grading.
    `num_workers` defaults to min(4, CPUs). `soft_timeouts` lets math-verify interrupt itself
    (SIGALRM, whole seconds, half the deadline) before the hard kill; without them every slow
    item costs a killed worker. Use as a context manager or call `close()`;
    `default_grader()` keeps one for the whole process.
    """

    def __init__(self, num_workers: int | None = None, timeout: float = DEFAULT_TIMEOUT,
                 start_method: str | None = None, startup_timeout: float = 120.0,
                 soft_timeouts: bool = True):
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        if num_workers is not None and num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        self.num_workers = num_workers or max(1, min(4, os.cpu_count() or 1))
        self.timeout = float(timeout)
        self.startup_timeout = startup_timeout
        # math-verify's own soft timeout (whole seconds) below the hard deadline.
        self._soft_timeout = max(1, int(self.timeout / 2)) if soft_timeouts else None
        method = start_method or ("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
        self._ctx = mp.get_context(method)
        if method == "forkserver":
            self._ctx.set_forkserver_preload(["math_verify", "dipo.rewards.grader"])
        self._workers: list[_Worker] = []
        self._cache: dict[tuple[str, str], bool] = {}
        self.timeouts = 0  # items killed at the deadline, over the grader's life
        self.crashes = 0  # workers that died on an item

    # -- pool management ----------------------------------------------------------------------
    def _ensure_workers(self) -> None:
        self._workers = [w for w in self._workers if w.process.is_alive()]
        while len(self._workers) < self.num_workers:
            self._workers.append(_Worker(self._ctx, self._soft_timeout))

    def close(self) -> None:
        for worker in self._workers:
            try:
                worker.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
            worker.process.join(timeout=1)
            if worker.process.is_alive():
                worker.kill()
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
            verdict = self._cache.get((pred, gold))
            if verdict is None:
                verdict = quick_verdict(pred, gold)
            if verdict is not None:
                results[i] = verdict
            else:
                todo.setdefault((pred, gold), []).append(i)
        if todo:
            keys = list(todo)
            for key, verdict in zip(keys, self._run(keys)):
                if len(self._cache) >= _CACHE_LIMIT:
                    self._cache.clear()
                self._cache[key] = verdict
                for i in todo[key]:
                    results[i] = verdict
        return [bool(r) for r in results]

    def _run(self, items: list[tuple[str, str]]) -> list[bool]:
        """Grade items on the pool; each gets at most `timeout` seconds on a ready worker."""
        self._ensure_workers()
        verdicts = [False] * len(items)
        pending = deque(range(len(items)))
        while pending or any(w.job for w in self._workers):
            now = time.monotonic()
            for worker in self._workers:
                if worker.ready and worker.job is None and pending:
                    job = pending.popleft()
                    worker.conn.send((job, *items[job]))
                    worker.job = (job, now)
            deadlines = [w.job[1] + self.timeout for w in self._workers if w.job]
            wait_for = max(0.0, min(deadlines) - now) if deadlines else 0.5
            for conn in wait([w.conn for w in self._workers], timeout=wait_for):
                worker = next(w for w in self._workers if w.conn is conn)
                try:
                    job, verdict = conn.recv()
                except (EOFError, OSError):  # died (e.g. out of memory) on its item
                    self._replace(worker, crashed=True)
                    continue
                if job == "ready":
                    worker.ready = True
                elif worker.job and job == worker.job[0]:
                    verdicts[job] = bool(verdict)
                    worker.job = None
            now = time.monotonic()
            for worker in list(self._workers):
                if worker.job and now - worker.job[1] >= self.timeout:
                    self.timeouts += 1
                    logger.warning("math grading exceeded %.1fs; scored 0 (%d so far)", self.timeout, self.timeouts)
                    self._replace(worker)
                elif not worker.ready and now - worker.started > self.startup_timeout:
                    raise RuntimeError(f"math grading worker did not start within {self.startup_timeout}s")
        return verdicts

    def _replace(self, worker: _Worker, crashed: bool = False) -> None:
        if crashed:
            self.crashes += 1
            if not worker.ready:
                raise RuntimeError("math grading worker failed to start (is math-verify installed?)")
        worker.kill()
        self._workers[self._workers.index(worker)] = _Worker(self._ctx, self._soft_timeout)


_DEFAULT: MathGrader | None = None


def default_grader() -> MathGrader:
    """The process-wide grader used by `math_reward` (created on first use, closed at exit).

    Its settings come from the environment: DIPO_GRADER_WORKERS, DIPO_GRADER_TIMEOUT (seconds)."""
    global _DEFAULT
    if _DEFAULT is None:
        workers = os.environ.get("DIPO_GRADER_WORKERS")
        _DEFAULT = MathGrader(
            num_workers=int(workers) if workers else None,
            timeout=float(os.environ.get("DIPO_GRADER_TIMEOUT", DEFAULT_TIMEOUT)),
        )
        atexit.register(_DEFAULT.close)
    return _DEFAULT
