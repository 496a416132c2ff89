"""Data: the Cityscapes label table, loaders, transforms, sampling, unlabeled streams, the synthetic default."""

from .labels import CLASS_NAMES, ID2LABEL, IGNORE_INDEX, LABEL2ID, NUM_CLASSES, PALETTE

__all__ = ["CLASS_NAMES", "ID2LABEL", "IGNORE_INDEX", "LABEL2ID", "NUM_CLASSES", "PALETTE"]
