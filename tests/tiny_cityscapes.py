"""Hand-written tiny Cityscapes folders and tiny saved models for the evaluate / predict tests (faster than the
synthetic generator, and with full control over which label ids appear)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

# Label ids the ground truth draws from: 12 evaluated classes (so 7 are absent from the ground truth) and
# non-evaluated ids (0 unlabeled, 1 ego vehicle, 4 static, 9 parking) that the evaluation must skip.
GT_LABEL_IDS = (0, 1, 4, 9, 7, 8, 11, 17, 19, 21, 23, 24, 26, 28, 32, 33)
# Evaluated ids that neither the ground truth nor the random predictions of `write_random_predictions` use.
NEVER_USED = (12, 25, 31)


def image_ids(count: int, cities: tuple[str, ...] = ("aachen", "bremen")) -> list[tuple[str, str]]:
    """(city, `<city>_<seq>_<frame>`) for `count` images spread over `cities`."""
    return [(cities[i % len(cities)], f"{cities[i % len(cities)]}_{i:06d}_000019") for i in range(count)]


def write_tiny_cityscapes(root: Path, count: int = 4, size: tuple[int, int] = (24, 40), split: str = "val",
                          seed: int = 0, labels: bool = True) -> Path:
    """Random RGB images and random labelIds (from GT_LABEL_IDS) in the official layout; returns `root`."""
    rng = np.random.default_rng(seed)
    for city, image_id in image_ids(count):
        image_dir = root / "leftImg8bit" / split / city
        image_dir.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(image_dir / f"{image_id}_leftImg8bit.png")
        if labels:
            label_dir = root / "gtFine" / split / city
            label_dir.mkdir(parents=True, exist_ok=True)
            ids = rng.choice(np.array(GT_LABEL_IDS, dtype=np.uint8), size=size)
            Image.fromarray(ids, mode="L").save(label_dir / f"{image_id}_gtFine_labelIds.png")
    return root


def write_random_predictions(pred_dir: Path, count: int = 4, size: tuple[int, int] = (24, 40), seed: int = 1,
                             per_city: bool = False) -> list[Path]:
    """Random labelIds predictions over ids 0..33 except NEVER_USED and 28 (bus: in the GT, never predicted)."""
    rng = np.random.default_rng(seed)
    allowed = np.array([i for i in range(34) if i not in (*NEVER_USED, 28)], dtype=np.uint8)
    paths = []
    for city, image_id in image_ids(count):
        folder = pred_dir / city if per_city else pred_dir
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{image_id}_leftImg8bit.png"
        Image.fromarray(rng.choice(allowed, size=size), mode="L").save(path)
        paths.append(path)
    return paths


def save_tiny_model(folder: Path, config, processor: bool = True, seed: int = 0) -> Path:
    """A randomly initialised tiny DeepLabV3+ (+ SCLImageProcessor unless `processor=False`) saved in `folder`.

    The classifier bias is spread out so that the argmax varies over several classes (a random tiny model
    otherwise predicts one class everywhere, which would test little)."""
    from sclseg import DeepLabV3PlusForSemanticSegmentation, SCLImageProcessor

    torch.manual_seed(seed)
    model = DeepLabV3PlusForSemanticSegmentation(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("weight") and param.dim() == 4 and param.shape[0] == config.num_labels:
                param.normal_(0, 1.0)
    model.save_pretrained(folder)
    if processor:
        SCLImageProcessor().save_pretrained(folder)
    return folder
