"""Class-uniform sampling (Zhu et al. 2019; NVIDIA semantic-segmentation `datasets/uniform.py`).

Every labeled image is cut into `tile_size` tiles (1024 in the paper: `--class_uniform_tile 1024`); for each
tile and each class present in it, the centroid (mean pixel position) of that class inside the tile is
recorded. A fraction `pct` of each epoch (0.5: `--class_uniform_pct 0.5`) are crops that contain one such
centroid, of a class drawn uniformly among the classes that have centroids; the rest are random crops of the
labeled images. This evens out the classes seen in training.

Differences from NVIDIA, on purpose: partial tiles at the right/bottom border count (NVIDIA keeps only full
tiles, so an image smaller than a tile — the 256x512 synthetic default — would have no centroid at all);
centroids are cached with a fingerprint of the label files and rebuilt when stale or unreadable (NVIDIA
trusts any JSON file of the right name in the working directory).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path

import numpy as np
import torch

from .cityscapes import CityscapesDataset, CityscapesItem, read_label
from .labels import NUM_CLASSES

# Rare classes whose coarse (train_extra) centroids join the pools: truck, bus, train, wall, rider, motorcycle,
# fence (NVIDIA `--coarse_boost_classes 14,15,16,3,12,17,4`).
COARSE_BOOST_CLASSES: tuple[int, ...] = (14, 15, 16, 3, 12, 17, 4)
_CACHE_VERSION = 1  # bump when the centroid definition or the file format changes


# ---------------------------------------------------------------------------------------------------------
# Centroids of one label map.


def image_centroids(label: np.ndarray, tile_size: int = 1024, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Per-tile, per-class centroids of an (H, W) uint8 train-id map (values >= num_classes, e.g. 255, ignored).

    Returns (K, 3) int32 rows `(class_id, y, x)`, one per (tile, class present in the tile), ordered by tile
    (row-major) then class; `(y, x)` is the floor of the mean position of the class's pixels in that tile.
    Tiles at the right/bottom border may be partial. Two integer `np.bincount` passes build (row, tile, class)
    and (column, tile, class) histograms, from which counts and coordinate sums follow (~25 ms for 1024x2048).
    """
    if label.dtype != np.uint8:
        raise ValueError(f"expected a uint8 train-id map, got {label.dtype}")
    height, width = label.shape
    tiles_y, tiles_x = math.ceil(height / tile_size), math.ceil(width / tile_size)
    values = label.astype(np.int64)
    rows, cols = np.arange(height), np.arange(width)
    row_key = (rows[:, None] * tiles_x + (cols // tile_size)[None, :]) * 256 + values
    per_row = np.bincount(row_key.ravel(), minlength=height * tiles_x * 256).reshape(height, tiles_x, 256)
    col_key = (cols[None, :] * tiles_y + (rows // tile_size)[:, None]) * 256 + values
    per_col = np.bincount(col_key.ravel(), minlength=width * tiles_y * 256).reshape(width, tiles_y, 256)
    row_starts, col_starts = np.arange(0, height, tile_size), np.arange(0, width, tile_size)
    counts = np.add.reduceat(per_row, row_starts, axis=0)[..., :num_classes]  # (tiles_y, tiles_x, C)
    sum_y = np.add.reduceat(per_row * rows[:, None, None], row_starts, axis=0)[..., :num_classes]
    sum_x = np.add.reduceat(per_col * cols[:, None, None], col_starts, axis=0)[..., :num_classes]
    sum_x = sum_x.transpose(1, 0, 2)  # (tiles_x, tiles_y, C) -> (tiles_y, tiles_x, C)
    tile, class_id = np.nonzero(counts.reshape(-1, num_classes))
    n = counts.reshape(-1, num_classes)[tile, class_id]
    y = sum_y.reshape(-1, num_classes)[tile, class_id] // n
    x = sum_x.reshape(-1, num_classes)[tile, class_id] // n
    return np.stack([class_id, y, x], axis=1).astype(np.int32)


def _file_centroids(args: tuple[str, int, int]) -> np.ndarray:
    path, tile_size, num_classes = args
    return image_centroids(read_label(path), tile_size, num_classes)


# ---------------------------------------------------------------------------------------------------------
# Centroids of a set of images, computed in parallel and cached on disk.


@dataclass(frozen=True)
class Centroids:
    """Centroids of a list of label files: row i is image `image_index[i]`, class `class_id[i]`, pixel `yx[i]`."""

    image_index: np.ndarray  # (N,) int32
    class_id: np.ndarray  # (N,) int32
    yx: np.ndarray  # (N, 2) int32, (y, x) in the original image

    @classmethod
    def from_per_image(cls, per_image: Sequence[np.ndarray]) -> Centroids:
        rows = [r for r in per_image if len(r)]
        table = np.concatenate(rows) if rows else np.zeros((0, 3), np.int32)
        index = np.repeat(np.arange(len(per_image), dtype=np.int32), [len(r) for r in per_image])
        return cls(index, table[:, 0].astype(np.int32), table[:, 1:3].astype(np.int32))


def centroid_fingerprint(label_paths: Sequence[str | Path], tile_size: int, num_classes: int) -> str:
    """SHA-256 of the cache format version, tile size, class count and every label file's path, size and mtime."""
    entries = []
    for path in label_paths:
        stat = os.stat(path)
        entries.append([str(path), stat.st_size, stat.st_mtime_ns])
    payload = json.dumps([_CACHE_VERSION, tile_size, num_classes, entries])
    return hashlib.sha256(payload.encode()).hexdigest()


def default_cache_path(label_paths: Sequence[str | Path], tile_size: int) -> Path:
    """`<folder holding all label files>/.sclseg_centroids_tile<T>_<hash of the file names>.npz` (next to the data)."""
    folder = Path(os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in label_paths]))
    names = hashlib.sha256("\n".join(sorted(str(p) for p in label_paths)).encode()).hexdigest()[:16]
    return folder / f".sclseg_centroids_tile{tile_size}_{names}.npz"


def compute_centroids(label_paths: Sequence[str | Path], *, tile_size: int = 1024, num_classes: int = NUM_CLASSES,
                      num_workers: int | None = None) -> Centroids:
    """Centroids of every label file; `num_workers` processes (default: all CPUs; 0 or 1 = in this process)."""
    jobs = [(str(p), tile_size, num_classes) for p in label_paths]
    workers = (os.cpu_count() or 1) if num_workers is None else num_workers
    workers = min(workers, len(jobs))
    if workers <= 1:
        return Centroids.from_per_image([_file_centroids(job) for job in jobs])
    # Workers only run numpy and PIL, so "fork" (Linux; what DataLoader workers use) is safe and avoids
    # re-importing torch in every worker (~2 s each with "spawn").
    method = "fork" if sys.platform == "linux" and "fork" in get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(workers, mp_context=get_context(method)) as pool:
        per_image = list(pool.map(_file_centroids, jobs, chunksize=max(1, len(jobs) // (8 * workers))))
    return Centroids.from_per_image(per_image)


def _read_cache(path: Path, fingerprint: str, num_images: int, num_classes: int) -> Centroids | None:
    """The cached centroids if the file is readable, matches `fingerprint` and is consistent; else None."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["fingerprint"]) != fingerprint:
                return None
            cached = Centroids(data["image_index"].astype(np.int32), data["class_id"].astype(np.int32),
                               data["yx"].astype(np.int32))
    except Exception:  # noqa: BLE001 - any unreadable cache (truncated zip, missing key, bad dtype) is rebuilt
        return None
    n = len(cached.image_index)
    consistent = (cached.class_id.shape == (n,) and cached.yx.shape == (n, 2)
                  and (n == 0 or (cached.image_index.min() >= 0 and cached.image_index.max() < num_images
                                  and cached.class_id.min() >= 0 and cached.class_id.max() < num_classes
                                  and cached.yx.min() >= 0)))
    return cached if consistent else None


def _write_cache(path: Path, fingerprint: str, centroids: Centroids) -> None:
    """Write atomically (temp file in the same folder + os.replace): readers never see a half-written cache."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, fingerprint=np.array(fingerprint), image_index=centroids.image_index,
                     class_id=centroids.class_id, yx=centroids.yx)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the cache is shared by every user of the data
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_centroids(label_paths: Sequence[str | Path], *, tile_size: int = 1024, num_classes: int = NUM_CLASSES,
                   cache_path: str | Path | None = None, num_workers: int | None = None) -> Centroids:
    """Centroids from the on-disk cache when it is valid for exactly these files; otherwise compute and cache.

    `cache_path` defaults to `default_cache_path(...)`. A stale cache (files added, removed, resized or
    touched; another tile size) or a corrupt one is recomputed and overwritten, never used. If the folder is
    not writable the centroids are still returned, with a warning.
    """
    if not label_paths:
        return Centroids.from_per_image([])
    path = Path(cache_path) if cache_path is not None else default_cache_path(label_paths, tile_size)
    fingerprint = centroid_fingerprint(label_paths, tile_size, num_classes)
    cached = _read_cache(path, fingerprint, len(label_paths), num_classes) if path.exists() else None
    if cached is not None:
        return cached
    if path.exists():
        warnings.warn(f"class-uniform centroid cache {path} is stale or unreadable; recomputing it", stacklevel=2)
    centroids = compute_centroids(label_paths, tile_size=tile_size, num_classes=num_classes,
                                  num_workers=num_workers)
    try:
        _write_cache(path, fingerprint, centroids)
    except OSError as error:
        warnings.warn(f"cannot write the centroid cache {path} ({error}); centroids kept in memory", stacklevel=2)
    return centroids


# ---------------------------------------------------------------------------------------------------------
# The dataset.


@dataclass(frozen=True)
class SamplePlan:
    """What one index of an epoch turns into: image `index` of `source` ("fine" or "extra"), centred on
    `center` = (y, x) of a centroid of `class_id`, or a random crop (`class_id` and `center` None)."""

    source: str
    index: int
    class_id: int | None
    center: tuple[int, int] | None


class SampleKey(NamedTuple):
    """What `EpochShuffleSampler` hands a dataset: the index plus what seeds its augmentation."""

    seed: int
    epoch: int
    index: int


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The random source of one sample, a pure function of (seed, epoch, index).

    Why not torch's global RNG (the first version drew from it): a DataLoader worker's global RNG is seeded when
    the epoch's iterator starts, and accelerate fetches one batch ahead, so a run resumed in the middle of an
    epoch drew other crops than the uninterrupted run (up to 0.28 apart in the weights three steps later)."""
    state = np.random.SeedSequence([seed, epoch, index]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed((int(state[0]) << 31) ^ int(state[1]))


class EpochShuffleSampler(torch.utils.data.Sampler):
    """A random order of `range(size)` per epoch, from a permutation seeded by (seed, epoch), yielding
    `SampleKey(seed, epoch, index)`.

    The key travels with the index into the dataset (also into DataLoader workers, persistent or not), so a
    dataset that accepts keys (`ClassUniformDataset`) seeds each sample's augmentation by it: the same seed gives
    the same samples whatever the number of workers, the prefetching, or the step a run resumed from. The
    epoch comes from `set_epoch`, which Trainer and accelerate call before each epoch; accelerate shards the
    batches over processes, so each (epoch, index) is drawn once across them."""

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        return iter([SampleKey(self.seed, self.epoch, int(i)) for i in order])


class ClassUniformDataset(torch.utils.data.Dataset):
    """Labeled crops with class-uniform sampling, as `{"pixel_values", "labels", "image_id"}`.

    Index i of an epoch (length `epoch_size`, default the number of fine images): with probability `pct` a
    class-centred crop — class uniform among the classes that have centroids, then a centroid of that class
    uniform over its pool, and `transform(..., center=centroid)` crops around it — otherwise a random crop of
    fine image `i % len(items)` (so each epoch visits a random ~(1 - pct) share of the images, like NVIDIA's
    `random_sampling`). The draw per index is Bernoulli rather than an exact count so that any sampler
    (RandomSampler, DistributedSampler, which shard and shuffle indices) keeps the proportions.

    Coarse boost: the centroids of `extra_items` (coarse `train_extra` images) of the classes in
    `boost_classes` are added to those classes' pools (NVIDIA `--coarse_boost_classes`), so a crop centred on,
    say, a bus comes from a fine or a coarse image in proportion to the number of bus centroids in each; the
    crop then carries the coarse image's label. Coarse images never appear as random crops.

    `transform` follows the protocol of `transforms.py` (typically `TrainTransform(896)`). Randomness per item
    comes from `item_generator(seed, epoch, index)`: `dataset[key]` takes a `SampleKey` (what
    `EpochShuffleSampler` yields, the sampler `SCLTrainer` uses for this dataset) or a plain index, which uses
    `seed` and the epoch of `set_epoch` (0 by default).
    """

    accepts_sample_keys = True  # SCLTrainer gives such datasets an EpochShuffleSampler

    def __init__(self, items: Sequence[CityscapesItem], transform: Callable, *,
                 extra_items: Sequence[CityscapesItem] = (), pct: float = 0.5, tile_size: int = 1024,
                 boost_classes: Sequence[int] = COARSE_BOOST_CLASSES, num_classes: int = NUM_CLASSES,
                 epoch_size: int | None = None, cache_dir: str | Path | None = None,
                 num_workers: int | None = None, seed: int = 0) -> None:
        if not items:
            raise ValueError("ClassUniformDataset needs at least one labeled image")
        if not 0.0 <= pct <= 1.0:
            raise ValueError(f"pct must lie in [0, 1], got {pct}")
        self.fine = CityscapesDataset(items)
        self.extra = CityscapesDataset(extra_items)
        self.transform, self.pct = transform, pct
        self.seed, self.epoch = seed, 0
        self.epoch_size = len(items) if epoch_size is None else epoch_size
        load = dict(tile_size=tile_size, num_classes=num_classes, num_workers=num_workers)
        fine = load_centroids(self._label_paths(items), cache_path=_cache_in(cache_dir, items, tile_size), **load)
        pools = [(fine, None)]
        if extra_items:
            extra = load_centroids(self._label_paths(extra_items),
                                   cache_path=_cache_in(cache_dir, extra_items, tile_size), **load)
            pools.append((extra, set(boost_classes)))
        self.pools = _class_pools(pools, num_classes)
        self.classes = [c for c in range(num_classes) if len(self.pools[c])]

    @staticmethod
    def _label_paths(items: Sequence[CityscapesItem]) -> list[Path]:
        missing = [item.image_id for item in items if item.label_path is None]
        if missing:
            raise ValueError(f"class-uniform sampling needs labels; {len(missing)} items have none, e.g. {missing[0]}")
        return [item.label_path for item in items]

    def __len__(self) -> int:
        return self.epoch_size

    def plan(self, index: int, generator: torch.Generator) -> SamplePlan:
        """Decide what index `index` becomes, drawing from `generator`."""
        if self.classes and float(torch.rand((), generator=generator)) < self.pct:
            class_id = self.classes[int(torch.randint(len(self.classes), (), generator=generator))]
            pool = self.pools[class_id]
            source, image, y, x = pool[int(torch.randint(len(pool), (), generator=generator))]
            return SamplePlan("extra" if source else "fine", int(image), class_id, (int(y), int(x)))
        return SamplePlan("fine", index % len(self.fine), None, None)

    def set_epoch(self, epoch: int) -> None:
        """The epoch that seeds items asked for by a plain index."""
        self.epoch = epoch

    def __getitem__(self, key: int | SampleKey) -> dict[str, object]:
        seed, epoch, index = key if isinstance(key, tuple) else (self.seed, self.epoch, int(key))
        generator = item_generator(seed, epoch, index)
        plan = self.plan(index, generator)
        images = self.extra if plan.source == "extra" else self.fine
        image, label = images.load(plan.index)
        pixel_values, labels = self.transform(image, label, generator=generator, center=plan.center)
        return {"pixel_values": pixel_values, "labels": labels, "image_id": images.items[plan.index].image_id}


def _cache_in(cache_dir: str | Path | None, items: Sequence[CityscapesItem], tile_size: int) -> Path | None:
    if cache_dir is None:
        return None
    return Path(cache_dir) / default_cache_path([item.label_path for item in items], tile_size).name


def _class_pools(pools: Sequence[tuple[Centroids, set[int] | None]], num_classes: int) -> list[np.ndarray]:
    """Per class, an (M, 4) int64 array of (source 0=fine/1=extra, image index, y, x).

    `pools` holds (centroids, classes kept — None for all), fine first."""
    out = []
    for class_id in range(num_classes):
        parts = []
        for source, (centroids, keep) in enumerate(pools):
            if keep is not None and class_id not in keep:
                continue
            rows = centroids.class_id == class_id
            parts.append(np.column_stack([np.full(rows.sum(), source), centroids.image_index[rows],
                                          centroids.yx[rows]]).astype(np.int64))
        out.append(np.concatenate(parts) if parts else np.zeros((0, 4), np.int64))
    return out
