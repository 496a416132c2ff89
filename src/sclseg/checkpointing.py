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
from typing import Any

import torch
from safetensors.torch import load_file, save_file
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


def save_teacher(folder: str, teacher: Any) -> None:
    """The EMA teacher's weights (safetensors) and step (JSON) into `folder`."""
    weights = {k: v.contiguous() for k, v in teacher.model.state_dict().items()}
    # format=pt: the metadata transformers checks when this file is loaded as a model.safetensors
    atomic_write(os.path.join(folder, TEACHER_WEIGHTS), lambda p: save_file(weights, p, {"format": "pt"}))
    atomic_write(os.path.join(folder, TEACHER_STATE), lambda p: write_json(p, {"step": teacher.step}))


def load_teacher(folder: str, teacher: Any) -> None:
    # Read to the CPU; load_state_dict copies onto the teacher's device. (safetensors rejects "cpu:0", which is
    # the device of every CPU process in a multi-process run.)
    weights = load_file(os.path.join(folder, TEACHER_WEIGHTS))
    with open(os.path.join(folder, TEACHER_STATE)) as f:
        teacher.load_state_dict({"model": weights, "step": json.load(f)["step"]})


def save_rank_state(folder: str, rank: int, *, generator: torch.Generator, nonfinite: int, stream: Any) -> None:
    """One process's state: its CutMix/pair generator, its count of non-finite steps in a row, and its unlabeled
    stream's position (`stream.state_dict()`, as JSON; None for a stream without one)."""
    state: dict[str, Any] = {"generator": generator.get_state(), "nonfinite_in_a_row": nonfinite}
    if stream is not None:
        state["unlabeled"] = json.dumps(stream.state_dict())
    atomic_write(os.path.join(folder, RANK_STATE.format(rank=rank)), lambda p: torch.save(state, p))


def load_rank_state(folder: str, rank: int, *, generator: torch.Generator, stream: Any) -> int:
    """Restore what `save_rank_state` wrote (the stream only if it was saved and `stream` is given); returns the
    count of non-finite steps in a row."""
    state = torch.load(os.path.join(folder, RANK_STATE.format(rank=rank)), weights_only=True)  # no pickled code
    generator.set_state(state["generator"])
    if "unlabeled" in state and stream is not None:
        stream.load_state_dict(json.loads(state["unlabeled"]))
    return int(state["nonfinite_in_a_row"])


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
           "check_checkpoint_complete", "checkpoint_step", "last_complete_checkpoint", "load_rank_state",
           "load_teacher", "mark_complete", "missing_files", "save_rank_state", "save_teacher", "write_json"]
