"""The Hub during training: where a pushed checkpoint lives, how `resume_from_checkpoint` names one, how it is
fetched, and the one-line messages for a push that fails.

`SCLTrainer` pushes with `hub_strategy="checkpoint"` into `last-checkpoint/` of the repo (Trainer's layout).
`resume_from_checkpoint="user/run"` resumes from it at `hub_revision` (default: the main branch);
`"user/run@REVISION"` names a branch, tag or commit (the `repo@revision` form of `hf://` paths). A value that is
an existing local path is always a local checkpoint.
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass

from huggingface_hub import get_token, snapshot_download
from transformers import TrainingArguments

HUB_CHECKPOINT_DIR = "last-checkpoint"
# The download goes under the output dir in a folder Trainer's pushes skip (their ignore pattern "_*"), so a
# resumed run never uploads the old checkpoint back over the new one.
DOWNLOAD_DIR = "_hub_resume"

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # namespace/name: a bare name is too easily a local path


@dataclass(frozen=True)
class HubCheckpoint:
    repo_id: str
    revision: str | None

    def __str__(self) -> str:
        return self.repo_id if self.revision is None else f"{self.repo_id}@{self.revision}"


def parse_hub_checkpoint(value: str) -> HubCheckpoint | None:
    """`"user/run"` or `"user/run@revision"` → `HubCheckpoint`; None for an existing path or anything else."""
    if os.path.exists(value):
        return None
    repo_id, at, revision = value.partition("@")
    if not _REPO_ID.match(repo_id) or (at and not revision):
        return None
    return HubCheckpoint(repo_id, revision or None)


def download_checkpoint(ref: HubCheckpoint, output_dir: str, *, token: str | None) -> str:
    """Fetch `last-checkpoint/` of `ref` into `output_dir/_hub_resume/` and return that folder once it is
    complete (its completion marker and every file the marker lists are there)."""
    local_dir = os.path.join(output_dir, DOWNLOAD_DIR)
    try:
        snapshot_download(ref.repo_id, revision=ref.revision, allow_patterns=f"{HUB_CHECKPOINT_DIR}/*",
                          local_dir=local_dir, token=token)
    except Exception as error:
        raise ValueError(f"resume_from_checkpoint={ref}: not a local folder, and its {HUB_CHECKPOINT_DIR}/ could "
                         f"not be downloaded from the Hub ({one_line(error)})") from error
    folder = os.path.join(local_dir, HUB_CHECKPOINT_DIR)
    check_downloaded(folder, ref)
    return folder


def check_downloaded(folder: str, ref: HubCheckpoint) -> None:
    """Raise unless `folder` holds a checkpoint pushed whole: a push interrupted before its commit leaves the
    repo's previous checkpoint, but a repo pushed without `hub_strategy="checkpoint"` has none at all."""
    from .trainer import COMPLETE_MARKER  # the trainer imports this module

    marker = os.path.join(folder, COMPLETE_MARKER)
    if not os.path.isfile(marker):
        raise ValueError(f"{ref} has no complete {HUB_CHECKPOINT_DIR}/ (no {COMPLETE_MARKER}); push checkpoints "
                         "with --hub_strategy checkpoint")
    with open(marker) as f:
        missing = [name for name in json.load(f)["files"] if not os.path.exists(os.path.join(folder, name))]
    if missing:
        raise ValueError(f"{ref}: {HUB_CHECKPOINT_DIR}/ lacks {missing}, which its {COMPLETE_MARKER} lists")


def one_line(error: BaseException, secrets: tuple[str | None, ...] = ()) -> str:
    """`Type: first line of the message`, with any token in it masked (messages quote URLs and server text)."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    for secret in (*secrets, get_token()):
        if secret:
            text = text.replace(secret, "<TOKEN>")
    return text


def push_failed_message(repo_id: str, what: str, error: BaseException, token: str | None) -> str:
    return (f"push to the Hub repo {repo_id} failed ({what}): {one_line(error, (token,))}; training goes on, "
            "the local checkpoints are kept and the next save pushes again")


def without_tokens(args: TrainingArguments) -> TrainingArguments:
    """A shallow copy of `args` with every `*_token` field set to None, for the pickled `training_args.bin`
    (Trainer pickles the arguments whole; `to_dict`/`to_json_string` mask tokens, pickling does not)."""
    clean = copy.copy(args)  # copy.copy does not rerun __post_init__ (no device set-up, no validation)
    for name in vars(clean):
        if name.endswith("_token"):
            setattr(clean, name, None)
    return clean


__all__ = ["DOWNLOAD_DIR", "HUB_CHECKPOINT_DIR", "HubCheckpoint", "download_checkpoint", "parse_hub_checkpoint",
           "push_failed_message", "without_tokens"]
