"""Cityscapes on disk: find the root, list fine / coarse splits, read images and labels, a torch `Dataset`.

Layout (the official zips unpacked under one root, Cordts et al. 2016):

    leftImg8bit/{train,val,test,train_extra}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    gtFine/{train,val,test}/<city>/<id>_gtFine_labelIds.png
    gtCoarse/train_extra/<city>/<id>_gtCoarse_labelIds.png

NVIDIA's semantic-segmentation code (Zhu et al. 2019) nests each zip one level deeper
(`leftImg8bit_trainvaltest/leftImg8bit/...`, `gtFine_trainvaltest/gtFine/...`,
`leftImg8bit_trainextra/leftImg8bit/...`, `gtCoarse/gtCoarse/...`); both are accepted, per split.
Labels are read as labelIds and mapped to the 19 train ids with the official table (`labels.py`), 255 = ignore.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .labels import IGNORE_INDEX, label_ids_to_train_ids
from .transforms import EvalTransform

SPLITS: tuple[str, ...] = ("train", "val", "test", "train_extra")
IMAGE_SUFFIX = "_leftImg8bit.png"
# split -> (label folder, label file suffix); test has no labels (the official gtFine/test files are dummies).
_LABEL_SOURCE: dict[str, tuple[str, str] | None] = {
    "train": ("gtFine", "_gtFine_labelIds.png"),
    "val": ("gtFine", "_gtFine_labelIds.png"),
    "test": None,
    "train_extra": ("gtCoarse", "_gtCoarse_labelIds.png"),
}

EXPECTED_LAYOUT = """expected a Cityscapes root holding
  leftImg8bit/{train,val,test,train_extra}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
  gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png
  gtCoarse/train_extra/<city>/<city>_<seq>_<frame>_gtCoarse_labelIds.png
(NVIDIA's nesting leftImg8bit_trainvaltest/leftImg8bit/..., gtFine_trainvaltest/gtFine/... is accepted too;
`sclseg make-synthetic ROOT` writes a small synthetic set in this layout)"""

Transform = Callable[..., tuple[torch.Tensor, "torch.Tensor | None"]]


@dataclass(frozen=True)
class CityscapesItem:
    """One image of a split. `image_id` is `<city>_<seq>_<frame>`, e.g. `aachen_000000_000019`."""

    image_id: str
    city: str
    split: str
    image_path: Path
    label_path: Path | None


@dataclass(frozen=True)
class CityscapesLayout:
    """Where each split's images and labels live under `root` (split -> folder of city folders)."""

    root: Path
    image_dirs: dict[str, Path] = field(default_factory=dict)
    label_dirs: dict[str, Path] = field(default_factory=dict)

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits whose image folder exists, in `SPLITS` order."""
        return tuple(s for s in SPLITS if s in self.image_dirs)


def _candidates(root: Path, name: str) -> list[Path]:
    """Folders that may hold `name`'s split folders: official, NVIDIA `name_*/name`, and `name/name`."""
    nested = sorted(p / name for p in root.glob(f"{name}_*") if p.is_dir())
    return [root / name, *nested, root / name / name]


def _first_with(root: Path, name: str, split: str) -> Path | None:
    for candidate in _candidates(root, name):
        if (candidate / split).is_dir():
            return candidate / split
    return None


def _found_summary(root: Path) -> str:
    entries = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    shown = ", ".join(entries[:20]) + (f", ... ({len(entries)} entries)" if len(entries) > 20 else "")
    return f"found in {root}: {shown or 'nothing (empty folder)'}"


def find_cityscapes_root(root: str | Path | CityscapesLayout) -> CityscapesLayout:
    """Locate the split folders under `root`; raises `FileNotFoundError` (naming the layout) if there are none."""
    if isinstance(root, CityscapesLayout):
        return root
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"Cityscapes root {root} does not exist or is not a folder; {EXPECTED_LAYOUT}")
    image_dirs, label_dirs = {}, {}
    for split in SPLITS:
        image_dir = _first_with(root, "leftImg8bit", split)
        if image_dir is None:
            continue
        image_dirs[split] = image_dir
        source = _LABEL_SOURCE[split]
        label_dir = _first_with(root, source[0], split) if source else None
        if label_dir is not None:
            label_dirs[split] = label_dir
    if not image_dirs:
        raise FileNotFoundError(f"no Cityscapes split under {root}; {EXPECTED_LAYOUT}; {_found_summary(root)}")
    return CityscapesLayout(root=root, image_dirs=image_dirs, label_dirs=label_dirs)


def _split_error(layout: CityscapesLayout, split: str, what: str) -> FileNotFoundError:
    found = ", ".join(f"{s} ({layout.image_dirs[s]})" for s in layout.splits) or "none"
    return FileNotFoundError(f"{what}; {EXPECTED_LAYOUT}; splits found under {layout.root}: {found}")


def list_split(root: str | Path | CityscapesLayout, split: str, *, labels: bool = True) -> list[CityscapesItem]:
    """All images of `split` ("train", "val", "test" or "train_extra"), sorted by (city, image id).

    Train/val items carry their gtFine labelIds file, train_extra its gtCoarse file, test items `None`.
    A missing split or label folder, an empty split, or a labeled image without its label file raises
    `FileNotFoundError` naming the expected layout (or the missing file). `labels=False` lists images only
    (label_path None, no label folder needed), e.g. `train_extra` as unlabeled data without gtCoarse.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown Cityscapes split {split!r}; expected one of {SPLITS}")
    layout = find_cityscapes_root(root)
    if split not in layout.image_dirs:
        raise _split_error(layout, split, f"split {split!r} has no leftImg8bit/{split} folder")
    source = _LABEL_SOURCE[split] if labels else None
    if source is not None and split not in layout.label_dirs:
        raise _split_error(layout, split, f"split {split!r} has images but no {source[0]}/{split} folder")
    items = []
    for image_path in sorted(layout.image_dirs[split].glob(f"*/*{IMAGE_SUFFIX}")):
        city = image_path.parent.name
        image_id = image_path.name[: -len(IMAGE_SUFFIX)]
        label_path = None
        if source is not None:
            label_path = layout.label_dirs[split] / city / f"{image_id}{source[1]}"
            if not label_path.is_file():
                raise FileNotFoundError(f"label file {label_path} is missing for image {image_path}")
        items.append(CityscapesItem(image_id, city, split, image_path, label_path))
    if not items:
        raise _split_error(layout, split, f"split {split!r} holds no */*{IMAGE_SUFFIX} files")
    return items


def _open(path: str | Path, what: str) -> Image.Image:
    """Open and fully decode an image, so that a truncated file fails here and names itself."""
    try:
        image = Image.open(path)
        image.load()
    except (OSError, ValueError, SyntaxError) as error:  # PIL raises all three for broken files
        raise ValueError(f"cannot read {what} file {path}: {error}") from error
    return image


def read_image(path: str | Path) -> np.ndarray:
    """Read any PIL-readable image as (H, W, 3) uint8 RGB.

    Greyscale is replicated to 3 channels, RGBA/LA drop alpha, palette images are expanded, and 16-bit
    (or 32-bit integer) greyscale is scaled from 0..65535 to 0..255 (PIL would clip it instead).
    """
    image = _open(path, "image")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16-bit PNGs open as "I;16" (or "I"); a shift by 8 maps 0..65535 onto 0..255.
        grey = np.asarray(image, dtype=np.float64)
        grey = np.clip(np.floor(grey / 256.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8).copy()


def read_label(path: str | Path) -> np.ndarray:
    """Read a `*_labelIds.png` file as (H, W) uint8 train ids (0..18, 255 = ignore).

    Accepts single-channel files ("L", "P" holding ids as palette indices, "I", "I;16"); a colour (RGB)
    file raises `ValueError` naming it, since colours are not label ids.
    """
    image = _open(path, "label")
    if image.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L", "I;16N"):
        raise ValueError(f"label file {path} has mode {image.mode}; expected a single-channel labelIds PNG")
    return label_ids_to_train_ids(np.asarray(image))


class CityscapesDataset(torch.utils.data.Dataset):
    """Cityscapes items as `{"pixel_values": (3, h, w) float32, "labels": (h, w) int64, "image_id": str}`.

    `transform(image, label, *, generator=None, center=None) -> (pixel_values, labels | None)` gets the
    (H, W, 3) uint8 image and (H, W) uint8 train ids (None for test items); the default, `EvalTransform`,
    only normalises with the ImageNet mean/std. Items without labels get `labels` filled with 255 (ignore).
    An index may also be `(index, (y, x))`, passed on as `center`: a crop that contains pixel (y, x).
    """

    def __init__(self, items: Sequence[CityscapesItem], transform: Transform | None = None) -> None:
        self.items = list(items)
        self.transform = transform if transform is not None else EvalTransform()

    @classmethod
    def from_root(cls, root: str | Path, split: str, transform: Transform | None = None) -> CityscapesDataset:
        """All images of one split under `root` (see `list_split`)."""
        return cls(list_split(root, split), transform)

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The raw (H, W, 3) uint8 image and (H, W) uint8 train ids (None without a label file)."""
        item = self.items[index]
        image = read_image(item.image_path)
        if item.label_path is None:
            return image, None
        label = read_label(item.label_path)
        if label.shape != image.shape[:2]:
            raise ValueError(
                f"image {item.image_path} is {image.shape[1]}x{image.shape[0]} but its label "
                f"{item.label_path} is {label.shape[1]}x{label.shape[0]} (width x height)"
            )
        return image, label

    def __getitem__(self, index: int | tuple[int, tuple[int, int] | None]) -> dict[str, object]:
        index, center = index if isinstance(index, tuple) else (index, None)
        image, label = self.load(index)
        pixel_values, labels = self.transform(image, label, center=center)
        if labels is None:
            labels = torch.full(pixel_values.shape[-2:], IGNORE_INDEX, dtype=torch.int64)
        return {"pixel_values": pixel_values, "labels": labels.long(), "image_id": self.items[index].image_id}
