"""Checkpoints a crash cannot half-write, and resumes that are exact or refused (issue #14).

`transformers.Trainer` writes `checkpoint-N/` file by file and rotates old checkpoints before the
DiPO state is added, so a kill during a save used to leave a folder `--resume last` would pick (and
possibly no complete checkpoint at all). `DiPOTrainer` now stages the whole checkpoint in
`OUTPUT_DIR/.staging-checkpoint-N/checkpoint-N/` (model, optimizer, scheduler, RNG, trainer state,
`dipo_state.pt`), renames it to `checkpoint-N` in one `os.replace`, and only then rotates old
checkpoints. A resume checks that everything an exact resume needs is there; a gap is refused in one
line unless `allow_inexact_resume` is set.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from dipo.engines.kit import STATE_FILE

STAGING_PREFIX = ".staging-"


def staging_dir(run_dir: str | os.PathLike, step: int) -> Path:
    """Where checkpoint `step` is written before it is published (hidden: no `checkpoint-*` glob sees it)."""
    return Path(run_dir) / f"{STAGING_PREFIX}checkpoint-{step}"


def publish(staged: Path, final: Path) -> None:
    """Move a fully written checkpoint folder into place (one rename; a same-step leftover is replaced)."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(staged, final)


def resume_gaps(checkpoint: str | os.PathLike, *, needs_optimizer: bool) -> list[str]:
    """Files an exact resume from `checkpoint` needs that are missing or empty."""
    folder = Path(checkpoint)
    required = [STATE_FILE, "trainer_state.json"] + (["optimizer.pt", "scheduler.pt"] if needs_optimizer else [])
    gaps = [name for name in required if not (folder / name).is_file() or (folder / name).stat().st_size == 0]
    if not any(p.stat().st_size > 0 for p in folder.glob("rng_state*.pth")):
        gaps.append("rng_state.pth")
    return gaps
