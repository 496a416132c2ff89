"""`compute_metrics` for `Trainer(batch_eval_metrics=True)`: sums per-image confusion matrices.

`SCLTrainer.prediction_step` returns one (C, C) confusion matrix per image instead of logits, so what Trainer
gathers across processes is C² integers per image — never full-resolution logits — and
`gather_for_metrics` drops the images that the distributed sampler duplicated to even out the last batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from transformers import EvalPrediction

from .metrics import confusion_matrix, scores_from_confusion


def per_image_confusion(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                        ignore_index: int = 255) -> torch.Tensor:
    """pred, target: (B, H, W) integer → (B, C, C) int64 confusion matrices (rows target, columns prediction)."""
    return torch.stack([confusion_matrix(p, t, num_classes, ignore_index) for p, t in zip(pred, target)])


def _key(name: str) -> str:
    return name.replace(" ", "_")


class SegmentationMetrics:
    """Callable `compute_metrics(eval_pred, compute_result)` over gathered per-image confusion matrices.

    Returns (on the last batch) `mean_iou`, `pixel_accuracy`, `mean_accuracy` and `iou_<class name>` per class;
    Trainer prefixes them with `eval_`. Classes absent from both ground truth and predictions have no IoU
    entry and do not count in the mean (an IoU of 0/0 is undefined,
    as in `cityscapesscripts`).
    """

    def __init__(self, num_classes: int, id2label: Mapping[int, str] | None = None) -> None:
        self.num_classes = num_classes
        self.id2label = {int(k): v for k, v in (id2label or {}).items()}
        self.total: torch.Tensor | None = None

    def __call__(self, eval_pred: EvalPrediction, compute_result: bool = True) -> dict[str, float]:
        matrices = torch.as_tensor(eval_pred.predictions)
        if matrices.dim() != 3 or matrices.shape[1:] != (self.num_classes, self.num_classes):
            raise ValueError(f"expected (B, {self.num_classes}, {self.num_classes}) confusion matrices, got "
                             f"{tuple(matrices.shape)}: use SCLTrainer's prediction_step")
        batch_total = matrices.long().sum(dim=0)
        self.total = batch_total if self.total is None else self.total + batch_total.to(self.total.device)
        if not compute_result:
            return {}
        scores, self.total = scores_from_confusion(self.total), None
        metrics = {k: scores[k] for k in ("mean_iou", "pixel_accuracy", "mean_accuracy")}
        for c, iou in enumerate(scores["per_class_iou"]):
            if not math.isnan(iou):
                metrics[f"iou_{_key(self.id2label.get(c, str(c)))}"] = iou
        return metrics
