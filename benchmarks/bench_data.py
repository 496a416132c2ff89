"""Data pipeline throughput: images/s for ONE worker on the labeled and unlabeled paths, and centroid cost.

    python benchmarks/bench_data.py [--images 8] [--threads 1]

Generates synthetic street-like images (smooth shapes + noise, so PNGs are ~1-3 MB at 1024x2048 like
Cityscapes) and labelIds maps in a temp folder, at full Cityscapes size (1024x2048, crop 896) and at the
synthetic default size (256x512, crop 256). Labeled path = `ClassUniformDataset.__getitem__` (PNG decode of
image + label, class-centred/random crop, jitter, blur, normalise). Unlabeled path = `UnlabeledPairStream`
over a Parquet shard (decode once, two augmented views). Each item is timed separately; MEDIANS are printed, of CPU
time (what one dedicated core spends; wall time on a shared machine also measures the neighbours) and of wall time.
Torch runs with `--threads` threads (DataLoader workers use 1). Goal (issue 4): >= 2 training images/s per
worker at full size.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import datasets
import numpy as np
import PIL
import torch
from PIL import Image

from sclseg.data.cityscapes import CityscapesItem, read_image, read_label
from sclseg.data.labels import train_ids_to_label_ids
from sclseg.data.packing import pack_image_folder
from sclseg.data.sampling import ClassUniformDataset, compute_centroids, image_centroids
from sclseg.data.transforms import TrainTransform
from sclseg.data.unlabeled import UnlabeledPairStream, load_unlabeled


def synthetic_scene(height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A crude street scene: sky/building/road bands, random boxes of other classes, colour per class + noise."""
    rng = np.random.default_rng(seed)
    label = np.full((height, width), 2, np.uint8)  # building
    label[: height // 4] = 10  # sky
    label[height * 5 // 8:] = 0  # road
    for _ in range(12):
        h, w = rng.integers(height // 16, height // 3), rng.integers(width // 32, width // 5)
        y, x = rng.integers(0, height - h), rng.integers(0, width - w)
        label[y:y + h, x:x + w] = rng.integers(0, 19)
    colours = rng.integers(0, 256, (256, 3))
    yy, xx = np.mgrid[0:height, 0:width]
    shade = (16 * np.sin(yy / 37.0) * np.cos(xx / 53.0))[:, :, None]
    image = colours[label] + shade + rng.normal(0, 6, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8), label


def write_set(folder: Path, count: int, size: tuple[int, int]) -> list[CityscapesItem]:
    items = []
    for index in range(count):
        image, label = synthetic_scene(*size, seed=index)
        image_path = folder / "images" / f"bench_{index:06d}_leftImg8bit.png"
        label_path = folder / "labels" / f"bench_{index:06d}_gtFine_labelIds.png"
        image_path.parent.mkdir(parents=True, exist_ok=True)
        label_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(image_path)
        Image.fromarray(train_ids_to_label_ids(label)).save(label_path)
        items.append(CityscapesItem(f"bench_{index:06d}", "bench", "train", image_path, label_path))
    return items


def timed(function, repeats: int) -> float:
    """Median CPU seconds of this process over `repeats` calls (after one warm-up call).

    CPU time, not wall time: on a shared machine wall time measures the neighbours' load too, while the CPU
    time of a single-threaded call is what one dedicated worker core spends. Wall medians go to WALL."""
    function()
    cpu, wall = [], []
    for _ in range(repeats):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        function()
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
    WALL[function] = statistics.median(wall)
    return statistics.median(cpu)


WALL: dict = {}


def bench_size(root: Path, size: tuple[int, int], crop: int, count: int) -> dict[str, float]:
    items = write_set(root, count, size)
    transform = TrainTransform(crop)
    out: dict[str, float] = {}
    out["png_mb"] = statistics.median(item.image_path.stat().st_size for item in items) / 1e6
    out["decode_image"] = timed(lambda: read_image(items[0].image_path), count)
    out["decode_label"] = timed(lambda: read_label(items[0].label_path), count)
    image, label = read_image(items[0].image_path), read_label(items[0].label_path)
    generator = torch.Generator().manual_seed(0)
    out["transform"] = timed(lambda: transform(image, label, generator=generator), 2 * count)
    out["centroids_in_memory"] = timed(lambda: image_centroids(label), count)
    start = time.perf_counter()
    compute_centroids([item.label_path for item in items], num_workers=1)
    out["centroids_per_file"] = (time.perf_counter() - start) / count
    dataset = ClassUniformDataset(items, transform, num_workers=1, cache_dir=root)
    indices = iter(range(10**9))
    labeled = lambda: dataset[next(indices) % len(dataset)]  # noqa: E731
    out["labeled_item"] = timed(labeled, 2 * count)
    out["labeled_wall"] = WALL[labeled]
    pack_image_folder(root / "images", root / "shards", num_shards=1)
    stream = iter(UnlabeledPairStream(load_unlabeled(root / "shards"), transform, shuffle_buffer=4))
    unlabeled = lambda: next(stream)  # noqa: E731
    out["unlabeled_pair"] = timed(unlabeled, 2 * count)
    out["unlabeled_wall"] = WALL[unlabeled]
    out["prefetch_wait"] = prefetch_wait(load_unlabeled(root / "shards"), transform, out["unlabeled_wall"], count)
    return out


def prefetch_wait(dataset, transform, pair_seconds: float, count: int) -> float:
    """Median wall time `next()` blocks with `prefetch=2` when each training step (simulated by a sleep that
    uses no CPU, like a GPU step) lasts 1.2x the wall time one pair takes to prepare."""
    stream = iter(UnlabeledPairStream(dataset, transform, shuffle_buffer=4, prefetch=2))
    next(stream)
    waits = []
    for _ in range(2 * count):
        time.sleep(1.2 * pair_seconds)
        start = time.perf_counter()
        next(stream)
        waits.append(time.perf_counter() - start)
    stream.close()
    return statistics.median(waits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8, help="synthetic images per size")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a DataLoader worker has 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}")
    print(f"versions: python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
          f"pillow {PIL.__version__}, datasets {datasets.__version__}")
    print(f"load average {os.getloadavg()[0]:.1f}; all figures are medians over items\n")
    for size, crop in (((1024, 2048), 896), ((256, 512), 256)):
        with tempfile.TemporaryDirectory() as tmp:
            r = bench_size(Path(tmp), size, crop, args.images)
        print(f"== {size[0]}x{size[1]} images, crop {crop} (PNG {r['png_mb']:.2f} MB) ==")
        labeled, pair = r["labeled_item"], r["unlabeled_pair"]
        print(f"  labeled path   : {1 / labeled:6.2f} images/s per worker core ({1e3 * labeled:.0f} ms CPU, "
              f"{1e3 * r['labeled_wall']:.0f} ms wall)")
        print(f"  unlabeled path : {1 / pair:6.2f} pairs/s per worker core ({1e3 * pair:.0f} ms CPU, "
              f"{1e3 * r['unlabeled_wall']:.0f} ms wall; {2 / pair:.2f} augmented views/s)")
        print(f"  with prefetch=2: next() waits {1e3 * r['prefetch_wait']:.0f} ms when a step lasts "
              f"{1.2e3 * r['unlabeled_wall']:.0f} ms")
        print(f"  breakdown (CPU): decode image {1e3 * r['decode_image']:.0f} ms, decode label "
              f"{1e3 * r['decode_label']:.0f} ms, TrainTransform {1e3 * r['transform']:.0f} ms")
        print(f"  centroids      : {1e3 * r['centroids_in_memory']:.1f} ms CPU/image in memory, "
              f"{1e3 * r['centroids_per_file']:.1f} ms wall/image with label decoding (1 process)\n")


if __name__ == "__main__":
    main()
