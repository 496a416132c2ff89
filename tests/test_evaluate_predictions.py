"""`sclseg evaluate-predictions`: agreement with cityscapesscripts' own evaluator, folder layouts, bad input."""

import json
import math

import numpy as np
import pytest
from PIL import Image
from tiny_cityscapes import NEVER_USED, write_random_predictions, write_tiny_cityscapes

from sclseg.cli import main
from sclseg.data.labels import CLASS_NAMES, TRAIN_ID_TO_LABEL_ID
from sclseg.evaluation.score_predictions import PredictionError, score_prediction_folder

COUNT, SIZE = 6, (24, 40)


@pytest.fixture
def data(tmp_path):
    root = write_tiny_cityscapes(tmp_path / "cs", count=COUNT, size=SIZE)
    write_random_predictions(tmp_path / "pred", count=COUNT, size=SIZE)
    return root, tmp_path / "pred"


def cityscapesscripts_scores(root, pred_dir, monkeypatch):
    """Run cityscapesscripts' evalPixelLevelSemanticLabeling on gtFine/val offline, no JSON, no plots."""
    monkeypatch.setenv("CITYSCAPES_DATASET", str(root))
    monkeypatch.setenv("CITYSCAPES_RESULTS", str(pred_dir))
    import cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling as csev

    monkeypatch.setattr(csev.args, "predictionPath", str(pred_dir))
    monkeypatch.setattr(csev.args, "predictionWalk", None)
    monkeypatch.setattr(csev.args, "evalInstLevelScore", False)  # needs instanceIds files we do not write
    monkeypatch.setattr(csev.args, "JSONOutput", False)
    monkeypatch.setattr(csev.args, "quiet", True)
    gt = sorted(str(p) for p in (root / "gtFine" / "val").glob("*/*_gtFine_labelIds.png"))
    predictions = [csev.getPrediction(csev.args, g) for g in gt]
    return csev.evaluateImgLists(predictions, gt, csev.args)


@pytest.mark.parametrize("per_city", [False, True], ids=["flat", "per-city"])
def test_agrees_with_cityscapesscripts(tmp_path, monkeypatch, per_city):
    root = write_tiny_cityscapes(tmp_path / "cs", count=COUNT, size=SIZE)
    pred = tmp_path / "pred"
    write_random_predictions(pred, count=COUNT, size=SIZE, per_city=per_city)
    ours = score_prediction_folder(pred, root, "val")
    theirs = cityscapesscripts_scores(root, pred, monkeypatch)
    # Classes absent from both GT and predictions: NaN in both, left out of both means.
    absent = {CLASS_NAMES[TRAIN_ID_TO_LABEL_ID.index(i)] for i in NEVER_USED}
    assert {n for n, v in ours["per_class_iou"].items() if math.isnan(v)} == absent
    # bus (28) is in the GT but never predicted: 0 in both; every other class is comparable number to number.
    assert ours["per_class_iou"]["bus"] == 0.0
    diffs = []
    for name, value in ours["per_class_iou"].items():
        if name in absent:
            assert math.isnan(theirs["classScores"][name])
        else:
            diffs.append(abs(value - theirs["classScores"][name]))
    assert len(diffs) == 16 and max(diffs) <= 1e-6
    assert abs(ours["mean_iou"] - theirs["averageScoreClasses"]) <= 1e-6
    assert 0.0 < ours["mean_iou"] < 0.2  # random predictions: a real, small score, not a degenerate one


def test_cli_json(data, tmp_path, capsys):
    root, pred = data
    out = tmp_path / "r.json"
    assert main(["evaluate-predictions", str(pred), "--data-root", str(root), "--split", "val",
                 "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    expected = score_prediction_folder(pred, root, "val")
    assert record["num_images"] == COUNT and record["split"] == "val"
    assert record["mean_iou"] == pytest.approx(expected["mean_iou"], abs=1e-12)
    assert record["per_class_iou"]["wall"] is None  # NaN becomes null
    assert record["per_class_iou"]["road"] == pytest.approx(expected["per_class_iou"]["road"], abs=1e-12)
    printed = capsys.readouterr().out
    assert "traffic light" in printed and "mIoU" in printed and f"{100 * expected['mean_iou']:6.2f}" in printed


def test_labelids_file_preferred_among_several_matches(data):
    root, pred = data
    before = score_prediction_folder(pred, root, "val")["mean_iou"]
    for path in list(pred.glob("*.png")):  # what `sclseg predict --format labelids,color` writes
        path.rename(path.with_name(path.stem + "_labelIds.png"))
        Image.new("RGB", (SIZE[1], SIZE[0])).save(path.with_name(path.stem + "_color.png"))
    assert score_prediction_folder(pred, root, "val")["mean_iou"] == before


def test_missing_predictions_are_listed(data):
    root, pred = data
    for path in sorted(pred.glob("*.png"))[:2]:
        path.unlink()
    with pytest.raises(PredictionError, match=r"2 of 6 ground-truth images have no prediction") as info:
        score_prediction_folder(pred, root, "val")
    assert "aachen_000000_000019_gtFine_labelIds.png" in str(info.value)


def test_wrong_size_names_the_file(data):
    root, pred = data
    bad = sorted(pred.glob("*.png"))[3]
    Image.fromarray(np.zeros((SIZE[0], SIZE[1] + 1), dtype=np.uint8)).save(bad)
    with pytest.raises(PredictionError, match=rf"{bad.name} is 41x24 but its ground truth is 40x24"):
        score_prediction_folder(pred, root, "val")


def test_unknown_label_ids_name_the_file(data):
    root, pred = data
    bad = sorted(pred.glob("*.png"))[1]
    ids = np.array(Image.open(bad))
    ids[0, :2] = (34, 200)
    Image.fromarray(ids).save(bad)
    with pytest.raises(PredictionError,
                       match=rf"{bad.name} holds values that are not Cityscapes label ids.*\[34, 200\]"):
        score_prediction_folder(pred, root, "val")


def test_colour_png_is_rejected_and_cli_exits_with_the_message(data):
    root, pred = data
    bad = sorted(pred.glob("*.png"))[0]
    Image.new("RGB", (SIZE[1], SIZE[0])).save(bad)
    with pytest.raises(SystemExit, match=rf"{bad.name} has mode RGB"):
        main(["evaluate-predictions", str(pred), "--data-root", str(root)])
