"""Same seed, same model, through `recipes/train_scl.py` as a user runs it: two runs of one command give the
same weights, and a run resumed from a checkpoint (in the middle of an epoch, from a folder or from the Hub, with
one or two processes) ends where the uninterrupted run ends — student, EMA teacher and optimizer state.

Each run is a fresh interpreter, as on a user's machine. The labeled set is 8 images in batches of 2, so an epoch
is 4 steps and the checkpoint at step 5 lies inside epoch 1 (where the resumed run must replay that epoch's order
and crops); the unlabeled terms are on from step 1.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hub_server import local_hub, python_client, run_hub_client  # noqa: F401 - fixture
from sclseg.data import make_synthetic_cityscapes
from tests.test_recipe import RECIPE, REPO, TINY

pytestmark = pytest.mark.slow  # 16 recipe runs in fresh interpreters: ~3 min on 2 cores

STEPS, SAVE = 10, 5
RUN = [*TINY, "--labeled_fraction", "1", "--max_steps", str(STEPS), "--save_strategy", "steps", "--save_steps",
       str(SAVE), "--eval_strategy", "no", "--seed", "0", "--num_prediction_images", "0", "--max_eval_samples", "1"]


@pytest.fixture(scope="module")
def cityscapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("repro") / "cityscapes"
    return make_synthetic_cityscapes(root, seed=0, size=(64, 128), train=8, val=2, extra=6, num_workers=1,
                                     preview=False)


def recipe(cityscapes: Path, out: Path, *flags: str, processes: int = 1) -> list[str]:
    """argv of one recipe run (under `accelerate launch` with the 2-CPU config when `processes` is 2)."""
    launch = [sys.executable, str(RECIPE)]
    if processes == 2:
        launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                  str(REPO / "recipes/accelerate/2cpu.yaml"), "--main_process_port", "0", str(RECIPE)]
    return [*launch, "--data_root", str(cityscapes), "--output_dir", str(out), *RUN, *flags]


def train(argv: list[str], timeout: float = 300) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-4000:]


def state(checkpoint: Path) -> dict[str, torch.Tensor]:
    """Student, teacher and optimizer tensors of a checkpoint, by name."""
    tensors = {f"student.{k}": v for k, v in load_file(checkpoint / "model.safetensors").items()}
    tensors.update({f"teacher.{k}": v for k, v in load_file(checkpoint / "ema_teacher.safetensors").items()})
    optimizer = torch.load(checkpoint / "optimizer.pt", weights_only=True)
    for index, slots in optimizer["state"].items():
        tensors.update({f"optimizer.{index}.{k}": v for k, v in slots.items() if isinstance(v, torch.Tensor)})
    return tensors


def assert_same_state(a: Path, b: Path) -> None:
    first, second = state(a), state(b)
    assert first.keys() == second.keys() and any(k.startswith("optimizer.") for k in first)
    worst = max((first[k].double() - second[k].double()).abs().max().item() for k in first)
    assert worst <= 1e-6, f"{a} vs {b}: largest difference {worst:.3g}"


def resume_from_step(run: Path, out: Path) -> Path:
    """A fresh output dir holding only `run`'s checkpoint at step SAVE ("a crash after it"); its path."""
    out.mkdir(parents=True)
    checkpoint = out / f"checkpoint-{SAVE}"
    subprocess.run(["cp", "-r", str(run / f"checkpoint-{SAVE}"), str(checkpoint)], check=True)
    return checkpoint


@pytest.mark.parametrize("workers,prefetch", [(0, 0), (1, 0), (0, 2), (1, 2)])
def test_same_command_twice_and_resumed_give_the_same_weights(cityscapes, tmp_path, workers, prefetch):
    loading = ["--dataloader_num_workers", str(workers), "--unlabeled_prefetch", str(prefetch)]
    for name in ("a", "c"):
        train(recipe(cityscapes, tmp_path / name, *loading))
    assert_same_state(tmp_path / "a" / f"checkpoint-{STEPS}", tmp_path / "c" / f"checkpoint-{STEPS}")
    checkpoint = resume_from_step(tmp_path / "a", tmp_path / "b")
    train(recipe(cityscapes, tmp_path / "b", *loading, "--resume_from_checkpoint", str(checkpoint)))
    assert_same_state(tmp_path / "a" / f"checkpoint-{STEPS}", tmp_path / "b" / f"checkpoint-{STEPS}")
    # The run did train something: the resumed state is not the checkpoint's.
    before, after = state(checkpoint), state(tmp_path / "b" / f"checkpoint-{STEPS}")
    assert max((before[k] - after[k]).abs().max().item() for k in before if k.startswith("student.")) > 1e-3


def test_two_cpu_processes_repeat_and_resume_exactly(cityscapes, tmp_path):
    for name in ("a", "c"):
        train(recipe(cityscapes, tmp_path / name, processes=2))
    assert_same_state(tmp_path / "a" / f"checkpoint-{STEPS}", tmp_path / "c" / f"checkpoint-{STEPS}")
    # Two processes: 2 steps per epoch, so step 5 lies inside epoch 2.
    checkpoint = resume_from_step(tmp_path / "a", tmp_path / "b")
    assert {p.name for p in checkpoint.glob("scl_state_rank*.pt")} == {"scl_state_rank0.pt", "scl_state_rank1.pt"}
    train(recipe(cityscapes, tmp_path / "b", "--resume_from_checkpoint", str(checkpoint), processes=2))
    assert_same_state(tmp_path / "a" / f"checkpoint-{STEPS}", tmp_path / "b" / f"checkpoint-{STEPS}")


UPLOAD = """
import sys
from huggingface_hub import HfApi
api = HfApi()
api.create_repo(sys.argv[1], exist_ok=True)
api.upload_folder(repo_id=sys.argv[1], folder_path=sys.argv[2], path_in_repo="last-checkpoint")
"""


def test_resume_from_the_hub_equals_uninterrupted(cityscapes, local_hub, tmp_path):  # noqa: F811 - fixture
    train(recipe(cityscapes, tmp_path / "a"))
    # The repo holds a's step-5 checkpoint as its last-checkpoint/, as `--hub_strategy checkpoint` pushes it.
    pushed = run_hub_client(python_client(UPLOAD, "test-user/repro", tmp_path / "a" / f"checkpoint-{SAVE}"),
                            endpoint=local_hub.url, hf_home=tmp_path / "hf_home")
    assert pushed.returncode == 0, pushed.stderr[-4000:]
    run = run_hub_client(recipe(cityscapes, tmp_path / "b", "--resume_from_checkpoint", "test-user/repro"),
                         endpoint=local_hub.url, hf_home=tmp_path / "hf_home", timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    downloaded = tmp_path / "b" / "_hub_resume" / "last-checkpoint"
    assert json.loads((downloaded / "checkpoint_complete.json").read_text())["step"] == SAVE
    assert_same_state(tmp_path / "a" / f"checkpoint-{STEPS}", tmp_path / "b" / f"checkpoint-{STEPS}")
