"""The Cityscapes label table: label ids, the 19 train ids, class names and the official colour palette.

Facts from the Cityscapes benchmark definition (Cordts et al. 2016; `cityscapesscripts.helpers.labels`);
`tests/test_labels.py` checks this table against that package. Every label id that is not one of the 19
evaluated classes maps to the ignore index 255.
"""

from __future__ import annotations

import numpy as np

IGNORE_INDEX = 255

# (label id, name, train id, colour) for the 19 evaluated classes, in train-id order.
_TRAIN_CLASSES: tuple[tuple[int, str, tuple[int, int, int]], ...] = (
    (7, "road", (128, 64, 128)),
    (8, "sidewalk", (244, 35, 232)),
    (11, "building", (70, 70, 70)),
    (12, "wall", (102, 102, 156)),
    (13, "fence", (190, 153, 153)),
    (17, "pole", (153, 153, 153)),
    (19, "traffic light", (250, 170, 30)),
    (20, "traffic sign", (220, 220, 0)),
    (21, "vegetation", (107, 142, 35)),
    (22, "terrain", (152, 251, 152)),
    (23, "sky", (70, 130, 180)),
    (24, "person", (220, 20, 60)),
    (25, "rider", (255, 0, 0)),
    (26, "car", (0, 0, 142)),
    (27, "truck", (0, 0, 70)),
    (28, "bus", (0, 60, 100)),
    (31, "train", (0, 80, 100)),
    (32, "motorcycle", (0, 0, 230)),
    (33, "bicycle", (119, 11, 32)),
)

# Names of all 34 label ids (0..33) of gtFine/gtCoarse `*_labelIds.png`.
LABEL_NAMES: tuple[str, ...] = (
    "unlabeled", "ego vehicle", "rectification border", "out of roi", "static", "dynamic", "ground",
    "road", "sidewalk", "parking", "rail track", "building", "wall", "fence", "guard rail", "bridge",
    "tunnel", "pole", "polegroup", "traffic light", "traffic sign", "vegetation", "terrain", "sky",
    "person", "rider", "car", "truck", "bus", "caravan", "trailer", "train", "motorcycle", "bicycle",
)

# The label id of each name of LABEL_NAMES, for code that writes labelIds by name (the synthetic scenes).
NAME_TO_LABEL_ID: dict[str, int] = {name: label_id for label_id, name in enumerate(LABEL_NAMES)}

NUM_CLASSES = len(_TRAIN_CLASSES)
CLASS_NAMES: tuple[str, ...] = tuple(name for _, name, _ in _TRAIN_CLASSES)
TRAIN_ID_TO_LABEL_ID: tuple[int, ...] = tuple(label_id for label_id, _, _ in _TRAIN_CLASSES)
PALETTE: tuple[tuple[int, int, int], ...] = tuple(colour for _, _, colour in _TRAIN_CLASSES)

ID2LABEL: dict[int, str] = dict(enumerate(CLASS_NAMES))
LABEL2ID: dict[str, int] = {name: i for i, name in ID2LABEL.items()}


def _label_id_lut() -> np.ndarray:
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for train_id, label_id in enumerate(TRAIN_ID_TO_LABEL_ID):
        lut[label_id] = train_id
    lut.setflags(write=False)
    return lut


# LABEL_ID_TO_TRAIN_ID[label_id] -> train id (0..18) or 255; index with a uint8 labelIds array.
LABEL_ID_TO_TRAIN_ID: np.ndarray = _label_id_lut()


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map a Cityscapes labelIds array (any shape, integer) to train ids (uint8, 255 = ignore)."""
    label_ids = np.asarray(label_ids)
    out = np.full(label_ids.shape, IGNORE_INDEX, dtype=np.uint8)
    valid = (label_ids >= 0) & (label_ids < 256)
    out[valid] = LABEL_ID_TO_TRAIN_ID[label_ids[valid].astype(np.int64)]
    return out


def train_ids_to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """Map train ids (0..18; anything else, e.g. 255) to labelIds for the Cityscapes server (uint8, 0 = unlabeled)."""
    lut = np.zeros(256, dtype=np.uint8)
    lut[: NUM_CLASSES] = TRAIN_ID_TO_LABEL_ID
    return lut[np.asarray(train_ids).astype(np.uint8)]


def colorize(train_ids: np.ndarray) -> np.ndarray:
    """(H, W) train ids -> (H, W, 3) uint8 RGB with the official palette; ignore (255) is black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: NUM_CLASSES] = PALETTE
    return lut[np.asarray(train_ids).astype(np.uint8)]
