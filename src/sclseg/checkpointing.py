"""SCL checkpoints on disk: the files SCLTrainer adds to Trainer's checkpoint, atomic writes, and the completion
marker that local and Hub resume both check.

A checkpoint is complete only when `checkpoint_complete.json` exists: it is written last, through a temporary
file and `os.replace`, and lists every file of the folder, so a crash mid-save (or a Hub push interrupted
before its commit) never passes for a checkpoint.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

TEACHER_WEIGHTS = "ema_teacher.safetensors"
TEACHER_STATE = "ema_teacher.json"
RANK_STATE = "scl_state_rank{rank}.pt"
COMPLETE_MARKER = "checkpoint_complete.json"


def atomic_write(path: str, write: Callable[[str], object]) -> None:
    """`write(tmp)` then `os.replace(tmp, path)`, so `path` is either absent or complete."""
    tmp = f"{path}.tmp-{os.getpid()}"
    write(tmp)
    os.replace(tmp, path)


def write_json(path: str, obj: dict) -> None:
    with open(path, "w") as f:
        json.dump(obj, f)


def mark_complete(folder: str, step: int) -> None:
    """Write the completion marker of `folder` (after everything else), listing its files."""
    files = sorted(os.listdir(folder))
    atomic_write(os.path.join(folder, COMPLETE_MARKER), lambda p: write_json(p, {"step": step, "files": files}))


def missing_files(folder: str) -> list[str] | None:
    """The files the marker of `folder` lists that are not there; None when there is no marker."""
    marker = os.path.join(folder, COMPLETE_MARKER)
    if not os.path.isfile(marker):
        return None
    with open(marker) as f:
        return [name for name in json.load(f)["files"] if not os.path.exists(os.path.join(folder, name))]


def check_checkpoint_complete(folder: str) -> None:
    """Raise if `folder` lacks the marker SCLTrainer writes after everything else (a crash mid-save)."""
    if not os.path.isfile(os.path.join(folder, COMPLETE_MARKER)):
        raise ValueError(f"{folder} is not a complete SCL checkpoint (no {COMPLETE_MARKER}: the save was "
                         "interrupted, or it was not written by SCLTrainer); resume from an earlier checkpoint")


def checkpoint_step(folder: str) -> int:
    """N of a `checkpoint-N` folder."""
    return int(os.path.basename(os.path.normpath(folder)).removeprefix(f"{PREFIX_CHECKPOINT_DIR}-"))


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest `checkpoint-N` folder of `output_dir` that has the completion marker."""
    if not os.path.isdir(output_dir):
        return None
    prefix = f"{PREFIX_CHECKPOINT_DIR}-"
    steps = [int(name[len(prefix):]) for name in os.listdir(output_dir)
             if name.startswith(prefix) and name[len(prefix):].isdigit()
             and os.path.isfile(os.path.join(output_dir, name, COMPLETE_MARKER))]
    return os.path.join(output_dir, f"{prefix}{max(steps)}") if steps else None


__all__ = ["COMPLETE_MARKER", "RANK_STATE", "TEACHER_STATE", "TEACHER_WEIGHTS", "atomic_write",
           "check_checkpoint_complete", "checkpoint_step", "last_complete_checkpoint", "mark_complete",
           "missing_files", "write_json"]
