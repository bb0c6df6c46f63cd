"""The DiPO state file saved beside every engine checkpoint: one name, one save, one load.

``CHECKPOINT/dipo_state.pt`` holds ``{"dipo": DiPO.state_dict(), **engine_extras}`` (the PPL queue and
the config that filled it; TRL adds its refill-sampler position, verl its ``global_steps``). Without it a
resumed run starts with an empty queue and its splits differ from an uninterrupted run's.

A checkpoint may come from someone else, so the file holds plain data only (dicts, lists, tuples,
strings, numbers, booleans, None and tensors), and is read with ``torch.load(weights_only=True)``:
PyTorch's restricted unpickler, which builds those types and refuses every other global, so a crafted
file cannot run code while it is read (docs/security.md). Every state file this project has written
is plain data already, so old files load unchanged.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import torch

from dipo.core import DiPO

STATE_FILE = "dipo_state.pt"
PLAIN_TYPES = (str, int, float, bool, type(None), torch.Tensor)


def plain_data_problem(obj, where: str = "state") -> str | None:
    """Where ``obj`` holds something other than plain data (dict with string keys, list, tuple, str, int,
    float, bool, None, tensor), as ``"state['dipo']['x']: set"``; None when it is all plain."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str):
                return f"{where}: key {key!r} is a {type(key).__name__}, not a string"
            problem = plain_data_problem(value, f"{where}[{key!r}]")
            if problem:
                return problem
        return None
    if isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            problem = plain_data_problem(value, f"{where}[{i}]")
            if problem:
                return problem
        return None
    return None if isinstance(obj, PLAIN_TYPES) else f"{where}: {type(obj).__name__} is not plain data"


def save_state(path: str | os.PathLike, dipo: DiPO, **extras) -> None:
    """Write ``{"dipo": dipo.state_dict(), **extras}`` to ``path`` via a temporary name and one rename,
    so a process killed mid-save never leaves a half-written state file under the real name.

    Raises:
        TypeError when the state holds anything but plain data (it could not be loaded safely).
    """
    state = {"dipo": dipo.state_dict(), **extras}
    problem = plain_data_problem(state)
    if problem:
        raise TypeError(f"DiPO state file {path}: {problem} (a state file holds plain data only)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_state(path: str | os.PathLike, dipo: DiPO | None = None) -> dict:
    """Read a state file with PyTorch's restricted unpickler (and restore ``dipo`` from it when given);
    returns the whole dict. Nothing in the file is executed.

    Raises:
        ValueError naming the file when it is truncated, empty, foreign, does not fit ``dipo``, or needs
        anything but plain data (refused unread: it may have been crafted to run code).
    """
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as err:
        wanted = re.search(r"GLOBAL ([\w.]+)", str(err))
        if wanted:  # the restricted unpickler met a global it does not allow, and built nothing of it
            raise ValueError(f"{path}: refused to load the DiPO state: it asks for the Python object {wanted.group(1)}, "
                             "and a DiPO state holds plain data only; it may have been crafted to run code, and "
                             "nothing in it was run") from None
        raise ValueError(f"{path}: cannot restore the DiPO state (not a torch state file)") from None
    except Exception as err:  # one line naming the file, whatever went wrong
        raise ValueError(f"{path}: cannot restore the DiPO state ({type(err).__name__}: {err})") from None
    try:
        if not isinstance(state, dict) or "dipo" not in state:
            raise ValueError("not a DiPO state (no 'dipo' entry)")
        if dipo is not None:
            dipo.load_state_dict(state["dipo"])
        return state
    except Exception as err:
        raise ValueError(f"{path}: cannot restore the DiPO state ({type(err).__name__}: {err})") from None
