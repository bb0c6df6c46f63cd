"""A grading worker: `python -m dipo.rewards.worker FD SOFT_TIMEOUT MEMORY_MB PARENT_PID`.

Started by `dipo.rewards.grader.MathGrader` as a fresh interpreter (never a fork or a re-import
of the caller's main module). It talks over the connected socket FD: it sends
`("ready", True, HAS_MATH_VERIFY)` once math-verify is imported (the tool-call tasks work
without it), then answers each `(job, task, args)` with
`(job, True, TASKS[task](*args))`, or `(job, False, error name)` if the task raised, and exits on
`None`, when the other end closes, or when its parent dies. SOFT_TIMEOUT (whole seconds,
0 = none) is passed to math-verify's own alarms; MEMORY_MB (0 = no limit) caps the worker's
address space, so an answer that makes sympy allocate without bound fails with MemoryError
(scored 0) instead of swapping.
"""

from __future__ import annotations

import ctypes
import logging
import os
import resource
import signal
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any


def _tasks(soft_timeout: int | None) -> dict[str, Callable[..., Any]]:
    from dipo.rewards.bfcl import bfcl_ast_check
    from dipo.rewards.grader import verify_answer
    from dipo.rewards.tool import score_tool_call

    return {
        "math": lambda pred, gold: verify_answer(pred, gold, soft_timeout),
        "tool": score_tool_call,
        "bfcl": bfcl_ast_check,
    }


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to kill this worker when its parent dies (a SIGKILLed trainer leaves no
    worker grinding on); elsewhere the closed socket ends it after its current item."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        sys.exit(0)


def main(argv: list[str]) -> int:
    fd, soft_timeout, memory_mb, parent_pid = (int(a) for a in argv[:4])
    _die_with_parent(parent_pid)
    if memory_mb > 0:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = memory_mb * 2**20 if hard == resource.RLIM_INFINITY else min(hard, memory_mb * 2**20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        import math_verify  # noqa: F401 - import before announcing, so deadlines exclude it
    except ImportError:
        has_math_verify = False
    else:
        has_math_verify = True
    tasks = _tasks(soft_timeout or None)
    logging.disable(logging.WARNING)  # math-verify warns per unparsable answer
    conn = Connection(fd)
    try:
        conn.send(("ready", True, has_math_verify))
        while (message := conn.recv()) is not None:
            job, task, args = message
            try:
                reply = (job, True, tasks[task](*args))
            except Exception as exc:  # noqa: BLE001 - reported to the parent, which scores it 0
                reply = (job, False, type(exc).__name__)
            conn.send(reply)
    except (EOFError, OSError, KeyboardInterrupt):  # the parent went away
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
