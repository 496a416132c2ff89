"""Write predicted train-id maps as files: Cityscapes labelIds (the server's submission format), trainIds, a
colour PNG with the official palette, and an overlay on the photo.

Naming (`output_paths`): an input `<stem>.<ext>` gives `<stem>_labelIds.png`, `<stem>_trainIds.png`,
`<stem>_color.png`, `<stem>_overlay.png`; a Cityscapes image `<id>_leftImg8bit.png` keeps its full stem, so
`<id>_leftImg8bit_labelIds.png` still matches the server's `<city>_<seq>_<frame>*.png`. A test-set submission
(`submission_paths`) puts the labelIds in `submission/<city>/<id>_leftImg8bit.png`, named exactly like the input
image, since the server wants one matching PNG per image; the other formats go to `<format>/<city>/`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.labels import IGNORE_INDEX, colorize, train_ids_to_label_ids

__all__ = ["FORMATS", "OVERLAY_ALPHA", "output_paths", "overlay", "parse_formats", "render", "submission_paths",
           "write_prediction"]

# format name → file-name suffix
FORMATS: dict[str, str] = {"labelids": "labelIds", "trainids": "trainIds", "color": "color", "overlay": "overlay"}
OVERLAY_ALPHA = 0.5  # weight of the class colour; half keeps the photo readable under every palette colour


def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
    """'labelids,color' (or a list) → ("labelids", "color"); `ValueError` naming an unknown format."""
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise ValueError(f"unknown output format(s) {unknown or names}; choose from {', '.join(FORMATS)}")
    return tuple(dict.fromkeys(names))


def overlay(image: np.ndarray, train_ids: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """(H, W, 3) uint8 photo and (H, W) train ids → (H, W, 3) uint8 blend; ignored (255) pixels show the photo."""
    blend = (1 - alpha) * image.astype(np.float32) + alpha * colorize(train_ids).astype(np.float32)
    blend = np.where((train_ids == IGNORE_INDEX)[..., None], image, np.rint(blend))
    return blend.astype(np.uint8)


def render(fmt: str, image: np.ndarray, train_ids: np.ndarray) -> Image.Image:
    """The PIL image of one format: labelids / trainids are single-channel "L" PNGs, color / overlay RGB."""
    if fmt == "labelids":
        return Image.fromarray(train_ids_to_label_ids(train_ids), mode="L")
    if fmt == "trainids":
        return Image.fromarray(train_ids.astype(np.uint8), mode="L")
    if fmt == "color":
        return Image.fromarray(colorize(train_ids), mode="RGB")
    if fmt == "overlay":
        return Image.fromarray(overlay(image, train_ids), mode="RGB")
    raise ValueError(f"unknown output format {fmt!r}; choose from {', '.join(FORMATS)}")


def output_paths(image_path: str | Path, output_dir: str | Path, formats: Sequence[str]) -> dict[str, Path]:
    """format → `output_dir/<stem>_<suffix>.png` for one input image."""
    stem = Path(image_path).stem
    return {fmt: Path(output_dir) / f"{stem}_{FORMATS[fmt]}.png" for fmt in formats}


def submission_paths(image_path: str | Path, city: str, output_dir: str | Path,
                     formats: Sequence[str]) -> dict[str, Path]:
    """format → path for one Cityscapes test image: labelids in `output_dir/submission/<city>/<image name>`,
    the others in `output_dir/<suffix>/<city>/<stem>_<suffix>.png`."""
    image_path, output_dir = Path(image_path), Path(output_dir)
    paths = {}
    for fmt in formats:
        if fmt == "labelids":
            paths[fmt] = output_dir / "submission" / city / f"{image_path.stem}.png"
        else:
            paths[fmt] = output_dir / FORMATS[fmt] / city / f"{image_path.stem}_{FORMATS[fmt]}.png"
    return paths


def write_prediction(image: np.ndarray, train_ids: np.ndarray, paths: dict[str, Path]) -> None:
    """Write each format of one prediction to its path (folders are created)."""
    for fmt, path in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        render(fmt, image, train_ids).save(path)
