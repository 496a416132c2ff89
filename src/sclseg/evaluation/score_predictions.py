"""Score a folder of Cityscapes-server-format predictions (labelIds PNGs) against gtFine:
`sclseg evaluate-predictions`.

Matching follows `cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling`: the prediction of ground-truth
`<city>_<seq>_<frame>_gtFine_labelIds.png` is the one PNG anywhere under the prediction folder (flat or per city)
whose name matches `<city>_<seq>_<frame>*.png`. One deliberate leniency: when several files match and exactly one
of them ends in `_labelIds.png` (e.g. `sclseg predict` wrote colour PNGs next to the label ids), that one is used;
cityscapesscripts stops with "Found multiple predictions" there.

Scores equal cityscapesscripts' class IoU and its average (tests/test_evaluate_predictions.py checks 1e-6):
ground-truth pixels of non-evaluated label ids (unlabeled, ego vehicle, license plate, ...) are skipped; a
prediction of a non-evaluated id on an evaluated pixel counts as a false negative of the true class (the extra
"void" column below); a class absent from both ground truth and predictions has IoU NaN and is left out of the
mean, as cityscapesscripts does (absent from the ground truth but predicted: IoU 0 in both).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data.cityscapes import CityscapesItem, list_split, read_label
from ..data.labels import CLASS_NAMES, LABEL_ID_TO_TRAIN_ID, LABEL_NAMES, NUM_CLASSES
from .metrics import ConfusionMatrix

__all__ = ["PredictionError", "match_predictions", "read_prediction", "score_prediction_folder"]

_IMAGE_ID = re.compile(r"^(.+?_\d{6}_\d{6})")  # <city>_<seq>_<frame>, the key cityscapesscripts matches on
_SINGLE_CHANNEL_MODES = ("L", "P", "I", "I;16", "I;16B", "I;16L", "I;16N")
_SHOW = 5  # missing or duplicate files listed in an error


class PredictionError(ValueError):
    """A prediction file is missing, ambiguous, unreadable, of the wrong size, or holds unknown label ids."""


def _index_pngs(pred_dir: Path) -> dict[str, list[Path]]:
    """image id → PNG files under `pred_dir` (any depth) whose name starts with that id."""
    index: dict[str, list[Path]] = {}
    for folder, _, names in os.walk(pred_dir):
        for name in names:
            match = _IMAGE_ID.match(name)
            if name.lower().endswith(".png") and match:
                index.setdefault(match.group(1), []).append(Path(folder) / name)
    return index


def _pick(candidates: list[Path]) -> Path | None:
    if len(candidates) == 1:
        return candidates[0]
    label_ids = [p for p in candidates if p.name.endswith("_labelIds.png")]
    return label_ids[0] if len(label_ids) == 1 else None


def _listing(paths: Sequence[object]) -> str:
    shown = ", ".join(str(p) for p in paths[:_SHOW])
    return shown + (f", ... ({len(paths)} in all)" if len(paths) > _SHOW else "")


def match_predictions(pred_dir: str | Path, items: Sequence[CityscapesItem]) -> list[Path]:
    """The prediction file of each item, in order; `PredictionError` listing the first few missing or
    ambiguous ground-truth images."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise PredictionError(f"prediction folder {pred_dir} does not exist")
    index = _index_pngs(pred_dir)
    matched, missing, ambiguous = [], [], []
    for item in items:
        candidates = index.get(item.image_id, [])
        chosen = _pick(candidates)
        if chosen is None:
            (ambiguous if candidates else missing).append(item.label_path or item.image_id)
        matched.append(chosen)
    if missing:
        raise PredictionError(f"{len(missing)} of {len(items)} ground-truth images have no prediction "
                              f"<city>_<seq>_<frame>*.png under {pred_dir}: {_listing(missing)}")
    if ambiguous:
        raise PredictionError(f"{len(ambiguous)} ground-truth images have several matching predictions under "
                              f"{pred_dir} (keep one labelIds PNG per image): {_listing(ambiguous)}")
    return matched


def read_prediction(path: str | Path, size: tuple[int, int]) -> np.ndarray:
    """Read a labelIds prediction PNG as (H, W) int64 class indices: train ids 0..C−1, and C ("void") for the
    valid Cityscapes label ids that are not evaluated. `size` is the ground truth's (H, W).

    Raises `PredictionError` naming the file for an unreadable or multi-channel file, a size other than `size`,
    or values that are not Cityscapes label ids (0..33).
    """
    try:
        with Image.open(path) as image:
            image.load()
            mode, ids = image.mode, np.asarray(image)
    except (OSError, ValueError, SyntaxError) as error:
        raise PredictionError(f"cannot read prediction {path}: {error}") from error
    if mode not in _SINGLE_CHANNEL_MODES:
        raise PredictionError(f"prediction {path} has mode {mode}; expected a single-channel labelIds PNG "
                              "(a colour PNG is not a prediction for the Cityscapes evaluator)")
    if ids.shape != tuple(size):
        raise PredictionError(f"prediction {path} is {ids.shape[1]}x{ids.shape[0]} but its ground truth is "
                              f"{size[1]}x{size[0]} (width x height)")
    ids = ids.astype(np.int64)
    unknown = np.unique(ids[(ids < 0) | (ids >= len(LABEL_NAMES))])
    if unknown.size:
        raise PredictionError(f"prediction {path} holds values that are not Cityscapes label ids (0..33): "
                              f"{unknown[:10].tolist()}")
    train_ids = LABEL_ID_TO_TRAIN_ID[ids].astype(np.int64)
    train_ids[train_ids == 255] = NUM_CLASSES
    return train_ids


def score_prediction_folder(pred_dir: str | Path, data_root: str | Path, split: str = "val",
                            *, progress: bool = False) -> dict[str, object]:
    """Score `pred_dir` against `data_root`'s gtFine `split`.

    Returns `mean_iou`, `pixel_accuracy` (evaluated ground-truth pixels predicted right), `per_class_iou`
    ({class name: IoU or NaN}), `num_images`, and `confusion` ((C, C+1) int64, the last column counting
    predictions of non-evaluated ids).
    """
    items = list_split(data_root, split)
    paths = match_predictions(pred_dir, items)
    matrix = ConfusionMatrix(NUM_CLASSES + 1)  # +1: the void column; no ground-truth pixel lands in row C
    from tqdm.auto import tqdm

    for item, path in tqdm(list(zip(items, paths)), desc="scoring", unit="image", disable=not progress):
        label = read_label(item.label_path)
        prediction = read_prediction(path, label.shape)
        matrix.update(torch.from_numpy(prediction), torch.from_numpy(label.astype(np.int64)))
    counts = matrix.matrix[:NUM_CLASSES].double()
    tp = counts.diagonal()
    union = counts.sum(dim=1) + counts[:, :NUM_CLASSES].sum(dim=0) - tp
    iou = torch.where(union > 0, tp / union.clamp(min=1), torch.tensor(float("nan"), dtype=torch.float64))
    total = counts.sum()
    return {
        "mean_iou": iou.nanmean().item(),
        "pixel_accuracy": (tp.sum() / total).item() if total > 0 else float("nan"),
        "per_class_iou": dict(zip(CLASS_NAMES, iou.tolist())),
        "num_images": len(items),
        "confusion": matrix.matrix[:NUM_CLASSES].clone(),
    }
