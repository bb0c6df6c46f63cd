"""The DiPO state file saved beside every engine checkpoint: one name, one save, one load.

``CHECKPOINT/dipo_state.pt`` holds ``{"dipo": DiPO.state_dict(), **engine_extras}`` (the PPL queue and
the config that filled it; TRL adds its refill-sampler position, verl its ``global_steps``). Without it a
resumed run starts with an empty queue and its splits differ from an uninterrupted run's.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from dipo.core import DiPO

STATE_FILE = "dipo_state.pt"


def save_state(path: str | os.PathLike, dipo: DiPO, **extras) -> None:
    """Write ``{"dipo": dipo.state_dict(), **extras}`` to ``path`` via a temporary name and one rename,
    so a process killed mid-save never leaves a half-written state file under the real name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"dipo": dipo.state_dict(), **extras}, tmp)
    os.replace(tmp, path)


def load_state(path: str | os.PathLike, dipo: DiPO | None = None) -> dict:
    """Read a state file (and restore ``dipo`` from it when given); returns the whole dict.

    Raises:
        ValueError naming the file when it is truncated, empty, foreign or does not fit ``dipo``.
    """
    try:
        state = torch.load(path, weights_only=False)
        if not isinstance(state, dict) or "dipo" not in state:
            raise ValueError("not a DiPO state (no 'dipo' entry)")
        if dipo is not None:
            dipo.load_state_dict(state["dipo"])
        return state
    except Exception as err:  # one line naming the file, whatever went wrong
        raise ValueError(f"{path}: cannot restore the DiPO state ({type(err).__name__}: {err})") from None
