"""Expand `sclseg predict` inputs (image files, folders, glob patterns) into a list of image files, and load
them as RGB saying which were not RGB."""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.cityscapes import read_image

__all__ = ["IMAGE_EXTENSIONS", "collect_images", "load_rgb"]

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_GLOB_CHARS = set("*?[")


def _images_in(folder: Path) -> list[Path]:
    """Image files anywhere under `folder` (so a Cityscapes split folder with per-city folders works)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def collect_images(inputs: Sequence[str | Path]) -> list[Path]:
    """Image files of `inputs`, in the given order, each once.

    A file is taken as is; a folder gives its image files (recursively, by extension); a pattern with `*?[`
    is expanded with `glob` (`**` recursive). `FileNotFoundError` names a missing path, a pattern matching no
    image, or a folder without images.
    """
    found: list[Path] = []
    for entry in inputs:
        text = str(entry)
        if Path(text).is_file():
            found.append(Path(text))
        elif Path(text).is_dir():
            images = _images_in(Path(text))
            if not images:
                raise FileNotFoundError(f"input folder {text} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            found.extend(images)
        elif _GLOB_CHARS & set(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True)
                             if Path(p).is_file() and Path(p).suffix.lower() in IMAGE_EXTENSIONS)
            if not matches:
                raise FileNotFoundError(f"input pattern {text!r} matches no image file")
            found.extend(matches)
        else:
            raise FileNotFoundError(f"input {text} does not exist")
    return list(dict.fromkeys(found))


def load_rgb(path: str | Path) -> tuple[np.ndarray, str | None]:
    """(H, W, 3) uint8 RGB of `path` and the original PIL mode when it was not RGB (None otherwise).

    Greyscale is replicated, alpha dropped, palettes expanded, 16-bit scaled to 8 bits (`read_image`)."""
    with Image.open(path) as image:
        mode = image.mode
    return read_image(path), (None if mode == "RGB" else mode)
