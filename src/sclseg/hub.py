"""Everything that talks to the Hugging Face Hub: pushing a saved model folder (`sclseg push`) or unlabeled
Parquet shards (`sclseg pack-unlabeled --push-to-hub`), and, during training, naming, downloading and checking
the checkpoint that `SCLTrainer` pushes to `last-checkpoint/` (`hub_strategy="checkpoint"`).

Tokens come from the usual Hugging Face places (`HF_TOKEN`, `hf auth login`) and are never printed or written
(`redaction.py`). A model is pushed as safetensors only: pickled files (`*.bin`, `*.pt`, ...; a Trainer output
folder holds a pickled `training_args.bin`) are left out, because loading a pickle can execute code, and
`checkpoint-*` folders are training state, not the model.

Resume: `resume_from_checkpoint="user/run"` resumes from `last-checkpoint/` at `hub_revision` (default: the main
branch); `"user/run@REVISION"` names a branch, tag or commit (the `repo@revision` form of `hf://` paths). A value
that is an existing local path is always a local checkpoint.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import torch

from huggingface_hub import DatasetCard, DatasetCardData, HfApi, snapshot_download
from huggingface_hub.errors import HfHubHTTPError
from transformers.trainer import TRAINING_ARGS_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, HubStrategy
from transformers.utils.hub import PushInProgress

from .checkpointing import COMPLETE_MARKER, TEACHER_WEIGHTS, checkpoint_step, last_complete_checkpoint, missing_files
from .redaction import one_line, without_tokens

PICKLE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle", "*.joblib")
SKIPPED_FOLDERS = ("checkpoint-*", "runs", ".git", ".cache", "__pycache__")
UNLABELED_PREFIX = "data"
# Pushed from the output dir: never the local checkpoints (pushed on their own), scratch folders ("_*", e.g. a
# downloaded Hub checkpoint), nor the prediction pictures (they show evaluation images, e.g. Cityscapes').
ROOT_PUSH_IGNORE = ["_*", f"{PREFIX_CHECKPOINT_DIR}-*", "predictions/*"]

logger = logging.getLogger(__name__)


def _transport_errors() -> tuple[type[BaseException], ...]:
    # huggingface_hub 2.x talks through httpx2, 1.x through httpx; their connection errors derive from neither
    # OSError nor HfHubHTTPError, and a dead network must give one line, not a traceback.
    found = []
    for name in ("httpx2", "httpx"):
        try:
            found.append(importlib.import_module(name).HTTPError)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


# What an upload can raise for reasons outside the program: the CLIs turn these into one-line errors.
UPLOAD_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, HfHubHTTPError, *_transport_errors())


@dataclass
class PushResult:
    """Where the upload went: the repo URL, the branch, the commit id, the tag (if any), the files left out."""

    repo_url: str
    revision: str
    commit: str
    tag: str | None
    skipped: list[str]

    def as_dict(self) -> dict:
        return {"repo_url": self.repo_url, "revision": self.revision, "commit": self.commit, "tag": self.tag,
                "skipped": self.skipped}


def _skipped(path: str) -> bool:
    parts = path.split("/")
    return (any(fnmatch.fnmatch(parts[-1], p) for p in PICKLE_PATTERNS)
            or any(fnmatch.fnmatch(part, p) for part in parts[:-1] for p in SKIPPED_FOLDERS))


def model_files(folder: Path) -> tuple[list[str], list[str]]:
    """(files to push, files left out), as POSIX paths relative to `folder`."""
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return [f for f in files if not _skipped(f)], [f for f in files if _skipped(f)]


def check_model_folder(folder: Path) -> None:
    """Raise ValueError unless `folder` holds a config that loads and safetensors weights (not pickles only)."""
    from safetensors import safe_open
    from transformers import AutoConfig

    import sclseg  # noqa: F401 - registers the model types with AutoConfig

    if not (folder / "config.json").is_file():
        raise ValueError(f"{folder} holds no config.json: not a saved model (save_pretrained writes one)")
    AutoConfig.from_pretrained(folder)
    shards = sorted(folder.glob("*.safetensors"))
    if not shards:
        pickles = sorted(p.name for p in folder.iterdir() if _skipped(p.name))
        hint = (f" (found {', '.join(pickles)}: pickles are never pushed; re-save with save_pretrained)"
                if pickles else "")
        raise ValueError(f"{folder} holds no *.safetensors weights{hint}")
    for shard in shards:  # a truncated file fails here, before anything is uploaded
        with safe_open(str(shard), framework="pt") as handle:
            handle.keys()


def push_model_folder(folder: str | Path, repo_id: str, *, revision: str | None = None, private: bool = False,
                      commit_message: str | None = None, tag: str | None = None) -> PushResult:
    """Create the repo (if needed) and the branch `revision` (if needed), upload the model, tag the commit."""
    folder = Path(folder)
    check_model_folder(folder)
    files, skipped = model_files(folder)
    api = HfApi()
    repo_url = api.create_repo(repo_id, private=private, exist_ok=True)
    branch = revision or "main"
    if branch != "main":
        api.create_branch(repo_id, branch=branch, exist_ok=True)
    commit = api.upload_folder(repo_id=repo_id, folder_path=folder, revision=branch, allow_patterns=files,
                               commit_message=commit_message or f"Upload {folder.name} with sclseg push")
    if tag is not None:
        api.create_tag(repo_id, tag=tag, revision=commit.oid, tag_message=commit_message)
    return PushResult(str(repo_url), branch, commit.oid, tag, skipped)


def _dataset_card(num_images: int, num_shards: int) -> str:
    data = DatasetCardData(task_categories=["image-segmentation"], tags=["sclseg", "unlabeled", "images"],
                           configs=[{"config_name": "default",
                                     "data_files": [{"split": "train", "path": f"{UNLABELED_PREFIX}/train-*"}]}])
    body = (f"# Unlabeled images for sclseg\n\n{num_images} images in {num_shards} Parquet shards written by "
            "`sclseg pack-unlabeled` (columns `image`: the original encoded bytes, `image_id`: the path in the "
            "source folder). Stream them as the unlabeled data of semi-supervised training with "
            "`--unlabeled_source <this repo id>` or `sclseg.data.load_unlabeled(\"<this repo id>\")`.\n")
    return f"---\n{data.to_yaml()}\n---\n\n{body}"


def push_unlabeled_shards(shards: list[Path], num_images: int, repo_id: str, *, private: bool = False,
                          revision: str | None = None, commit_message: str | None = None) -> PushResult:
    """Upload Parquet shards to `data/` of a dataset repo in one commit, replacing older shards there."""
    folder = shards[0].parent
    if any(shard.parent != folder for shard in shards):
        raise ValueError("the shards to push must lie in one folder")
    api = HfApi()
    repo_url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    branch = revision or "main"
    if branch != "main":
        api.create_branch(repo_id, branch=branch, repo_type="dataset", exist_ok=True)
    card = DatasetCard(_dataset_card(num_images, len(shards)))
    api.upload_file(path_or_fileobj=str(card).encode(), path_in_repo="README.md", repo_id=repo_id,
                    repo_type="dataset", revision=branch, commit_message="Dataset card (sclseg pack-unlabeled)")
    commit = api.upload_folder(
        repo_id=repo_id, repo_type="dataset", folder_path=folder, path_in_repo=UNLABELED_PREFIX, revision=branch,
        allow_patterns=[shard.name for shard in shards], delete_patterns="*.parquet",  # stale shards of a re-pack
        commit_message=commit_message or f"Upload {num_images} unlabeled images in {len(shards)} shards")
    return PushResult(str(repo_url), branch, commit.oid, None, [])


def summary_json(result: PushResult) -> str:
    return json.dumps(result.as_dict(), indent=2) + "\n"


# ----------------------------------------------------------------------------------------------------
# The checkpoint SCLTrainer pushes, and resuming from it.

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
    missing = missing_files(folder)
    if missing is None:
        raise ValueError(f"{ref} has no complete {HUB_CHECKPOINT_DIR}/ (no {COMPLETE_MARKER}); push checkpoints "
                         "with --hub_strategy checkpoint")
    if missing:
        raise ValueError(f"{ref}: {HUB_CHECKPOINT_DIR}/ lacks {missing}, which its {COMPLETE_MARKER} lists")


def push_failed_message(repo_id: str, what: str, error: BaseException, token: str | None) -> str:
    return (f"push to the Hub repo {repo_id} failed ({what}): {one_line(error, (token,))}; training goes on, "
            "the local checkpoints are kept and the next save pushes again")


# ----------------------------------------------------------------------------------------------------------
# Pushing during training.


class HubPushMixin:
    """`SCLTrainer`'s Hub behaviour on top of Trainer's: the repo's model is the EMA teacher (the exported
    model) at every push; with `hub_strategy="checkpoint"` its `last-checkpoint/` is a whole checkpoint, pushed
    after its completion marker; a push that fails logs one warning and is retried at the next save; creating
    the repo at start-up fails fast. Expects the host to be a `Trainer` with `teacher`, `_export(folder)` and
    `_defer_push` (set while Trainer's own `_save_checkpoint` runs, whose push would precede the marker)."""

    def _fetch_hub_checkpoint(self, ref: HubCheckpoint) -> str:
        ref = HubCheckpoint(ref.repo_id, ref.revision or self.args.hub_revision)
        # One download per machine; the other local processes read the same folder once it is there.
        with self.args.main_process_first(local=True, desc="download the Hub checkpoint"):
            if self.args.local_process_index == 0:
                return download_checkpoint(ref, self.args.output_dir, token=self.args.hub_token)
            folder = os.path.join(self.args.output_dir, DOWNLOAD_DIR, HUB_CHECKPOINT_DIR)
            check_downloaded(folder, ref)
            return folder

    def init_hf_repo(self, token: str | None = None, private: bool | None = None) -> None:
        """Trainer's, failing fast with one clear line: at start-up nothing is lost by stopping, and a wrong
        repo id, token or network is better found before hours of training than at the first save."""
        try:
            super().init_hf_repo(token=token, private=private)
        except Exception as error:
            repo = self.args.hub_model_id or Path(self.args.output_dir).absolute().name
            raise RuntimeError(f"push_to_hub: could not create or reach the Hub repo {repo} "
                               f"({one_line(error, (token, self.args.hub_token))}); check the network, the token's "
                               "write access and --hub_model_id, or train without --push_to_hub") from None

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        """Trainer's push of a checkpoint, with the repo's model being the checkpoint's teacher, and deferred
        until the completion marker exists. Skipped while an earlier push still runs (unless `hub_always_push`);
        a skipped or failed newest checkpoint is pushed again at the end of `train`."""
        if self._defer_push or not self.is_world_process_zero() or self.args.hub_strategy == HubStrategy.END:
            return
        busy = self.push_in_progress is not None and not self.push_in_progress.is_done()
        if busy and not self.args.hub_always_push:
            return
        self.callback_handler.on_push_begin(self.args, self.state, self.control)
        self._stage_root_model(checkpoint_folder)
        step = checkpoint_step(checkpoint_folder)
        message = f"Training in progress, step {step}"
        jobs = [self._upload(self.args.output_dir, None, message)]
        if self.args.hub_strategy in (HubStrategy.CHECKPOINT, HubStrategy.ALL_CHECKPOINTS):
            path = (HUB_CHECKPOINT_DIR if self.args.hub_strategy == HubStrategy.CHECKPOINT
                    else Path(checkpoint_folder).name)
            jobs.append(self._upload(checkpoint_folder, path, f"{message}, checkpoint"))
        self._hub_pushes[step] = jobs
        if busy:
            self.push_in_progress.jobs.extend(jobs)
        else:
            self.push_in_progress = PushInProgress(jobs)

    def _stage_root_model(self, checkpoint_folder: str) -> None:
        """Copy the model users load (teacher, or student with `eval_with_teacher=False`), its config, the
        processor and the token-free arguments from the checkpoint to the output dir, whose root is pushed."""
        out = self.args.output_dir
        model_file = TEACHER_WEIGHTS if self.args.eval_with_teacher else "model.safetensors"
        shutil.copy(os.path.join(checkpoint_folder, model_file), os.path.join(out, "model.safetensors"))
        shutil.copy(os.path.join(checkpoint_folder, "config.json"), os.path.join(out, "config.json"))
        if self.processing_class is not None:
            self.processing_class.save_pretrained(out)
        torch.save(without_tokens(self.args), os.path.join(out, TRAINING_ARGS_NAME))
        self.create_model_card()

    def _upload(self, folder: str, path_in_repo: str | None, message: str, *, blocking: bool = False,
                token: str | None = None, revision: str | None = None):
        """One `upload_folder` commit of `folder` (the output dir's root when `path_in_repo` is None); in the
        background unless `blocking`, logging one warning if it fails."""
        job = HfApi().upload_folder(
            repo_id=self.hub_model_id, folder_path=folder, path_in_repo=path_in_repo, commit_message=message,
            token=token or self.args.hub_token, revision=revision or self.args.hub_revision,
            ignore_patterns=ROOT_PUSH_IGNORE if path_in_repo is None else None, run_as_future=not blocking,
        )
        if isinstance(job, Future):
            job.add_done_callback(lambda done: self._log_if_failed(done, message))
        return job

    def _log_if_failed(self, job: Future, what: str) -> None:
        if not job.cancelled() and job.exception() is not None:
            logger.warning(push_failed_message(self.hub_model_id, what, job.exception(), self.args.hub_token))

    def _warn_on_failure(self, what: str, push: Callable[[], Any]) -> None:
        try:
            push()
        except Exception as error:
            logger.warning(push_failed_message(self.hub_model_id, what, error, self.args.hub_token))

    def _push_unpushed_checkpoint(self) -> None:
        """At the end of `train`: if the newest checkpoint's push was skipped (an earlier one still running) or
        failed, push it once more, so that the Hub's `last-checkpoint/` is the last one saved."""
        if not self.args.push_to_hub or not self.is_world_process_zero() or self.args.hub_strategy == HubStrategy.END:
            return
        self._finish_current_push()
        folder = last_complete_checkpoint(self._get_output_dir(trial=None))
        if folder is None:
            return
        step = checkpoint_step(folder)
        jobs = self._hub_pushes.get(step, [])
        if jobs and all(not job.cancelled() and job.exception() is None for job in jobs):
            return
        self._push_from_checkpoint(folder)
        self._finish_current_push()

    def push_to_hub(self, commit_message: str | None = "End of training", blocking: bool = True,
                    token: str | None = None, revision: str | None = None, private: bool | None = None, **kwargs):
        """Upload the output dir's root: the exported model (teacher, unless `eval_with_teacher=False`),
        processor and sclseg's model card (rewritten with the latest mIoU). Raises if the upload fails
        (automatic pushes only warn)."""
        if self.hub_model_id is None:
            self.init_hf_repo(token=token, private=private)
        self._export(self.args.output_dir)  # writes the card too
        if not self.is_world_process_zero():
            return None
        self.callback_handler.on_push_begin(self.args, self.state, self.control)
        self._finish_current_push()
        return self._upload(self.args.output_dir, None, commit_message or "End of training", blocking=blocking,
                            token=token, revision=revision)


__all__ = ["DOWNLOAD_DIR", "HUB_CHECKPOINT_DIR", "UPLOAD_ERRORS", "HubCheckpoint", "HubPushMixin", "PushResult",
           "check_downloaded", "download_checkpoint", "parse_hub_checkpoint", "push_failed_message",
           "push_model_folder", "push_unlabeled_shards", "summary_json"]
