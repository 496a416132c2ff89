"""Upload a saved model folder (`sclseg push`) or unlabeled Parquet shards (`sclseg pack-unlabeled --push-to-hub`).

The token comes from the usual Hugging Face places (`HF_TOKEN`, `hf auth login`); it is never printed or written.
A model is pushed as safetensors only: pickled files (`*.bin`, `*.pt`, ... — a Trainer output folder holds a
pickled `training_args.bin`) are left out, because loading a pickle can execute code (issue 7: loading never
executes pickled code), and `checkpoint-*` folders are left out because they are training state, not the model
(resume-from-Hub pushes them with `hub_strategy="checkpoint"`).
"""

from __future__ import annotations

import fnmatch
import importlib
import json
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import DatasetCard, DatasetCardData, HfApi
from huggingface_hub.errors import HfHubHTTPError

PICKLE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle", "*.joblib")
SKIPPED_FOLDERS = ("checkpoint-*", "runs", ".git", ".cache", "__pycache__")
UNLABELED_PREFIX = "data"


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
