"""A local server that speaks the Hub's HTTP protocol, for tests that run the real Hugging Face clients offline.

Standard library only: `ThreadingHTTPServer` in a thread, repos in `tests/hub_repos.py`. It answers what
`huggingface_hub` 2.x, `transformers` and `datasets` send when `HF_ENDPOINT` points at it and
`HF_HUB_DISABLE_XET=1` (the legacy LFS upload path):

    GET  /api/whoami-v2                              POST /api/validate-yaml (README metadata: always valid)
    POST /api/repos/create                          DELETE /api/repos/delete
    GET  /api/{type}s/{ns}/{name}[/revision/{rev}]   (sha, siblings[] with rfilename, size, blobId, lfs)
    GET  /api/{type}s/{ns}/{name}/tree/{rev}[/{path}]?recursive=   POST .../paths-info/{rev}
    GET  /api/{type}s/{ns}/{name}/refs               GET .../commits/{rev}
    POST /api/{type}s/{ns}/{name}/preupload/{rev}    POST .../commit/{rev} (NDJSON)
    POST /api/{type}s/{ns}/{name}/branch/{branch}    DELETE same    POST .../tag/{rev}
    POST /[datasets/]{ns}/{name}.git/info/lfs/objects/batch   then PUT /lfs-objects/{sha256}, POST /lfs-verify
    GET|HEAD /[datasets/]{ns}/{name}/resolve/{rev}/{path}   (X-Repo-Commit, ETag, X-Linked-*, Range -> 206)

Test switches: `fail_next(n, status, match)` answers the next n matching requests with an error; `stop()` /
`start()` take the server down and up on the same port, keeping the repos. `authorization` records every
Authorization header value seen, so tests can assert that a token was sent (and, elsewhere, never logged).

Clients run in subprocesses (`run_hub_client`): tests/conftest.py sets HF_HUB_OFFLINE=1 for the test process and
huggingface_hub reads its settings at import time, so the client side needs a fresh interpreter with its own
environment. Nothing in the client is patched.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from hub_repos import LFS_SUFFIXES, Commit, CommitConflict, HubStore, Repo, RevisionNotFound  # noqa: E402

FAKE_TOKEN = "hf_test_0123456789abcdefSECRET"
USER = "test-user"
_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_LFS_MIN_SIZE = 10 * 1024 * 1024


class HubError(Exception):
    """An error answer: HTTP status plus the Hub's `X-Error-Code` that huggingface_hub maps to its exceptions."""

    def __init__(self, status: int, message: str, code: str | None = None, extra: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra or {}


class LocalHub:
    """The server object tests hold: `url`, `store`, `authorization`, `requests`, `fail_next`, `stop`, `start`."""

    def __init__(self, root: Path, port: int = 0) -> None:
        self.store = HubStore(root)
        self.authorization: list[str] = []
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self._failures: list[tuple[int, str | None]] = []
        self._lock = threading.Lock()
        self._port = port
        self._httpd: ThreadingHTTPServer | None = None
        self.down = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> LocalHub:
        httpd = ThreadingHTTPServer(("127.0.0.1", self._port), _Handler)
        httpd.daemon_threads = True
        httpd.hub = self  # type: ignore[attr-defined]
        self._port = httpd.server_address[1]
        self._httpd, self.down = httpd, False
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Server down: refuse new connections and drop kept-alive ones at their next request."""
        self.down = True
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def fail_next(self, n: int = 1, status: int = 500, match: str | None = None) -> None:
        """Answer the next `n` requests whose path contains `match` (any request if None) with `status`."""
        with self._lock:
            self._failures.extend([(status, match)] * n)

    def take_failure(self, path: str) -> int | None:
        with self._lock:
            for index, (status, match) in enumerate(self._failures):
                if match is None or match in path:
                    del self._failures[index]
                    return status
        return None

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo | None:
        return self.store.get(repo_type, repo_id)


# ---------------------------------------------------------------------------------------------------------------
# Request handling
# ---------------------------------------------------------------------------------------------------------------

_API_REPO = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/(.*))?$")
_LFS_BATCH = re.compile(r"^/(datasets/|spaces/)?([^/]+/[^/]+)\.git/info/lfs/objects/batch$")
_RESOLVE = re.compile(r"^/(datasets/|spaces/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the clients pool connections

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet: tests read the hub's own log
        pass

    @property
    def hub(self) -> LocalHub:
        return self.server.hub  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # -- plumbing --------------------------------------------------------------------------------------------
    def _handle(self, method: str) -> None:
        if self.hub.down:  # a connection kept alive across stop(): drop it like a dead server would
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        split = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        if auth := self.headers.get("Authorization"):
            self.hub.authorization.append(auth)
        body = self._read_body()
        status = self.hub.take_failure(split.path)
        try:
            if status is not None:
                raise HubError(status, "injected failure")
            status = self._route(method, split.path, body)
        except HubError as error:
            status = error.status
            self._send_json({"error": error.message, **error.extra}, status, code=error.code, message=error.message)
        self.hub.requests.append((method, split.path, status))

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes, headers: dict[str, str], *, with_body: bool = True) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def _send_json(self, payload, status: int = 200, *, code: str | None = None, message: str | None = None,
                   headers: dict[str, str] | None = None) -> int:
        extra = dict(headers or {})
        if code:
            extra["X-Error-Code"] = code
        if message and status >= 400:
            extra["X-Error-Message"] = message
        body = b"" if self.command == "HEAD" else json.dumps(payload).encode()
        self._send(status, body, {"Content-Type": "application/json", **extra})
        return status

    def _json_body(self, body: bytes) -> dict:
        try:
            return json.loads(body or b"{}")
        except json.JSONDecodeError as error:
            raise HubError(400, f"invalid JSON: {error}") from error

    def _require_token(self) -> None:
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            raise HubError(401, "Invalid credentials in Authorization header")

    def _repo(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.hub.store.get(repo_type, repo_id)
        if repo is None or (repo.private and "Authorization" not in self.headers):
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _commit(self, repo: Repo, revision: str) -> Commit:
        try:
            return repo.resolve(unquote(revision))
        except RevisionNotFound as error:
            raise HubError(404, f"Invalid rev id: {unquote(revision)}", "RevisionNotFound") from error

    def _base(self) -> str:
        return self.hub.url

    # -- routing ---------------------------------------------------------------------------------------------
    def _route(self, method: str, path: str, body: bytes) -> int:
        if path == "/api/whoami-v2" and method == "GET":
            return self._whoami()
        if path == "/api/repos/create" and method == "POST":
            return self._create_repo(self._json_body(body))
        if path == "/api/repos/delete" and method == "DELETE":
            return self._delete_repo(self._json_body(body))
        if path == "/api/validate-yaml" and method == "POST":  # the client checks a README's metadata first
            return self._send_json({"errors": [], "warnings": []})
        if match := _API_REPO.match(path):
            repo_type, repo_id, rest = _TYPES[match[1]], match[2], match[3] or ""
            return self._api(method, repo_type, repo_id, rest, body)
        if (match := _LFS_BATCH.match(path)) and method == "POST":
            return self._lfs_batch(_repo_type(match[1]), match[2], self._json_body(body))
        if (match := re.match(r"^/lfs-objects/([0-9a-f]{64})$", path)) and method == "PUT":
            return self._lfs_put(match[1], body)
        if path == "/lfs-verify" and method == "POST":
            return self._lfs_verify(self._json_body(body))
        if (match := _RESOLVE.match(path)) and method in ("GET", "HEAD"):
            return self._resolve(_repo_type(match[1]), match[2], match[3], unquote(match[4]))
        raise HubError(404, f"no route for {method} {path}")

    def _api(self, method: str, repo_type: str, repo_id: str, rest: str, body: bytes) -> int:
        head, _, tail = rest.partition("/")
        if method == "GET" and head == "":
            return self._info(repo_type, repo_id, "main")
        if method == "GET" and head == "revision":
            return self._info(repo_type, repo_id, tail)
        if method == "GET" and head == "tree":
            revision, _, folder = tail.partition("/")
            return self._tree(repo_type, repo_id, revision, unquote(folder))
        if method == "POST" and head == "paths-info":
            return self._paths_info(repo_type, repo_id, tail, body)
        if method == "GET" and head == "refs":
            return self._refs(repo_type, repo_id)
        if method == "GET" and head == "commits":
            return self._commits(repo_type, repo_id, tail)
        if method == "POST" and head == "preupload":
            return self._preupload(repo_type, repo_id, tail, self._json_body(body))
        if method == "POST" and head == "commit":
            return self._commit_ndjson(repo_type, repo_id, tail, body)
        if head == "branch" and method in ("POST", "DELETE"):
            return self._branch(method, repo_type, repo_id, unquote(tail), self._json_body(body))
        if method == "POST" and head == "tag":
            return self._tag(repo_type, repo_id, tail, self._json_body(body))
        raise HubError(404, f"no route for {method} /api/{repo_type}s/{repo_id}/{rest}")

    # -- account and repos -----------------------------------------------------------------------------------
    def _whoami(self) -> int:
        self._require_token()
        return self._send_json({"type": "user", "name": USER, "fullname": "Test User", "orgs": [],
                                "auth": {"type": "access_token",
                                         "accessToken": {"displayName": "test", "role": "write"}}})

    def _create_repo(self, payload: dict) -> int:
        self._require_token()
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or USER}/{payload['name']}"
        private = bool(payload.get("private")) or payload.get("visibility") == "private"
        url = f"{self._base()}/{_URL_PREFIX[repo_type]}{repo_id}"
        if self.hub.store.create_repo(repo_type, repo_id, private=private) is None:
            # The client reads `url` from the 409 answer when exist_ok=True.
            raise HubError(409, f"You already created this {repo_type} repo", extra={"url": url})
        return self._send_json({"url": url, "name": repo_id, "id": repo_id})

    def _delete_repo(self, payload: dict) -> int:
        self._require_token()
        repo_id = f"{payload.get('organization') or USER}/{payload['name']}"
        if not self.hub.store.delete_repo(payload.get("type") or "model", repo_id):
            raise HubError(404, "Repository not found", "RepoNotFound")
        return self._send_json({})

    def _info(self, repo_type: str, repo_id: str, revision: str) -> int:
        repo = self._repo(repo_type, repo_id)
        commit = self._commit(repo, revision)
        siblings = [{"rfilename": path, "size": blob.size, "blobId": blob.git_oid,
                     **({"lfs": {"sha256": blob.sha256, "size": blob.size, "pointerSize": blob.pointer_size}}
                        if blob.lfs else {})}
                    for path, blob in sorted(commit.files.items())]
        return self._send_json({
            "_id": repo_id, "id": repo_id, "author": repo_id.split("/")[0], "sha": commit.oid,
            "private": repo.private, "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [],
            "createdAt": repo.created_at, "lastModified": commit.date, "siblings": siblings,
            **({"modelId": repo_id} if repo_type == "model" else {}),
        })

    # -- listing ---------------------------------------------------------------------------------------------
    def _entries(self, commit: Commit, paths: Sequence[str] | None, folder: str, recursive: bool) -> list[dict]:
        """Tree entries under `folder` (or exactly `paths`), files and directories, as the Hub lists them."""
        files = commit.files
        directories = {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}
        prefix = folder.strip("/") + "/" if folder.strip("/") else ""
        if paths is not None:
            wanted = [p.strip("/") for p in paths]
        else:
            if prefix and prefix.rstrip("/") not in directories:
                raise HubError(404, f"{folder} does not exist", "EntryNotFound")
            wanted = sorted(p for p in set(files) | directories if p.startswith(prefix)
                            and (recursive or "/" not in p[len(prefix):]))
        entries = []
        for path in wanted:
            if path in files:
                blob = files[path]
                entries.append({"type": "file", "oid": blob.git_oid, "size": blob.size, "path": path,
                                **({"lfs": {"oid": blob.sha256, "size": blob.size,
                                            "pointerSize": blob.pointer_size}} if blob.lfs else {})})
            elif path in directories:
                entries.append({"type": "directory", "oid": _tree_oid(commit, path), "size": 0, "path": path})
        return entries

    def _tree(self, repo_type: str, repo_id: str, revision: str, folder: str) -> int:
        commit = self._commit(self._repo(repo_type, repo_id), revision)
        recursive = self.query.get("recursive", "false").lower() in ("true", "1")
        return self._send_json(self._entries(commit, None, folder, recursive))

    def _paths_info(self, repo_type: str, repo_id: str, revision: str, body: bytes) -> int:
        commit = self._commit(self._repo(repo_type, repo_id), revision)
        if self.headers.get("Content-Type", "").startswith("application/json"):
            paths = self._json_body(body).get("paths", [])
        else:  # the client posts a form: paths=a&paths=b
            paths = parse_qs(body.decode()).get("paths", [])
        return self._send_json(self._entries(commit, paths, "", False))

    def _refs(self, repo_type: str, repo_id: str) -> int:
        repo = self._repo(repo_type, repo_id)
        def refs_of(kind: str, table: dict[str, str]) -> list[dict]:
            return [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": c} for n, c in table.items()]

        refs = {"branches": refs_of("heads", repo.branches), "tags": refs_of("tags", repo.tags), "converts": []}
        return self._send_json(refs)

    def _commits(self, repo_type: str, repo_id: str, revision: str) -> int:
        repo = self._repo(repo_type, repo_id)
        commit: Commit | None = self._commit(repo, revision)
        history = []
        while commit is not None:
            history.append({"id": commit.oid, "title": commit.title, "message": commit.message,
                            "authors": [{"user": USER}], "date": commit.date})
            commit = repo.commits.get(commit.parent) if commit.parent else None
        return self._send_json(history)

    # -- uploads ---------------------------------------------------------------------------------------------
    def _preupload(self, repo_type: str, repo_id: str, revision: str, payload: dict) -> int:
        self._require_token()
        commit = self._commit(self._repo(repo_type, repo_id), revision)
        files = []
        for item in payload.get("files", []):
            sample = base64.b64decode(item.get("sample", ""))
            lfs = (item["path"].lower().endswith(LFS_SUFFIXES) or b"\0" in sample
                   or int(item.get("size", 0)) >= _LFS_MIN_SIZE)
            existing = commit.files.get(item["path"])
            files.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                          "oid": existing.git_oid if existing else None})
        return self._send_json({"files": files, "commitOid": commit.oid})

    def _lfs_batch(self, repo_type: str, repo_id: str, payload: dict) -> int:
        self._require_token()
        self._repo(repo_type, repo_id)
        objects = []
        for obj in payload.get("objects", []):
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if not self.hub.store.has_lfs_object(obj["oid"]):  # already stored: no actions, nothing to upload
                entry["actions"] = {
                    "upload": {"href": f"{self._base()}/lfs-objects/{obj['oid']}", "header": {}},
                    "verify": {"href": f"{self._base()}/lfs-verify", "header": {}},
                }
            objects.append(entry)
        return self._send_json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                               headers={"Content-Type": "application/vnd.git-lfs+json"})

    def _lfs_put(self, sha256: str, body: bytes) -> int:
        blob = self.hub.store.put_bytes(body, lfs=True)
        if blob.sha256 != sha256:
            raise HubError(400, f"content sha256 {blob.sha256} does not match {sha256}")
        return self._send_json({})

    def _lfs_verify(self, payload: dict) -> int:
        self._require_token()
        if not self.hub.store.has_lfs_object(payload.get("oid", "")):
            raise HubError(404, "LFS object not uploaded")
        return self._send_json({})

    def _commit_ndjson(self, repo_type: str, repo_id: str, revision: str, body: bytes) -> int:
        self._require_token()
        repo = self._repo(repo_type, repo_id)
        header, additions, deletions, folder_deletions = {}, {}, [], []
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file":
                content = base64.b64decode(value["content"]) if value.get("encoding") == "base64" else \
                    value["content"].encode()
                additions[value["path"]] = self.hub.store.put_bytes(content, lfs=False)
            elif key == "lfsFile":
                if not self.hub.store.has_lfs_object(value["oid"]):
                    raise HubError(422, f"LFS object {value['oid']} of {value['path']} was never uploaded")
                additions[value["path"]] = self.hub.store.lfs_blob(value["oid"])
            elif key == "deletedFile":
                deletions.append(value["path"])
            elif key == "deletedFolder":
                folder_deletions.append(value["path"])
            else:
                raise HubError(400, f"unknown commit operation {key!r}")
        branch = unquote(revision)
        try:
            commit = self.hub.store.commit(
                repo, branch, additions=additions, deletions=deletions, folder_deletions=folder_deletions,
                title=header.get("summary", ""), message=header.get("description", ""),
                parent_commit=header.get("parentCommit"))
        except RevisionNotFound as error:
            raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound") from error
        except CommitConflict as error:
            raise HubError(412, str(error)) from error
        url = f"{self._base()}/{_URL_PREFIX[repo_type]}{repo_id}/commit/{commit.oid}"
        return self._send_json({"success": True, "commitOid": commit.oid, "commitUrl": url, "hookOutput": "",
                                "pullRequestUrl": None})

    def _branch(self, method: str, repo_type: str, repo_id: str, branch: str, payload: dict) -> int:
        self._require_token()
        repo = self._repo(repo_type, repo_id)
        if method == "DELETE":
            if branch == "main" or repo.branches.pop(branch, None) is None:
                raise HubError(404 if branch != "main" else 403, f"cannot delete branch {branch}")
            return self._send_json({})
        start = payload.get("startingPoint")
        if start is not None:
            self._commit(repo, start)
        if not self.hub.store.create_branch(repo, branch, start):
            raise HubError(409, f"Reference already exists: refs/heads/{branch}")
        return self._send_json({})

    def _tag(self, repo_type: str, repo_id: str, revision: str, payload: dict) -> int:
        self._require_token()
        repo = self._repo(repo_type, repo_id)
        self._commit(repo, revision)
        if not self.hub.store.create_tag(repo, payload["tag"], unquote(revision)):
            raise HubError(409, f"Tag already exists: refs/tags/{payload['tag']}")
        return self._send_json({})

    # -- downloads -------------------------------------------------------------------------------------------
    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> int:
        repo = self._repo(repo_type, repo_id)
        commit = self._commit(repo, revision)
        blob = commit.files.get(path)
        if blob is None:
            raise HubError(404, f"{path} does not exist at {revision}", "EntryNotFound")
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{blob.git_oid}"', "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream"}
        if blob.lfs:
            headers.update({"X-Linked-Etag": f'"{blob.sha256}"', "X-Linked-Size": str(blob.size)})
        start, end, status = 0, blob.size, 200
        if (spec := self.headers.get("Range")) and self.command == "GET":
            start, end = _parse_range(spec, blob.size)
            if start >= blob.size or start >= end:
                self._send(416, b"", {**headers, "Content-Range": f"bytes */{blob.size}"})
                return 416
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{blob.size}"
        headers["Content-Length"] = str(end - start)
        body = self.hub.store.read(blob, start, end) if self.command == "GET" else b""
        self._send(status, body, headers, with_body=self.command == "GET")
        return status


def _repo_type(url_prefix: str | None) -> str:
    return {"datasets/": "dataset", "spaces/": "space"}.get(url_prefix or "", "model")


def _parse_range(spec: str, size: int) -> tuple[int, int]:
    """`bytes=a-b` (inclusive b), `bytes=a-` or `bytes=-n` (last n) -> half-open [start, end)."""
    first, _, last = spec.removeprefix("bytes=").split(",")[0].strip().partition("-")
    if first == "":
        return max(size - int(last), 0), size
    return int(first), min(int(last) + 1, size) if last else size


def _tree_oid(commit: Commit, folder: str) -> str:
    import hashlib

    listing = "".join(f"{p}:{b.sha256}\n" for p, b in sorted(commit.files.items()) if p.startswith(folder + "/"))
    return hashlib.sha1(listing.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# Clients in subprocesses, and the pytest fixture
# ---------------------------------------------------------------------------------------------------------------

def hub_client_env(endpoint: str, hf_home: Path, *, token: str | None = FAKE_TOKEN,
                   extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a client process talking to the local hub: online, no xet, a private HF_HOME."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "HUGGINGFACE_")) and k.lower() not in ("http_proxy", "https_proxy",
                                                                                "all_proxy")}
    env.update({"HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0",
                "TRANSFORMERS_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
                "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_IMPLICIT_TOKEN": "0",
                "HF_HOME": str(hf_home), "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
                "OMP_NUM_THREADS": "1"})
    if token is not None:
        env["HF_TOKEN"] = token
    env.update(extra or {})
    return env


def run_hub_client(argv: Sequence[str], *, endpoint: str, hf_home: Path, token: str | None = FAKE_TOKEN,
                   cwd: Path | None = None, extra_env: dict[str, str] | None = None,
                   timeout: float = 240) -> subprocess.CompletedProcess:
    """Run `argv` (e.g. `[sys.executable, "-c", code, ...]` or `["sclseg", "push", ...]`) against the hub."""
    return subprocess.run(list(argv), capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout,
                          env=hub_client_env(endpoint, hf_home, token=token, extra=extra_env), cwd=cwd)


def python_client(code: str, *args: str) -> list[str]:
    """argv running `code` in a fresh interpreter (use with `run_hub_client`)."""
    return [sys.executable, "-c", code, *map(str, args)]


@pytest.fixture
def local_hub() -> Iterator[LocalHub]:
    """A fresh local Hub on a free port; repos live in a temporary folder removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="local-hub-") as root:
        hub = LocalHub(Path(root)).start()
        try:
            yield hub
        finally:
            hub.stop()


@pytest.fixture
def hub_url(local_hub: LocalHub) -> str:
    return local_hub.url
