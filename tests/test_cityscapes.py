"""Cityscapes loader: layouts, listing, label mapping, image conversion, errors that name files."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sclseg.data.cityscapes import (
    CityscapesDataset,
    CityscapesItem,
    find_cityscapes_root,
    list_split,
    read_image,
    read_label,
)
from sclseg.data.labels import LABEL_ID_TO_TRAIN_ID

# Every label id 0..33 once, plus an out-of-table value; a 5x7 image.
LABEL_IDS = np.arange(35, dtype=np.uint8).reshape(5, 7)


def _write_pair(image_dir: Path, label_dir: Path | None, city: str, image_id: str, suffix: str) -> None:
    (image_dir / city).mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(image_dir / city / f"{image_id}_leftImg8bit.png")
    if label_dir is not None:
        (label_dir / city).mkdir(parents=True, exist_ok=True)
        Image.fromarray(LABEL_IDS).save(label_dir / city / f"{image_id}{suffix}")


def make_root(root: Path, nvidia: bool = False) -> Path:
    """A two-city train, one-city val/test, and a train_extra split, official or NVIDIA-nested."""
    img = root / "leftImg8bit_trainvaltest" / "leftImg8bit" if nvidia else root / "leftImg8bit"
    fine = root / "gtFine_trainvaltest" / "gtFine" if nvidia else root / "gtFine"
    extra_img = root / "leftImg8bit_trainextra" / "leftImg8bit" if nvidia else root / "leftImg8bit"
    coarse = root / "gtCoarse" / "gtCoarse" if nvidia else root / "gtCoarse"
    for city, ids in (("bremen", ["bremen_000001_000019", "bremen_000000_000019"]),
                      ("aachen", ["aachen_000000_000019"])):
        for image_id in ids:
            _write_pair(img / "train", fine / "train", city, image_id, "_gtFine_labelIds.png")
    _write_pair(img / "val", fine / "val", "lindau", "lindau_000000_000019", "_gtFine_labelIds.png")
    _write_pair(img / "test", None, "berlin", "berlin_000000_000019", "")
    _write_pair(extra_img / "train_extra", coarse / "train_extra", "augsburg", "augsburg_000000_000001",
                "_gtCoarse_labelIds.png")
    return root


@pytest.mark.parametrize("nvidia", [False, True])
def test_layouts_and_listing(tmp_path, nvidia):
    root = make_root(tmp_path, nvidia=nvidia)
    layout = find_cityscapes_root(root)
    assert layout.splits == ("train", "val", "test", "train_extra")
    train = list_split(root, "train")
    assert [i.image_id for i in train] == ["aachen_000000_000019", "bremen_000000_000019", "bremen_000001_000019"]
    assert all(i.split == "train" and i.label_path.name.endswith("_gtFine_labelIds.png") for i in train)
    assert train[0] == CityscapesItem("aachen_000000_000019", "aachen", "train", train[0].image_path,
                                      train[0].label_path)
    (test,) = list_split(layout, "test")
    assert test.label_path is None and test.city == "berlin"
    (extra,) = list_split(root, "train_extra")
    assert extra.label_path.name == "augsburg_000000_000001_gtCoarse_labelIds.png"


def test_label_mapping_through_loader(tmp_path):
    cs_labels = pytest.importorskip("cityscapesscripts.helpers.labels")
    root = make_root(tmp_path)
    sample = CityscapesDataset(list_split(root, "val"))[0]
    expected = np.full(LABEL_IDS.shape, 255)
    for lab in cs_labels.labels:
        if 0 <= lab.id < 34 and 0 <= lab.trainId < 19 and not lab.ignoreInEval:
            expected[LABEL_IDS == lab.id] = lab.trainId
    assert sample["labels"].dtype == torch.int64
    assert sample["labels"].numpy().tolist() == expected.tolist()
    assert sample["pixel_values"].shape == (3, 5, 7) and sample["pixel_values"].dtype == torch.float32
    assert sample["image_id"] == "lindau_000000_000019"
    assert read_label(list_split(root, "val")[0].label_path).tolist() == LABEL_ID_TO_TRAIN_ID[LABEL_IDS].tolist()


def test_default_transform_normalises_and_test_items_are_ignored(tmp_path):
    root = make_root(tmp_path)
    (item,) = list_split(root, "test")
    sample = CityscapesDataset([item])[0]
    rgb = torch.from_numpy(read_image(item.image_path)).permute(2, 0, 1).float() / 255
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(sample["pixel_values"], (rgb - mean[:, None, None]) / std[:, None, None])
    assert (sample["labels"] == 255).all() and sample["labels"].shape == (5, 7)


def test_transform_gets_center_and_label(tmp_path):
    calls = []

    def transform(image, label, *, generator=None, center=None):
        calls.append((image.shape, None if label is None else label.shape, center))
        return torch.zeros(3, 2, 2), torch.ones(2, 2, dtype=torch.uint8)

    dataset = CityscapesDataset.from_root(make_root(tmp_path), "train", transform=transform)
    sample = dataset[(1, (3, 4))]
    assert calls == [((5, 7, 3), (5, 7), (3, 4))]
    assert sample["labels"].dtype == torch.int64 and sample["image_id"] == "bremen_000000_000019"
    assert len(dataset) == 3


def test_missing_root_and_split_name_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="leftImg8bit/"):
        find_cityscapes_root(tmp_path / "nope")
    (tmp_path / "something_else").mkdir()
    with pytest.raises(FileNotFoundError, match=r"(?s)gtFine/.*found in .*something_else/"):
        list_split(tmp_path, "train")
    root = tmp_path / "cs"
    _write_pair(root / "leftImg8bit" / "train", root / "gtFine" / "train", "a", "a_000000_000019",
                "_gtFine_labelIds.png")
    with pytest.raises(FileNotFoundError, match=r"(?s)'val'.*leftImg8bit/.*splits found .*train \("):
        list_split(root, "val")
    with pytest.raises(ValueError, match="unknown Cityscapes split"):
        list_split(root, "training")


def test_missing_label_folder_or_file(tmp_path):
    root = tmp_path
    _write_pair(root / "leftImg8bit" / "train", None, "a", "a_000000_000019", "")
    with pytest.raises(FileNotFoundError, match="no gtFine/train folder"):
        list_split(root, "train")
    (image_only,) = list_split(root, "train", labels=False)
    assert image_only.label_path is None and image_only.image_id == "a_000000_000019"
    (root / "gtFine" / "train" / "a").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="a_000000_000019_gtFine_labelIds.png is missing"):
        list_split(root, "train")


def test_size_mismatch_and_unreadable_label_name_files(tmp_path):
    root = make_root(tmp_path)
    items = list_split(root, "train")
    Image.fromarray(np.zeros((6, 7), np.uint8)).save(items[0].label_path)
    with pytest.raises(ValueError, match=rf"(?s){items[0].image_path.name}.*{items[0].label_path.name}"):
        CityscapesDataset(items)[0]
    items[1].label_path.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(ValueError, match=items[1].label_path.name):
        CityscapesDataset(items)[1]
    Image.fromarray(np.zeros((5, 7, 3), np.uint8)).save(items[2].label_path)
    with pytest.raises(ValueError, match="single-channel"):
        read_label(items[2].label_path)


def test_image_modes_are_converted(tmp_path):
    grey = np.arange(35, dtype=np.uint8).reshape(5, 7) * 7
    cases = {
        "L": Image.fromarray(grey),
        "RGBA": Image.fromarray(np.dstack([grey, grey, grey, np.full_like(grey, 9)])),
        "P": Image.fromarray(np.dstack([grey] * 3)).convert("P"),
        "I;16": Image.fromarray(grey.astype(np.uint16) * 257),
        "LA": Image.fromarray(np.dstack([grey, grey])),
    }
    for mode, image in cases.items():
        path = tmp_path / f"{mode.replace(';', '')}.png"
        image.save(path)
        out = read_image(path)
        assert out.shape == (5, 7, 3) and out.dtype == np.uint8, mode
        if mode != "P":  # palette quantisation is lossy for arbitrary greys
            assert np.array_equal(out, np.dstack([grey] * 3)), mode
    assert Image.open(tmp_path / "I16.png").mode.startswith("I")
