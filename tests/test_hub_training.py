"""SCLTrainer against the local Hub (tests/hub_server.py): pushes during training expose the teacher, failed
pushes only warn and the next save pushes again, a fresh output dir resumes from the repo id exactly, the recipe
pushes the card with the final teacher, tokens never reach a file or a log, and checkpoint state loads without
unpickling code. Training runs in subprocesses (tests/hub_train_worker.py) with the real huggingface_hub /
transformers clients; the tests read what the server stored."""

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load, load_file
from transformers.trainer_pt_utils import safe_globals

from hub_server import FAKE_TOKEN, run_hub_client
from sclseg import DeepLabV3PlusForSemanticSegmentation
from sclseg.hub import HubCheckpoint, parse_hub_checkpoint
from sclseg.trainer import COMPLETE_MARKER
from tests.test_trainer import _run

WORKER = Path(__file__).with_name("hub_train_worker.py")
REPO_ID = "test-user/scl-run"
PUSH = {"push_to_hub": True, "hub_model_id": REPO_ID, "hub_strategy": "checkpoint", "hub_token": FAKE_TOKEN}
RESUME_FILES = {"model.safetensors", "config.json", "optimizer.pt", "scheduler.pt", "rng_state.pth",
                "trainer_state.json", "training_args.bin", "ema_teacher.safetensors", "ema_teacher.json",
                "scl_state_rank0.pt", COMPLETE_MARKER}


def train(hub, *runs: dict):
    """Run the worker once for `runs` (each a spec with its own "tmp" folder), in one client process."""
    for run in runs:
        Path(run["tmp"]).mkdir(parents=True, exist_ok=True)
    specs = [{**run, "tmp": str(run["tmp"])} for run in runs]
    return run_hub_client([sys.executable, str(WORKER), json.dumps(specs)], endpoint=hub.url,
                          hf_home=Path(runs[0]["tmp"]) / "hf_home", timeout=240)


def pushed(hub, repo_id: str = REPO_ID) -> dict[str, bytes]:
    """path → content of every file at the head of main."""
    files = hub.repo(repo_id).head("main").files
    return {path: hub.store.read(blob) for path, blob in files.items()}


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], **tolerance) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k, **tolerance)


def part(result: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k.removeprefix(prefix): v for k, v in result.items() if k.startswith(prefix)}


def assert_no_token(folder: Path, files: dict[str, bytes], *outputs: str) -> None:
    token = FAKE_TOKEN.encode()
    leaks = [str(p) for p in folder.rglob("*") if p.is_file() and "hf_home" not in p.parts and token in p.read_bytes()]
    leaks += [path for path, data in files.items() if token in data]
    leaks += [f"output {i}" for i, text in enumerate(outputs) if FAKE_TOKEN in text]
    assert not leaks


def test_parse_hub_checkpoint(tmp_path):
    assert parse_hub_checkpoint("user/run") == HubCheckpoint("user/run", None)
    assert parse_hub_checkpoint("user/run@v1.0") == HubCheckpoint("user/run", "v1.0")
    assert parse_hub_checkpoint("user/run@refs/pr/1") == HubCheckpoint("user/run", "refs/pr/1")
    (tmp_path / "out" / "checkpoint-2").mkdir(parents=True)
    assert parse_hub_checkpoint(str(tmp_path / "out" / "checkpoint-2")) is None  # an existing path stays local
    assert parse_hub_checkpoint("run") is None and parse_hub_checkpoint("user/run@") is None


def test_push_during_training_then_resume_from_the_repo_elsewhere(local_hub, tmp_path):
    # Both commits of the first save fail (403: huggingface_hub retries 5xx with back-off for seconds); the
    # save at step 2 pushes again, then the run stops ("a crash"). The second run resumes from the repo id in a
    # fresh output dir (another "machine") and does not push, so the repo stays as the first run left it.
    local_hub.fail_next(2, status=403, match="/commit/")
    first, second = tmp_path / "first", tmp_path / "second"
    both = train(local_hub, {"tmp": first, "stop_at": 2, "save_steps": 1, "args": PUSH},
                 {"tmp": second, "resume": REPO_ID})
    assert both.returncode == 0, both.stderr[-4000:]
    warnings = [line for line in both.stderr.splitlines() if "push to the Hub repo" in line]
    assert len(warnings) == 2 and all(REPO_ID in line and "403" in line for line in warnings), both.stderr[-4000:]
    assert all((first / "out" / f"checkpoint-{s}" / COMPLETE_MARKER).is_file() for s in (1, 2))  # kept locally

    files = pushed(local_hub)
    stopped = load_file(first / "result.safetensors")
    # The repo's model is the teacher; last-checkpoint/ holds the student and everything resume needs.
    assert_same(load(files["model.safetensors"]), part(stopped, "teacher."), rtol=0, atol=0)
    assert_same(load(files["last-checkpoint/model.safetensors"]), part(stopped, "student."), rtol=0, atol=0)
    assert RESUME_FILES <= {p.removeprefix("last-checkpoint/") for p in files if p.startswith("last-checkpoint/")}
    assert json.loads(files[f"last-checkpoint/{COMPLETE_MARKER}"])["step"] == 2
    assert json.loads(files["config.json"])["id2label"]["0"] and "preprocessor_config.json" in files
    root = tmp_path / "root"
    root.mkdir()
    for name in ("model.safetensors", "config.json"):
        (root / name).write_bytes(files[name])
    loaded = DeepLabV3PlusForSemanticSegmentation.from_pretrained(root)  # loads as the model, teacher weights
    assert_same(loaded.state_dict(), part(stopped, "teacher."), rtol=0, atol=0)

    assert [json.loads(line) for line in both.stdout.strip().splitlines() if line.startswith('{"step"')] == [
        {"step": 2, "teacher_step": 2}, {"step": 4, "teacher_step": 4}]
    assert (second / "out" / "_hub_resume" / "last-checkpoint" / COMPLETE_MARKER).is_file()
    full = _run(tmp_path, "full", 4)  # uninterrupted, in this process, no Hub
    resumed = load_file(second / "result.safetensors")
    assert_same(part(resumed, "student."), full.model.state_dict(), rtol=1e-5, atol=1e-6)
    assert_same(part(resumed, "teacher."), full.teacher.model.state_dict(), rtol=1e-5, atol=1e-6)
    assert_no_token(tmp_path, files, both.stdout, both.stderr)
    assert f"Bearer {FAKE_TOKEN}" in local_hub.authorization  # it was used, just never written


def test_server_down_at_start_fails_fast_with_one_clear_line(local_hub, tmp_path):
    local_hub.stop()
    run = train(local_hub, {"tmp": tmp_path / "run", "args": PUSH})
    assert run.returncode != 0
    assert f"could not create or reach the Hub repo {REPO_ID}" in run.stderr, run.stderr[-4000:]
    assert FAKE_TOKEN not in run.stderr + run.stdout
    assert not (tmp_path / "run" / "out" / "checkpoint-2").exists()


def test_checkpoint_state_loads_without_unpickling(tmp_path):
    _run(tmp_path, "run", 2)
    folder = tmp_path / "run" / "out" / "checkpoint-2"
    for name in ("scl_state_rank0.pt", "optimizer.pt", "scheduler.pt"):
        torch.load(folder / name, weights_only=True)
    with safe_globals():  # as Trainer loads it: weights_only, plus numpy's array reconstruction allow-listed
        torch.load(folder / "rng_state.pth", weights_only=True)
    with pytest.raises(Exception):  # the pickled arguments: Trainer writes them but never loads them
        torch.load(folder / "training_args.bin", weights_only=True)


def test_recipe_pushes_the_teacher_and_its_card(local_hub, tmp_path):
    from huggingface_hub import ModelCard

    from sclseg.data import make_synthetic_cityscapes
    from tests.test_recipe import RECIPE, REPO, TINY

    root = make_synthetic_cityscapes(tmp_path / "cityscapes", seed=0, size=(64, 128), train=4, val=2, extra=2,
                                     num_workers=1, preview=False)
    out = tmp_path / "out"
    argv = [sys.executable, str(RECIPE), str(REPO / "recipes/configs/embedded.yaml"), "--data_root", str(root),
            "--output_dir", str(out), "--max_steps", "2", *TINY, "--save_strategy", "steps", "--save_steps", "2",
            "--max_eval_samples", "1", "--num_prediction_images", "1", "--labeled_fraction", "1/2",  # 2 images
            "--push_to_hub", "true", "--hub_model_id", "test-user/recipe", "--hub_strategy", "checkpoint"]
    run = run_hub_client(argv, endpoint=local_hub.url, hf_home=tmp_path / "hf_home", cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    files = pushed(local_hub, "test-user/recipe")
    card = ModelCard(files["README.md"].decode())
    assert card.data.eval_results[0].metric_type == "mean_iou"
    assert_same(load(files["model.safetensors"]), load_file(out / "model.safetensors"), rtol=0, atol=0)  # teacher
    assert json.loads(files[f"last-checkpoint/{COMPLETE_MARKER}"])["step"] == 2
    assert not [path for path in files if path.startswith(("predictions/", "_", "checkpoint-"))]
    assert_no_token(tmp_path, files, run.stdout, run.stderr)
