"""Evaluation: probabilities by whole-image / sliding-window / flip / multi-scale inference, and the confusion
matrix behind mIoU (also as a Hub-free `evaluate` metric)."""

from .inference import predict_probabilities, window_starts
from .mean_iou_metric import SCLMeanIoU
from .metrics import ConfusionMatrix, confusion_matrix, scores_from_confusion

__all__ = [
    "ConfusionMatrix",
    "SCLMeanIoU",
    "confusion_matrix",
    "predict_probabilities",
    "scores_from_confusion",
    "window_starts",
]
