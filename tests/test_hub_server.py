"""The local Hub server itself: the real huggingface_hub client uploads, branches, tags and downloads through it."""

import json

from hub_server import FAKE_TOKEN, python_client, run_hub_client

_CLIENT = """
import json, sys
from huggingface_hub import HfApi, hf_hub_download
api = HfApi()
api.create_repo("user/files", exist_ok=True)
api.create_repo("user/files", exist_ok=True)  # 409 handled by the client
api.upload_folder(repo_id="user/files", folder_path=sys.argv[1], commit_message="first")
api.create_tag("user/files", tag="v1")
api.create_branch("user/files", branch="dev")
api.upload_file(path_or_fileobj=b"second", path_in_repo="notes.txt", repo_id="user/files", revision="dev")
first = open(hf_hub_download("user/files", "notes.txt", revision="v1")).read()
second = open(hf_hub_download("user/files", "notes.txt", revision="dev")).read()
weights = open(hf_hub_download("user/files", "sub/weights.bin", revision="main"), "rb").read()
tree = sorted(f.path for f in api.list_repo_tree("user/files", recursive=True))
info = {i.path: type(i).__name__
        for i in api.get_paths_info("user/files", ["notes.txt", "sub", "nope"], revision="v1")}
from huggingface_hub import HfFileSystem
fs = HfFileSystem()
with fs.open("user/files/sub/weights.bin", "rb", block_size=1000) as handle:
    handle.seek(5000)
    middle = list(handle.read(3))
listed = sorted(fs.ls("user/files/sub", detail=False))
refs = api.list_repo_refs("user/files")
print(json.dumps({"first": first, "second": second, "weights": len(weights), "tree": tree, "info": info,
                  "middle": middle, "listed": listed,
                  "tags": [t.name for t in refs.tags], "branches": sorted(b.name for b in refs.branches)}))
"""


def test_upload_branch_tag_download(local_hub, tmp_path):
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("first")
    (folder / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 40)  # binary -> LFS
    result = run_hub_client(python_client(_CLIENT, str(folder)), endpoint=local_hub.url, hf_home=tmp_path / "home")
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out == {"first": "first", "second": "second", "weights": 10240,
                   "tree": [".gitattributes", "notes.txt", "sub", "sub/weights.bin"], "tags": ["v1"],
                   "branches": ["dev", "main"], "info": {"notes.txt": "RepoFile", "sub": "RepoFolder"},
                   "middle": [5000 % 256, 5001 % 256, 5002 % 256], "listed": ["user/files/sub/weights.bin"]}
    assert any(status == 206 for _, path, status in local_hub.requests if path.endswith("sub/weights.bin"))
    assert any(path.endswith("/lfs/objects/batch") for _, path, _ in local_hub.requests)
    assert set(local_hub.authorization) == {f"Bearer {FAKE_TOKEN}"}


def test_injected_failures_and_server_down(local_hub, tmp_path):
    code = """
import sys
from huggingface_hub import HfApi
try:
    HfApi().create_repo("user/x")
except Exception as error:
    print(type(error).__name__)
"""
    local_hub.fail_next(1, status=403, match="/api/repos/create")
    first = run_hub_client(python_client(code), endpoint=local_hub.url, hf_home=tmp_path / "home")
    assert "HfHubHTTPError" in first.stdout, first.stderr[-2000:]
    local_hub.stop()
    down = run_hub_client(python_client(code), endpoint=local_hub.url, hf_home=tmp_path / "home")
    assert down.stdout.strip() and "Error" in down.stdout, down.stderr[-2000:]
    local_hub.start()
    up = run_hub_client(python_client(code), endpoint=local_hub.url, hf_home=tmp_path / "home")
    assert up.stdout.strip() == "" and up.returncode == 0, up.stderr[-2000:]
    assert local_hub.repo("user/x") is not None
