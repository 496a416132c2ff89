"""Evaluation: probabilities by whole-image / sliding-window / flip / multi-scale inference, the confusion
matrix behind mIoU (also as a Hub-free `evaluate` metric), the `sclseg evaluate` loop and the scoring of
Cityscapes-server-format prediction folders.

`SCLMeanIoU` is imported on first use: it needs the `evaluate` library, which training never does."""

from typing import Any

from .evaluate_model import InferenceOptions, evaluate_model, load_model_and_processor
from .inference import predict_probabilities, window_starts
from .metrics import ConfusionMatrix, confusion_matrix, scores_from_confusion
from .score_predictions import score_prediction_folder



def __getattr__(name: str) -> Any:
    if name == "SCLMeanIoU":
        from .mean_iou_metric import SCLMeanIoU

        return SCLMeanIoU
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ConfusionMatrix",
    "InferenceOptions",
    "SCLMeanIoU",
    "confusion_matrix",
    "evaluate_model",
    "load_model_and_processor",
    "predict_probabilities",
    "score_prediction_folder",
    "scores_from_confusion",
    "window_starts",
]
