"""A run directory's lifecycle, the same for every engine: refuse a directory that holds a run we are neither
resuming nor replacing, clear it (`--overwrite_output_dir`), lock it for one writer, and find the checkpoint
`--resume_from_checkpoint last` means. The files inside are `dipo.data.run_files`' schema.

Problems are `UsageError`s (one line, exit code 2 under `dipo._cli_util.run_cli`) naming the option.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from dipo._cli_util import UsageError
from dipo.data.run_files import CONFIG_FILE, METRICS_FILE, ROLLOUTS_DIR
from dipo.engines.kit.state import STATE_FILE

RUN_FILES = (CONFIG_FILE, METRICS_FILE, ROLLOUTS_DIR, "final")


def run_contents(run_dir: Path) -> list[str]:
    """What a previous run left in `run_dir` (dipo's files and checkpoints), sorted."""
    if not run_dir.is_dir():
        return []
    return sorted(p.name for p in run_dir.iterdir() if p.name in RUN_FILES or re.fullmatch(r"checkpoint-\d+", p.name))


def complete_checkpoints(run_dir: Path, inexact_ok: bool = False) -> tuple[list[Path], list[Path]]:
    """(complete, incomplete) `checkpoint-N` folders, newest first. Complete = the trainer's state and
    DiPO's state were both written (`inexact_ok`: the trainer's state suffices). The trainer checks
    the rest (optimizer, RNG) when it resumes (`checkpoints.resume_gaps`)."""
    found = sorted((p for p in run_dir.glob("checkpoint-*") if re.fullmatch(r"checkpoint-\d+", p.name) and p.is_dir()),
                   key=lambda p: int(p.name.split("-")[1]), reverse=True)
    ok = [p for p in found if (p / "trainer_state.json").is_file()
          and (inexact_ok or ((p / STATE_FILE).is_file() and (p / STATE_FILE).stat().st_size > 0))]
    return ok, [p for p in found if p not in ok]


def resolve_resume(value: str | None, run_dir: Path, inexact_ok: bool = False) -> str | None:
    """`--resume_from_checkpoint`: 'last'/'true' = newest complete checkpoint in run_dir, a path, or
    None ('false'/'none'/unset). Refuses (UsageError) when there is nothing to resume from."""
    if value is None or str(value).lower() in ("", "none", "null", "false", "no"):
        return None
    if str(value).lower() in ("last", "true", "yes"):
        ok, skipped = complete_checkpoints(run_dir, inexact_ok) if run_dir.is_dir() else ([], [])
        for path in skipped:
            if not ok or int(path.name.split("-")[1]) > int(ok[0].name.split("-")[1]):
                print(f"dipo train: skipping incomplete checkpoint {path} (an interrupted save)", file=sys.stderr)
        if not ok:
            raise UsageError(f"--resume_from_checkpoint {value}: no checkpoint found in {run_dir} "
                             f"(complete checkpoints only)")
        return str(ok[0])
    path = Path(value)
    if not path.is_dir():
        raise UsageError(f"--resume_from_checkpoint {value}: no such checkpoint directory")
    if not (path / "trainer_state.json").is_file():
        raise UsageError(f"--resume_from_checkpoint {value}: not a complete checkpoint (no trainer_state.json)")
    return str(path)


def check_run_dir(run_dir: Path, resuming: bool, overwrite: bool) -> None:
    """Refuse an output_dir that is a file, or that holds a run we are neither resuming nor replacing."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--output_dir {run_dir}: is a file, not a directory")
    previous = run_contents(run_dir)
    if previous and not (resuming or overwrite):
        raise UsageError(f"--output_dir {run_dir} already holds a run ({', '.join(previous[:4])}"
                         f"{', ...' if len(previous) > 4 else ''}); pass --resume_from_checkpoint last to continue "
                         "it, --overwrite_output_dir to replace it, or another --output_dir")


def clear_run_dir(run_dir: Path) -> None:
    """Delete a previous run's files (`--overwrite_output_dir`), nothing else in the folder."""
    for name in run_contents(run_dir):
        path = run_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        print(f"dipo train: --overwrite_output_dir: removed {path}", file=sys.stderr)


class RunLock:
    """An exclusive lock on `output_dir/.dipo.lock` for the life of the process: a second `dipo train`
    into the same directory is refused. The OS drops the lock when the process dies, so a crash
    never leaves a stale lock."""

    def __init__(self, run_dir: Path) -> None:
        import fcntl

        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / ".dipo.lock"
        self._file = open(self.path, "a+")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            owner = self._file.read().strip() or "another process"
            self._file.close()
            raise UsageError(f"--output_dir {run_dir}: in use by another dipo train ({owner})") from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"pid {os.getpid()}\n")
        self._file.flush()

    def release(self) -> None:
        self._file.close()
