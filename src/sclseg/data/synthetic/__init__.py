"""The embedded synthetic Cityscapes: street scenes rendered from a seed and written in the Cityscapes layout.

`dataset` writes the folders; `scene` renders one image with its labels from the street layout (`street`),
the things placed on it (`plan`, drawn by `objects`) and the drawing primitives (`render`); `coarse` turns
fine labels into gtCoarse-like ones; `label_ids` names the labelIds painted.
"""

from .dataset import (
    CITIES, MARKER_NAME, SYNTHETIC_VERSION, SyntheticParams, ensure_synthetic_cityscapes, is_synthetic_complete,
    make_synthetic_cityscapes, synthetic_image_id, write_preview,
)

__all__ = ["CITIES", "MARKER_NAME", "SYNTHETIC_VERSION", "SyntheticParams", "ensure_synthetic_cityscapes",
           "is_synthetic_complete", "make_synthetic_cityscapes", "synthetic_image_id", "write_preview"]
