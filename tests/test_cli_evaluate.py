"""`sclseg evaluate`: the numbers equal a confusion matrix computed directly, --json, pictures, a folder without a
processor, a Hub id with --update-card, and 2 processes under `accelerate launch` equal 1 process."""

import json
import logging
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hub_server import python_client, run_hub_client
from PIL import Image
from tiny_cityscapes import save_tiny_model, write_tiny_cityscapes

from sclseg import DeepLabV3PlusForSemanticSegmentation
from sclseg.cli import main
from sclseg.data import CLASS_NAMES, list_split, read_image, read_label
from sclseg.data.transforms import normalize
from sclseg.evaluation import ConfusionMatrix, predict_probabilities

COUNT, SIZE = 5, (24, 40)
SLIDING = ["--mode", "sliding", "--tile", "16", "--flip", "--scales", "0.5,1"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from conftest import tiny_wide_resnet_kwargs
    from sclseg import DeepLabV3PlusConfig, WideResNetConfig

    base = tmp_path_factory.mktemp("evaluate")
    config = DeepLabV3PlusConfig(backbone_config=WideResNetConfig(**tiny_wide_resnet_kwargs()), aspp_channels=8,
                                 aspp_rates=[1, 2, 3], low_level_channels=4, decoder_channels=8)
    return write_tiny_cityscapes(base / "cs", count=COUNT, size=SIZE), save_tiny_model(base / "model", config)


def direct_scores(model_dir, root, **inference):
    """The reference: read, normalise, predict_probabilities, argmax, one ConfusionMatrix."""
    model = DeepLabV3PlusForSemanticSegmentation.from_pretrained(model_dir)
    matrix = ConfusionMatrix(19)
    for item in list_split(root, "val"):
        pixels = normalize(torch.from_numpy(read_image(item.image_path)).permute(2, 0, 1).float() / 255)
        probs = predict_probabilities(model, pixels[None], **inference)
        matrix.update(probs.argmax(1)[0], torch.from_numpy(read_label(item.label_path)).long())
    return matrix.compute()


def test_miou_equals_a_direct_confusion_matrix_and_json(setup, tmp_path, capsys):
    root, model_dir = setup
    out = tmp_path / "r.json"
    assert main(["evaluate", str(model_dir), "--data-root", str(root), "--split", "val", "--json", str(out),
                 *SLIDING]) == 0
    record = json.loads(out.read_text())
    expected = direct_scores(model_dir, root, mode="sliding", tile=16, flip=True, scales=(0.5, 1.0))
    assert record["mean_iou"] == pytest.approx(expected["mean_iou"], abs=1e-12)
    assert record["pixel_accuracy"] == pytest.approx(expected["pixel_accuracy"], abs=1e-12)
    assert list(record["per_class_iou"]) == list(CLASS_NAMES)
    for value, reference in zip(record["per_class_iou"].values(), expected["per_class_iou"]):
        assert (value is None) if math.isnan(reference) else value == pytest.approx(reference, abs=1e-12)
    assert None in record["per_class_iou"].values()  # 7 classes are absent from the GT; some from the predictions too
    assert 0 < record["mean_iou"] < 1
    assert {k: record[k] for k in ("model", "split", "num_images", "mode", "tile", "flip", "scales")} == {
        "model": str(model_dir), "split": "val", "num_images": COUNT, "mode": "sliding", "tile": 16, "flip": True,
        "scales": [0.5, 1.0]}
    printed = capsys.readouterr().out
    assert "traffic light" in printed and f"{100 * expected['mean_iou']:6.2f}" in printed


def test_limit_and_pictures(setup, tmp_path):
    root, model_dir = setup
    out, pictures = tmp_path / "r.json", tmp_path / "pictures"
    assert main(["evaluate", str(model_dir), "--data-root", str(root), "--limit", "2", "--json", str(out),
                 "--save-examples", "2", "--examples-dir", str(pictures)]) == 0
    assert json.loads(out.read_text())["num_images"] == 2
    grid = Image.open(pictures / "examples.png")
    # 2 rows of 4 panels of 40x24 with 4-pixel gaps
    assert grid.size == (4 * SIZE[1] + 3 * 4, 2 * SIZE[0] + 4)
    # panel 2 of row 1 is the ground truth in the official palette: black where ignored (255)
    label = read_label(list_split(root, "val")[0].label_path)
    panel = np.asarray(grid)[: SIZE[0], SIZE[1] + 4: 2 * SIZE[1] + 4]
    assert (panel[label == 255] == 0).all() and (panel[label == 0] == (128, 64, 128)).all()
    assert Image.open(pictures / "iou_per_class.png").size[0] > 100


def test_folder_without_processor_uses_defaults_and_warns(setup, tmp_path, caplog):
    root, model_dir = setup
    bare = tmp_path / "bare"
    DeepLabV3PlusForSemanticSegmentation.from_pretrained(model_dir).save_pretrained(bare)
    assert not (bare / "preprocessor_config.json").exists()
    out_bare, out_full = tmp_path / "bare.json", tmp_path / "full.json"
    with caplog.at_level(logging.WARNING):
        assert main(["evaluate", str(bare), "--data-root", str(root), "--json", str(out_bare)]) == 0
    assert "has no image processor" in caplog.text and "SCLImageProcessor() defaults" in caplog.text
    assert main(["evaluate", str(model_dir), "--data-root", str(root), "--json", str(out_full)]) == 0
    assert json.loads(out_bare.read_text())["mean_iou"] == json.loads(out_full.read_text())["mean_iou"]


def test_update_card_refuses_a_hub_id(setup):
    root, _ = setup
    with pytest.raises(SystemExit, match="updates the card of a local folder.*sclseg push"):
        main(["evaluate", "someone/scl-model", "--data-root", str(root), "--update-card"])


def test_missing_split_is_a_clear_error(setup):
    root, model_dir = setup
    with pytest.raises(SystemExit, match="split 'train' has no leftImg8bit/train folder"):
        main(["evaluate", str(model_dir), "--data-root", str(root), "--split", "train"])


def test_two_processes_equal_one(setup, tmp_path):
    root, model_dir = setup
    outs = {n: tmp_path / f"r{n}.json" for n in (1, 2)}
    assert main(["evaluate", str(model_dir), "--data-root", str(root), "--json", str(outs[1]), *SLIDING]) == 0
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--main_process_port", "0", "-m", "sclseg.cli", "evaluate", str(model_dir), "--data-root", str(root),
               "--json", str(outs[2]), *SLIDING]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-4000:]
    one, two = (json.loads(outs[n].read_text()) for n in (1, 2))
    assert one == {**two, "model": one["model"]} and two["num_images"] == COUNT  # 3 + 2 images, summed
    assert result.stdout.count("mIoU") == 1  # only the main process prints


def test_update_card_writes_the_results_into_the_folder_card(setup, tmp_path):
    from huggingface_hub import ModelCard

    root, model_dir = setup
    folder = tmp_path / "model"
    DeepLabV3PlusForSemanticSegmentation.from_pretrained(model_dir).save_pretrained(folder)
    out = tmp_path / "r.json"
    assert main(["evaluate", str(folder), "--data-root", str(root), "--json", str(out), "--update-card",
                 *SLIDING]) == 0
    mean_iou = json.loads(out.read_text())["mean_iou"]
    result = ModelCard.load(folder / "README.md").data.eval_results[0]
    assert result.metric_type == "mean_iou" and result.metric_value == pytest.approx(mean_iou, abs=1e-4)
    assert result.dataset_name == "Cityscapes" and result.dataset_split == "val"
    assert result.metric_args["inference_mode"] == "sliding 16 + flip, scales 0.5/1"


def test_bar_chart_falls_back_to_pil_without_matplotlib(tmp_path, monkeypatch):
    from sclseg.evaluation import visualize

    def no_matplotlib(*args):
        raise ImportError("No module named 'matplotlib'")

    monkeypatch.setattr(visualize, "_bar_chart_matplotlib", no_matplotlib)
    ious = {"road": 0.5, "wall": float("nan"), "car": 1.0}
    assert visualize.iou_bar_chart(ious, tmp_path / "c.png") == "pil"
    chart = np.asarray(Image.open(tmp_path / "c.png"))
    bar_rows = (chart == (76, 114, 176)).all(axis=2).sum(axis=1)
    # road half, car full length of the 400-pixel axis (PIL rectangles include both ends); wall has no bar
    assert sorted(set(bar_rows[bar_rows > 0])) == [201, 401]


_PUSH_AND_EVALUATE = """
import sys
from sclseg.cli import main
main(["push", sys.argv[1], "test-user/tiny-eval"])
sys.exit(main(["evaluate", "test-user/tiny-eval", "--data-root", sys.argv[2], "--json", sys.argv[3]]))
"""


def test_hub_id_evaluates_like_the_local_folder(setup, tmp_path, local_hub):
    root, model_dir = setup
    local, hub = tmp_path / "local.json", tmp_path / "hub.json"
    assert main(["evaluate", str(model_dir), "--data-root", str(root), "--json", str(local)]) == 0
    result = run_hub_client(python_client(_PUSH_AND_EVALUATE, model_dir, root, hub), endpoint=local_hub.url,
                            hf_home=tmp_path / "home")
    assert result.returncode == 0, result.stderr[-3000:]
    a, b = json.loads(local.read_text()), json.loads(hub.read_text())
    assert b["model"] == "test-user/tiny-eval" and a == {**b, "model": a["model"]}
