"""`sclseg predict`: file names, sizes, label ids, the trainId → labelId round trip, colours, the test-set
submission, non-RGB inputs and bad inputs; `predict --format labelids` scored by `evaluate-predictions` gives
`evaluate`'s mIoU."""

import json

import numpy as np
import pytest
from PIL import Image
from tiny_cityscapes import save_tiny_model, write_tiny_cityscapes

from sclseg.cli import main
from sclseg.data.labels import TRAIN_ID_TO_LABEL_ID, colorize, label_ids_to_train_ids
from sclseg.evaluation.export import overlay

SIZE = (24, 40)
ALL = "labelids,trainids,color,overlay"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from conftest import tiny_wide_resnet_kwargs
    from sclseg import DeepLabV3PlusConfig, WideResNetConfig

    config = DeepLabV3PlusConfig(backbone_config=WideResNetConfig(**tiny_wide_resnet_kwargs()), aspp_channels=8,
                                 aspp_rates=[1, 2, 3], low_level_channels=4, decoder_channels=8)
    return save_tiny_model(tmp_path_factory.mktemp("predict") / "model", config)


def write_image(path, mode="RGB", size=SIZE, seed=0):
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        Image.fromarray(rng.integers(0, 65536, size, dtype=np.uint16)).save(path)
    else:
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).convert(mode).save(path)
    return path


def test_writes_every_format_with_the_right_names_sizes_and_ids(model_dir, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_image(inputs / "street.jpg")
    write_image(inputs / "aachen_000000_000019_leftImg8bit.png", size=(30, 20), seed=1)
    out = tmp_path / "out"
    assert main(["predict", str(model_dir), str(inputs), "--output", str(out), "--format", ALL]) == 0
    stems = {"street": SIZE, "aachen_000000_000019_leftImg8bit": (30, 20)}
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{s}_{f}.png" for s in stems for f in ("labelIds", "trainIds", "color", "overlay"))
    evaluated = set(TRAIN_ID_TO_LABEL_ID)
    for stem, size in stems.items():
        label_ids = np.asarray(Image.open(out / f"{stem}_labelIds.png"))
        train_ids = np.asarray(Image.open(out / f"{stem}_trainIds.png"))
        assert label_ids.shape == train_ids.shape == size and label_ids.dtype == np.uint8
        assert set(np.unique(label_ids)) <= evaluated and len(np.unique(label_ids)) > 1
        assert (label_ids_to_train_ids(label_ids) == train_ids).all()  # trainId -> labelId round-trips
        assert (np.asarray(Image.open(out / f"{stem}_color.png")) == colorize(train_ids)).all()
        photo = np.asarray(Image.open(inputs / (stem + (".jpg" if stem == "street" else ".png"))).convert("RGB"))
        assert (np.asarray(Image.open(out / f"{stem}_overlay.png")) == overlay(photo, train_ids)).all()


def test_default_formats_and_glob(model_dir, tmp_path):
    for i in range(3):
        write_image(tmp_path / f"img{i}.png", seed=i)
    out = tmp_path / "out"
    assert main(["predict", str(model_dir), str(tmp_path / "img*.png"), "--output", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"img{i}_{f}.png" for i in range(3) for f in ("labelIds", "color"))


def test_non_rgb_inputs_are_converted_and_said_once(model_dir, tmp_path, capsys):
    paths = [write_image(tmp_path / f"{mode.replace(';', '')}.png", mode) for mode in ("L", "RGBA", "P", "I;16")]
    assert [Image.open(p).mode for p in paths] == ["L", "RGBA", "P", "I;16"]
    out = tmp_path / "out"
    assert main(["predict", str(model_dir), *map(str, paths), "--output", str(out), "--format", "trainids"]) == 0
    assert capsys.readouterr().err.count("non-RGB inputs are converted to RGB") == 1
    for path in paths:
        assert np.asarray(Image.open(out / f"{path.stem}_trainIds.png")).shape == SIZE


def test_split_submission_scores_like_evaluate(model_dir, tmp_path, capsys):
    root = write_tiny_cityscapes(tmp_path / "cs", count=4, size=SIZE)
    out = tmp_path / "out"
    assert main(["predict", str(model_dir), "--split", "val", "--data-root", str(root), "--output", str(out),
                 "--format", "color", "--mode", "sliding", "--tile", "16"]) == 0
    assert "zip -r ../submission.zip" in capsys.readouterr().out
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == sorted(
        [f"submission/aachen/aachen_00000{i}_000019_leftImg8bit.png" for i in (0, 2)]
        + [f"submission/bremen/bremen_00000{i}_000019_leftImg8bit.png" for i in (1, 3)]
        + [f"color/{c}/{c}_00000{i}_000019_leftImg8bit_color.png" for c, i in
           (("aachen", 0), ("aachen", 2), ("bremen", 1), ("bremen", 3))])
    scored, evaluated = tmp_path / "scored.json", tmp_path / "evaluated.json"
    assert main(["evaluate-predictions", str(out / "submission"), "--data-root", str(root), "--json",
                 str(scored)]) == 0
    assert main(["evaluate", str(model_dir), "--data-root", str(root), "--json", str(evaluated), "--mode", "sliding",
                 "--tile", "16"]) == 0
    a, b = json.loads(scored.read_text()), json.loads(evaluated.read_text())
    assert a["mean_iou"] == pytest.approx(b["mean_iou"], abs=1e-12) and a["per_class_iou"] == b["per_class_iou"]


def test_unlabeled_test_split(model_dir, tmp_path):
    root = write_tiny_cityscapes(tmp_path / "cs", count=2, size=SIZE, split="test", labels=False)
    out = tmp_path / "out"
    assert main(["predict", str(model_dir), "--split", "test", "--data-root", str(root), "--output", str(out),
                 "--format", "overlay"]) == 0  # labelids are added: a submission is the point of --split
    submission = sorted(p.relative_to(out).as_posix() for p in (out / "submission").rglob("*.png"))
    assert submission == ["submission/aachen/aachen_000000_000019_leftImg8bit.png",
                          "submission/bremen/bremen_000001_000019_leftImg8bit.png"]
    assert len(list((out / "overlay").rglob("*_overlay.png"))) == 2


@pytest.mark.parametrize("argument, message", [
    ("nothing*.png", "input pattern '.*nothing\\*.png' matches no image file"),
    ("missing.png", "input .*missing.png does not exist"),
])
def test_bad_inputs_are_named(model_dir, tmp_path, argument, message):
    with pytest.raises(SystemExit, match=message):
        main(["predict", str(model_dir), str(tmp_path / argument), "--output", str(tmp_path / "out")])


def test_same_file_name_twice_and_unknown_format(model_dir, tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        write_image(tmp_path / folder / "x.png")
    with pytest.raises(SystemExit, match="have the same file name"):
        main(["predict", str(model_dir), str(tmp_path / "a"), str(tmp_path / "b"), "--output", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="unknown output format"):
        main(["predict", str(model_dir), str(tmp_path / "a"), "--output", str(tmp_path / "o"), "--format", "jpeg"])


def test_unreadable_image_is_named(model_dir, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(SystemExit, match="broken.png"):
        main(["predict", str(model_dir), str(broken), "--output", str(tmp_path / "out")])
