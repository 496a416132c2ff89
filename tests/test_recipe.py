"""The recipe end to end on a tiny synthetic Cityscapes: one process in-process, two CPU processes under
`accelerate launch` (the CI stand-in for multi-GPU), and every shipped config parses."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from sclseg.data import make_synthetic_cityscapes
from sclseg.recipe import parse_arguments, run, yaml_to_flags

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "train_scl.py"
TINY = ["--synthetic", "false", "--model_preset", "wrn-small", "--crop_size", "64", "--class_uniform_tile", "64",
        "--per_device_train_batch_size", "2", "--max_pairs", "256", "--report_to", "none", "--save_strategy", "no",
        "--logging_steps", "1", "--num_prediction_images", "2", "--dataloader_num_workers", "0",
        "--unlabeled_prefetch", "0", "--disable_tqdm", "true", "--supervised_warmup_steps", "1",
        "--labeled_fraction", "1/4"]  # 2 of the 8 train images: BatchNorm needs a batch of 2 (1/16 would give 1)


@pytest.fixture(scope="module")
def tiny_cityscapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic") / "cityscapes"
    return make_synthetic_cityscapes(root, seed=0, size=(64, 128), train=8, val=2, extra=6, num_workers=1,
                                     preview=False)


def test_recipe_trains_evaluates_and_exports(tiny_cityscapes, tmp_path):
    out = tmp_path / "out"
    argv = [str(REPO / "recipes/configs/embedded.yaml"), "--data_root", str(tiny_cityscapes), "--output_dir", str(out),
            "--max_steps", "2", "--dataset_name", "tiny street scenes", *TINY]
    metrics = run(*parse_arguments(argv))
    assert 0.0 <= metrics["eval_mean_iou"] <= 1.0
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "README.md"):
        assert (out / name).is_file(), name
    card = ModelCard.load(out / "README.md")
    result = card.data.eval_results[0]
    assert (result.metric_type == "mean_iou"
            and result.metric_value == pytest.approx(metrics["eval_mean_iou"], abs=1e-4))
    assert result.dataset_name == "tiny street scenes"  # --dataset_name reaches the card
    assert len(list((out / "predictions").glob("*.png"))) == 2
    assert len(json.loads((out / "train_image_ids_rank0.json").read_text())) == 4  # 2 steps × 2 images


def test_one_labeled_image_trains(tiny_cityscapes, tmp_path):
    # 1/8 of the 8 train images is one image: each batch of 2 must still hold 2 crops (BatchNorm's image pooling
    # fails on a batch of one), which the epoch rounded up to whole batches gives.
    argv = ["--data_root", str(tiny_cityscapes), "--output_dir", str(tmp_path / "one"), "--max_steps", "2", *TINY,
            "--labeled_fraction", "1/8", "--supervised_warmup_steps", "2", "--max_eval_samples", "1"]
    run(*parse_arguments(argv))
    assert len(json.loads((tmp_path / "one" / "train_image_ids_rank0.json").read_text())) == 4


@pytest.mark.parametrize("preset,parameters", [("wrn-small", 500_544), ("wrn-medium", 1_123_632)])
def test_small_presets_have_their_parameter_count(preset, parameters):
    from sclseg.recipe import ModelArguments, build_model

    model = build_model(ModelArguments(model_preset=preset))
    assert sum(p.numel() for p in model.parameters()) == parameters


def test_wrn_medium_is_wrn_small_at_one_and_a_half_times_the_width():
    from sclseg.recipe import ModelArguments, build_model

    # Same depth, same strides and dilations; every stage 1.5x as wide.
    small, medium = (build_model(ModelArguments(model_preset=name)).config for name in ("wrn-small", "wrn-medium"))
    assert [[3 * c // 2 for c in stage] for stage in small.backbone_config.stage_channels] == \
        medium.backbone_config.stage_channels
    assert small.backbone_config.depths == medium.backbone_config.depths
    with pytest.raises(ValueError, match="wrn-large"):
        build_model(ModelArguments(model_preset="wrn-large"))


def test_flags_override_the_config(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("max_steps: 7\nstrict_classes: [5, 6]\nsynthetic: true\nlr_scheduler_kwargs: {power: 1.0}\n")
    assert yaml_to_flags(config) == ["--max_steps", "7", "--strict_classes", "5", "6", "--synthetic", "true",
                                     "--lr_scheduler_kwargs", '{"power": 1.0}']
    _, data, args = parse_arguments([str(config), "--max_steps", "3", "--output_dir", str(tmp_path / "o")])
    assert args.max_steps == 3 and args.strict_classes == [5, 6] and data.synthetic is True


@pytest.mark.parametrize("config", sorted((REPO / "recipes" / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_parses(config, tmp_path):
    # bf16 is for the GPU configs; this machine has none.
    model, data, args = parse_arguments([str(config), "--output_dir", str(tmp_path), "--bf16", "false"])
    if config.name.startswith("cityscapes"):
        assert model.model_preset == "wrn38" and data.crop_size == 896 and args.learning_rate == 0.002
        assert args.num_train_epochs == 175 and args.ema_decay == 0.999
        expected = {"supervised": (0, 0), "consistency": (20, 0)}.get(config.stem.split("_")[-1], (20, 3))
        assert (args.consistency_weight, args.structured_consistency_weight) == expected


def test_two_cpu_processes_under_accelerate_launch(tiny_cityscapes, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(REPO / "recipes/accelerate/2cpu.yaml"), "--main_process_port", "0", str(RECIPE),
               "--data_root", str(tiny_cityscapes), "--output_dir", str(out), "--max_steps", "2", *TINY,
               "--class_uniform_pct", "0", "--labeled_fraction", "1", "--max_eval_samples", "2"]  # last wins
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-4000:]
    ids = [set(json.loads((out / f"train_image_ids_rank{r}.json").read_text())) for r in (0, 1)]
    # class_uniform_pct 0: index i is image i; the distributed sampler gives the ranks disjoint indices.
    assert len(ids[0]) == len(ids[1]) == 4 and not ids[0] & ids[1]
    assert (out / "model.safetensors").is_file() and len(list(out.glob("*.safetensors"))) == 1
    assert "validation mIoU" in result.stderr
