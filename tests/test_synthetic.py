"""The embedded synthetic Cityscapes: layout, determinism, labels through the loader, coarse labels, marker, CLI."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from sclseg.cli import main as cli_main
from sclseg.data.cityscapes import CityscapesDataset, list_split, read_label
from sclseg.data.synthetic import (
    MARKER_NAME,
    ensure_synthetic_cityscapes,
    is_synthetic_complete,
    make_synthetic_cityscapes,
)
from sclseg.data.synthetic.coarse import coarsen_labels

SMALL = {"size": (64, 128), "train": 12, "val": 3, "extra": 4, "test": 2}


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    return make_synthetic_cityscapes(tmp_path_factory.mktemp("synth") / "cs", seed=5, num_workers=2, **SMALL)


def test_layout_counts_and_marker(small_set):
    assert [len(list_split(small_set, s)) for s in ("train", "val", "test", "train_extra")] == [12, 3, 2, 4]
    train = list_split(small_set, "train")
    assert train[0].image_id.endswith("_000019") and train[0].city in {"synthville", "pixelburg", "polygonia"}
    assert all(Path(str(i.label_path).replace("_labelIds", "_color")).is_file() for i in train)
    assert (small_set / "preview.png").is_file()
    marker = json.loads((small_set / MARKER_NAME).read_text())
    assert marker["seed"] == 5 and marker["height"] == 64 and marker["width"] == 128
    assert not any(p.name.startswith(".cs.partial") for p in small_set.parent.iterdir())


def test_labels_round_trip_through_loader(small_set):
    dataset = CityscapesDataset(list_split(small_set, "train") + list_split(small_set, "val"))
    seen = set()
    for i in range(len(dataset)):
        labels = dataset[i]["labels"]
        assert labels.shape == (64, 128) and dataset[i]["pixel_values"].shape == (3, 64, 128)
        values = set(labels.unique().tolist())
        assert values <= set(range(19)) | {255}
        seen |= values
    # every one of the 19 classes appears in 15 fine images, thanks to the rare-class cycle
    assert seen - {255} == set(range(19))


def test_coarse_labels_leave_boundaries_unlabeled(small_set):
    import PIL.Image

    coarse = [np.asarray(PIL.Image.open(i.label_path)) for i in list_split(small_set, "train_extra")]
    unlabeled = np.mean([np.mean(c == 0) for c in coarse])
    assert 0.15 < unlabeled < 0.85
    assert all(set(read_label(i.label_path).ravel().tolist()) <= set(range(19)) | {255}
               for i in list_split(small_set, "train_extra"))


def test_coarsen_labels_unit():
    label = np.full((40, 40), 7, np.uint8)
    label[:, 20:] = 26
    instance = np.zeros((40, 40), np.int32)
    instance[:, 20:] = 1
    out = coarsen_labels(label, instance, np.random.default_rng(0))
    assert (out[:, 18:22] == 0).all()  # the boundary band is unlabeled
    assert set(np.unique(out).tolist()) <= {0, 7, 26} and (out == 7).any()


def test_deterministic_bytes_and_seed_dependence(tmp_path, small_set):
    again = make_synthetic_cityscapes(tmp_path / "again", seed=5, num_workers=1, **SMALL)
    assert _digest(again) == _digest(small_set)  # same bytes, 1 worker vs 2
    other = make_synthetic_cityscapes(tmp_path / "other", seed=6, num_workers=1, size=(64, 128), train=2, val=0,
                                      extra=0, preview=False)
    a = (small_set / "leftImg8bit/train/synthville/synthville_000000_000019_leftImg8bit.png").read_bytes()
    b = (other / "leftImg8bit/train/synthville/synthville_000000_000019_leftImg8bit.png").read_bytes()
    assert a != b


def test_ensure_regenerates_only_when_needed(tmp_path):
    root = tmp_path / "cs"
    kwargs = {"size": (32, 64), "train": 2, "val": 1, "extra": 1, "num_workers": 1, "preview": False}
    ensure_synthetic_cityscapes(root, **kwargs)
    stamp = (root / MARKER_NAME).stat().st_mtime_ns
    ensure_synthetic_cityscapes(root, **kwargs)
    assert (root / MARKER_NAME).stat().st_mtime_ns == stamp
    assert is_synthetic_complete(root, size=(32, 64), train=2, val=1, extra=1)
    ensure_synthetic_cityscapes(root, **{**kwargs, "train": 3})
    assert len(list_split(root, "train")) == 3 and len(list_split(root, "val")) == 1
    next(root.glob("leftImg8bit/train/*/*.png")).unlink()  # incomplete -> regenerated
    assert not is_synthetic_complete(root, size=(32, 64), train=3, val=1, extra=1)
    ensure_synthetic_cityscapes(root, **{**kwargs, "train": 3})
    assert len(list_split(root, "train")) == 3


def test_refuses_foreign_folder_and_bad_parameters(tmp_path):
    (tmp_path / "real" / "leftImg8bit").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="not a synthetic set"):
        make_synthetic_cityscapes(tmp_path / "real", train=1, val=0, extra=0)
    assert (tmp_path / "real" / "leftImg8bit").is_dir()
    with pytest.raises(ValueError, match="at least 32x32"):
        make_synthetic_cityscapes(tmp_path / "x", size=(8, 8))


def test_cli(tmp_path, capsys):
    root = tmp_path / "cli"
    code = cli_main(["make-synthetic", str(root), "--size", "32x64", "--train", "2", "--val", "1", "--extra", "1",
                     "--seed", "3", "--workers", "1", "--no-preview"])
    assert code == 0
    assert "wrote 4 images" in capsys.readouterr().out
    assert not (root / "preview.png").exists()
    assert json.loads((root / MARKER_NAME).read_text())["seed"] == 3
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "file.txt").write_text("x")
    assert cli_main(["make-synthetic", str(tmp_path / "foreign"), "--train", "1"]) == 2
    assert "not a synthetic set" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["make-synthetic", str(root), "--size", "big"])


@pytest.mark.parametrize("radius", [1, 3])
def test_dilation_matches_brute_force(radius):
    from sclseg.data.synthetic.coarse import _dilate

    mask = np.random.default_rng(radius).random((23, 31)) < 0.03
    expected = np.zeros_like(mask)
    for y, x in zip(*np.nonzero(mask)):
        expected[max(y - radius, 0):y + radius + 1, max(x - radius, 0):x + radius + 1] = True
    assert np.array_equal(_dilate(mask, radius), expected)
