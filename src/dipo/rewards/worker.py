"""A grading worker: `python -m dipo.rewards.worker FD SOFT_TIMEOUT MEMORY_MB`.

Started by `dipo.rewards.grader.MathGrader` as a fresh interpreter (never a fork or a re-import
of the caller's main module). It talks over the connected socket FD: it sends `("ready", None)`
once math-verify is imported, then answers each `(job, pred, gold)` with `(job, verdict)`, and
exits on `None` or when the other end closes. SOFT_TIMEOUT (whole seconds, 0 = none) is passed to
math-verify's own alarms; MEMORY_MB (0 = no limit) caps the worker's address space, so an answer
that makes sympy allocate without bound fails with MemoryError (scored 0) instead of swapping.
"""

from __future__ import annotations

import logging
import resource
import sys
from multiprocessing.connection import Connection


def main(argv: list[str]) -> int:
    fd, soft_timeout, memory_mb = (int(a) for a in argv[:3])
    if memory_mb > 0:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = memory_mb * 2**20 if hard == resource.RLIM_INFINITY else min(hard, memory_mb * 2**20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    import math_verify  # noqa: F401 - import before announcing, so deadlines exclude it

    from dipo.rewards.grader import verify_answer

    logging.disable(logging.WARNING)  # math-verify warns per unparsable answer
    conn = Connection(fd)
    conn.send(("ready", None))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return 0
        if message is None:
            return 0
        job, pred, gold = message
        conn.send((job, verify_answer(pred, gold, soft_timeout or None)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
