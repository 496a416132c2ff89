"""Class-uniform sampling: centroids, the on-disk cache, class frequencies, coarse boost, and items seeded by
(seed, epoch, index) through the epoch sampler."""

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sclseg.data import sampling
from sclseg.data.cityscapes import CityscapesItem
from sclseg.data.labels import train_ids_to_label_ids
from sclseg.data.sampling import (
    ClassUniformDataset,
    EpochShuffleSampler,
    SampleKey,
    compute_centroids,
    default_cache_path,
    image_centroids,
    item_generator,
    load_centroids,
)
from sclseg.data.transforms import TrainTransform




def _brute_force(label, tile, num_classes=19):
    rows = []
    for ty in range(0, label.shape[0], tile):
        for tx in range(0, label.shape[1], tile):
            patch = label[ty:ty + tile, tx:tx + tile]
            for c in range(num_classes):
                ys, xs = np.nonzero(patch == c)
                if len(ys):
                    rows.append([c, (ys + ty).sum() // len(ys), (xs + tx).sum() // len(xs)])
    return np.array(rows, np.int32).reshape(-1, 3)


def test_image_centroids_match_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(30):
        height, width, tile = int(rng.integers(1, 40)), int(rng.integers(1, 40)), int(rng.integers(1, 17))
        label = rng.choice(np.array([0, 4, 18, 255], np.uint8), (height, width))
        assert np.array_equal(image_centroids(label, tile), _brute_force(label, tile))


def test_partial_tiles_count():
    label = np.zeros((10, 10), np.uint8)
    assert image_centroids(label, tile_size=1024).tolist() == [[0, 4, 4]]


def _scene(rects, size=(32, 48), background=0):
    label = np.full(size, background, np.uint8)
    for class_id, (y0, x0, y1, x1) in rects:
        label[y0:y1, x0:x1] = class_id
    return label


def _write_items(folder: Path, labels, split="train") -> list[CityscapesItem]:
    items = []
    for index, label in enumerate(labels):
        image_id = f"{split}city_000000_{index:06d}"
        image_path = folder / "img" / f"{image_id}_leftImg8bit.png"
        label_path = folder / "gt" / f"{image_id}_gtFine_labelIds.png"
        image_path.parent.mkdir(parents=True, exist_ok=True)
        label_path.parent.mkdir(parents=True, exist_ok=True)
        noise = np.random.default_rng(index).integers(0, 60, label.shape + (3,))  # texture: no two crops alike
        Image.fromarray(((label[:, :, None] % 19) * 10 + noise).astype(np.uint8)).save(image_path)
        Image.fromarray(train_ids_to_label_ids(label)).save(label_path)
        items.append(CityscapesItem(image_id, f"{split}city", split, image_path, label_path))
    return items


FINE = [
    _scene([(13, (4, 4, 14, 14))]),
    _scene([(11, (10, 20, 30, 40))]),
    _scene([(2, (0, 0, 8, 48)), (13, (20, 30, 28, 40))]),
]
COARSE = [_scene([(15, (8, 8, 24, 24)), (5, (0, 40, 32, 44))]), _scene([(15, (2, 30, 20, 46))], background=255)]


@pytest.fixture
def fine_items(tmp_path):
    return _write_items(tmp_path / "fine", FINE)


def test_cache_is_written_next_to_the_labels_and_reused(fine_items, monkeypatch):
    paths = [item.label_path for item in fine_items]
    first = load_centroids(paths, tile_size=16, num_workers=0)
    cache = default_cache_path(paths, 16)
    assert cache.parent == paths[0].parent and cache.is_file() and cache.stat().st_mode & 0o444 == 0o444
    assert not [p for p in cache.parent.iterdir() if p.name.endswith(".tmp")]

    def fail(*args, **kwargs):
        raise AssertionError("recomputed although the cache is valid")

    monkeypatch.setattr(sampling, "compute_centroids", fail)
    again = load_centroids(paths, tile_size=16, num_workers=0)
    assert all(np.array_equal(a, b) for a, b in zip(
        (first.image_index, first.class_id, first.yx), (again.image_index, again.class_id, again.yx)))


def test_stale_cache_is_rebuilt(fine_items):
    paths = [item.label_path for item in fine_items]
    before = load_centroids(paths, tile_size=16, num_workers=0)
    assert 7 not in before.class_id
    Image.fromarray(train_ids_to_label_ids(_scene([(7, (0, 0, 5, 5))]))).save(paths[0])
    os.utime(paths[0], ns=(1, 1))  # a different mtime even on coarse-resolution file systems
    with pytest.warns(UserWarning, match="stale or unreadable"):
        after = load_centroids(paths, tile_size=16, num_workers=0)
    assert 7 in after.class_id.tolist() and 13 in after.class_id.tolist()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "inconsistent"])
def test_corrupt_cache_is_rebuilt(fine_items, damage):
    paths = [item.label_path for item in fine_items]
    good = load_centroids(paths, tile_size=16, num_workers=0)
    cache = default_cache_path(paths, 16)
    if damage == "garbage":
        cache.write_bytes(b"not a zip file")
    elif damage == "truncated":
        cache.write_bytes(cache.read_bytes()[:40])
    else:  # right fingerprint, impossible content
        fingerprint = sampling.centroid_fingerprint(paths, 16, 19)
        np.savez(cache, fingerprint=np.array(fingerprint), image_index=np.array([99], np.int32),
                 class_id=np.array([0], np.int32), yx=np.array([[0, 0]], np.int32))
    with pytest.warns(UserWarning, match="stale or unreadable"):
        rebuilt = load_centroids(paths, tile_size=16, num_workers=0)
    assert np.array_equal(rebuilt.yx, good.yx) and np.array_equal(rebuilt.class_id, good.class_id)


def test_parallel_computation_matches_serial(fine_items):
    paths = [item.label_path for item in fine_items]
    serial = compute_centroids(paths, tile_size=16, num_workers=0)
    parallel = compute_centroids(paths, tile_size=16, num_workers=2)
    assert np.array_equal(serial.yx, parallel.yx) and np.array_equal(serial.image_index, parallel.image_index)


def _dataset(tmp_path, pct=0.5, crop=24, **kwargs):
    fine = _write_items(tmp_path / "fine", FINE)
    coarse = _write_items(tmp_path / "coarse", COARSE, split="train_extra")
    transform = TrainTransform(crop)
    return ClassUniformDataset(fine, transform, extra_items=coarse, pct=pct, tile_size=16, num_workers=0, **kwargs)


def test_class_frequencies_are_uniform_and_coarse_boosts_rare_classes(tmp_path):
    dataset = _dataset(tmp_path)
    # Fine classes 0, 2, 11, 13; coarse adds only boosted class 15 (bus), not 0 or 5 (pole).
    assert dataset.classes == [0, 2, 11, 13, 15]
    draws = 6000
    plans = [dataset.plan(i % 3, torch.Generator().manual_seed(i)) for i in range(draws)]
    centred = [p for p in plans if p.class_id is not None]
    # Binomial(6000, 0.5): sd 38.7; 5 sd bounds.
    assert abs(len(centred) - draws * 0.5) < 5 * np.sqrt(draws * 0.25)
    counts = np.bincount([p.class_id for p in centred], minlength=19)[dataset.classes]
    expected, sd = len(centred) / 5, np.sqrt(len(centred) * 0.2 * 0.8)
    assert np.all(np.abs(counts - expected) < 5 * sd), counts
    assert all(p.source == "extra" for p in centred if p.class_id == 15)
    assert all(p.source == "fine" for p in centred if p.class_id != 15)
    randoms = [p for p in plans if p.class_id is None]
    assert all(p.source == "fine" and p.center is None for p in randoms)


def test_items_are_centred_crops_of_the_drawn_class(tmp_path):
    dataset = _dataset(tmp_path, pct=1.0)
    for index in range(30):
        key = SampleKey(seed=0, epoch=index // len(dataset), index=index % len(dataset))
        item = dataset[key]
        plan = dataset.plan(key.index, item_generator(*key))
        assert item["pixel_values"].shape == (3, 24, 24) and item["labels"].dtype == torch.int64
        assert (item["labels"] == plan.class_id).any(), (index, plan)
        assert item["image_id"].startswith("train_extracity" if plan.source == "extra" else "traincity")


def test_items_follow_from_seed_epoch_and_index_only(tmp_path):
    dataset = _dataset(tmp_path, epoch_size=8)
    first = dataset[SampleKey(3, 1, 5)]["pixel_values"]
    torch.manual_seed(123)  # torch's global RNG plays no part
    assert torch.equal(dataset[SampleKey(3, 1, 5)]["pixel_values"], first)
    others = [dataset[key]["pixel_values"] for key in (SampleKey(4, 1, 5), SampleKey(3, 2, 5), SampleKey(3, 1, 6))]
    assert not any(torch.equal(first, other) for other in others)
    # A plain index uses the dataset's seed and the epoch of set_epoch.
    dataset.seed = 3
    dataset.set_epoch(1)
    assert torch.equal(dataset[5]["pixel_values"], first)


def test_epoch_sampler_is_a_seeded_permutation_per_epoch():
    sampler = EpochShuffleSampler(10, seed=7)
    epoch0 = list(sampler)
    assert len(sampler) == 10 and sorted(key.index for key in epoch0) == list(range(10))
    assert all(key.seed == 7 and key.epoch == 0 for key in epoch0)
    assert list(EpochShuffleSampler(10, seed=7)) == epoch0
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert [k.index for k in epoch1] != [k.index for k in epoch0] and all(k.epoch == 1 for k in epoch1)
    assert [k.index for k in EpochShuffleSampler(10, seed=8)] != [k.index for k in epoch0]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_dataloader_gives_the_same_batches_whatever_the_workers_and_global_rng(tmp_path, num_workers):
    dataset = _dataset(tmp_path, crop=16, epoch_size=8)
    batches = []
    for global_seed, workers in ((5, 0), (6, num_workers)):
        torch.manual_seed(global_seed)  # would change the crops if items drew from the global RNG
        sampler = EpochShuffleSampler(len(dataset), seed=0)
        sampler.set_epoch(2)
        loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=workers, sampler=sampler)
        batches.append(list(loader))
    assert len(batches[0]) == 4 and batches[0][0]["pixel_values"].shape == (2, 3, 16, 16)
    assert batches[0][0]["labels"].shape == (2, 16, 16) and len(batches[0][0]["image_id"]) == 2
    for first, second in zip(*batches):
        assert torch.equal(first["pixel_values"], second["pixel_values"])
        assert torch.equal(first["labels"], second["labels"])


def test_unlabeled_items_are_rejected(tmp_path):
    items = [CityscapesItem("x", "c", "test", tmp_path / "x.png", None)]
    with pytest.raises(ValueError, match="needs labels"):
        ClassUniformDataset(items, TrainTransform(8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_centroids([], tile_size=8).yx.shape == (0, 2)
