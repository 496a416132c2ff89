"""Git-like storage behind the local Hub server (tests/hub_server.py): repos, commits, branches, tags, blobs.

Commits are immutable snapshots {path: Blob} with sha1 ids; branches and tags are names pointing at commit ids,
so `revision=` can be a branch, a tag or a commit id exactly as on the Hub. File contents live on disk, keyed by
sha256, so LFS uploads (which arrive before the commit that names them) and regular files share one store.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

# Files the Hub would track with LFS through the default `.gitattributes`.
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".parquet", ".arrow", ".npy", ".npz", ".pkl",
                ".png", ".jpg", ".jpeg", ".zip", ".gz", ".tar", ".h5", ".onnx", ".msgpack")
GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES).encode()


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass(frozen=True)
class Blob:
    size: int
    sha256: str
    lfs: bool

    @property
    def git_oid(self) -> str:
        # An LFS file's git blob is its pointer, as on the Hub.
        return git_blob_oid(lfs_pointer(self.sha256, self.size)) if self.lfs else self._content_oid

    _content_oid: str = ""

    @property
    def pointer_size(self) -> int:
        return len(lfs_pointer(self.sha256, self.size))


@dataclass(frozen=True)
class Commit:
    oid: str
    parent: str | None
    files: dict[str, Blob]
    title: str
    message: str
    date: str


class RevisionNotFound(KeyError):
    pass


class CommitConflict(ValueError):
    pass


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit:
        """A branch, a tag, a full ref (`refs/heads/x`, `refs/tags/x`) or a commit id (full or >= 7 hex digits)."""
        name = revision.removeprefix("refs/heads/").removeprefix("refs/tags/")
        for table in (self.branches, self.tags):
            if name in table:
                return self.commits[table[name]]
        if revision in self.commits:
            return self.commits[revision]
        matches = [oid for oid in self.commits if len(revision) >= 7 and oid.startswith(revision)]
        if len(matches) == 1:
            return self.commits[matches[0]]
        raise RevisionNotFound(revision)

    def head(self, branch: str = "main") -> Commit:
        return self.commits[self.branches[branch]]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class HubStore:
    """All repos of the local Hub, thread-safe (the HTTP server handles requests in threads)."""

    def __init__(self, root: Path) -> None:
        self.blob_dir = Path(root) / "blobs"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lock = threading.RLock()

    # -- blobs -----------------------------------------------------------------------------------------------
    def put_bytes(self, data: bytes, *, lfs: bool) -> Blob:
        sha256 = hashlib.sha256(data).hexdigest()
        path = self.blob_dir / sha256
        if not path.exists():
            tmp = path.with_suffix(f".tmp{threading.get_ident()}")
            tmp.write_bytes(data)
            tmp.replace(path)
        return Blob(size=len(data), sha256=sha256, lfs=lfs, _content_oid="" if lfs else git_blob_oid(data))

    def has_lfs_object(self, sha256: str) -> bool:
        return (self.blob_dir / sha256).exists()

    def lfs_blob(self, sha256: str) -> Blob:
        return Blob(size=(self.blob_dir / sha256).stat().st_size, sha256=sha256, lfs=True)

    def read(self, blob: Blob, start: int = 0, end: int | None = None) -> bytes:
        with open(self.blob_dir / blob.sha256, "rb") as handle:
            handle.seek(start)
            return handle.read((blob.size if end is None else end) - start)

    # -- repos -----------------------------------------------------------------------------------------------
    def get(self, repo_type: str, repo_id: str) -> Repo | None:
        return self.repos.get((repo_type, repo_id))

    def create_repo(self, repo_type: str, repo_id: str, *, private: bool) -> Repo | None:
        """None when it exists (the server answers 409). A new repo has one commit with `.gitattributes`."""
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                return None
            repo = Repo(repo_type=repo_type, repo_id=repo_id, private=private, created_at=_now())
            self.repos[(repo_type, repo_id)] = repo
            gitattributes = self.put_bytes(GITATTRIBUTES, lfs=False)
            self._add_commit(repo, "main", None, {".gitattributes": gitattributes}, "initial commit", "")
            return repo

    def commit(self, repo: Repo, branch: str, *, additions: dict[str, Blob], deletions: list[str],
               folder_deletions: list[str], title: str, message: str, parent_commit: str | None) -> Commit:
        with self.lock:
            if branch not in repo.branches:
                raise RevisionNotFound(branch)
            head = repo.head(branch)
            if parent_commit is not None and parent_commit != head.oid:
                raise CommitConflict(f"parent commit {parent_commit} is not the head of {branch} ({head.oid})")
            files = dict(head.files)
            for path in deletions:
                files.pop(path, None)
            for folder in folder_deletions:
                prefix = folder.rstrip("/") + "/"
                files = {path: blob for path, blob in files.items() if not path.startswith(prefix)}
            files.update(additions)
            return self._add_commit(repo, branch, head.oid, files, title, message)

    def _add_commit(self, repo: Repo, branch: str, parent: str | None, files: dict[str, Blob], title: str,
                    message: str) -> Commit:
        # The id depends on the content, the parent and the time, so two identical commits still differ.
        tree = json.dumps({path: blob.sha256 for path, blob in sorted(files.items())})
        oid = hashlib.sha1(f"{parent}\n{tree}\n{title}\n{time.time_ns()}".encode()).hexdigest()
        commit = Commit(oid=oid, parent=parent, files=files, title=title, message=message, date=_now())
        repo.commits[oid] = commit
        repo.branches[branch] = oid
        return commit

    def create_branch(self, repo: Repo, branch: str, starting_point: str | None) -> bool:
        """False when the branch exists (409)."""
        with self.lock:
            if branch in repo.branches:
                return False
            repo.branches[branch] = repo.resolve(starting_point or "main").oid
            return True

    def create_tag(self, repo: Repo, tag: str, revision: str) -> bool:
        """False when the tag exists (409)."""
        with self.lock:
            if tag in repo.tags:
                return False
            repo.tags[tag] = repo.resolve(revision).oid
            return True

    def delete_repo(self, repo_type: str, repo_id: str) -> bool:
        with self.lock:
            return self.repos.pop((repo_type, repo_id), None) is not None
