"""Confusion matrix over C classes and the scores read from it: IoU per class, mIoU, pixel and mean accuracy.

Conventions (the Cityscapes protocol, as in `cityscapesscripts`): rows are ground truth, columns predictions; pixels
whose target is `ignore_index` (255 in Cityscapes train ids) or −100 (what Trainer pads labels with) are left out;
IoU_c = TP / (TP + FP + FN); the mIoU is the mean over classes present in the ground truth or the predictions,
so a class absent from both (union 0) is NaN and does not count. Everything stays on the tensors' device
(torch.bincount); only the C×C counts ever cross processes.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["ConfusionMatrix", "confusion_matrix", "scores_from_confusion"]

TRAINER_PAD_INDEX = -100  # transformers' Trainer pads labels of unequal size with −100


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int = 255) -> torch.Tensor:
    """Counts of (target, prediction) pairs.

    Args:
        pred: integer class ids, any shape, values in [0, num_classes) where the target is not ignored.
        target: integer class ids of the same shape; `ignore_index` and −100 mark pixels to leave out.
        num_classes: C.
        ignore_index: label value to leave out, besides −100.

    Returns:
        (C, C) int64 on the inputs' device, `[t, p]` = number of pixels of class t predicted as p.

    Raises ValueError on a shape mismatch, a floating dtype, or a kept target or prediction outside [0, C).
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    if pred.is_floating_point() or target.is_floating_point() or pred.is_complex() or target.is_complex():
        raise ValueError(f"pred and target must be integer tensors, got {pred.dtype} and {target.dtype} "
                         "(take the argmax of logits first)")
    target = target.reshape(-1).long()
    pred = pred.reshape(-1).to(target.device).long()
    kept = (target != ignore_index) & (target != TRAINER_PAD_INDEX)
    target, pred = target[kept], pred[kept]
    for name, values in (("target", target), ("pred", pred)):
        bad = (values < 0) | (values >= num_classes)
        if bool(bad.any()):  # one host sync per batch; a silent out-of-range id would corrupt other classes
            raise ValueError(f"{name} has values outside [0, {num_classes}) (and not ignored), "
                             f"e.g. {values[bad][:5].tolist()}")
    counts = torch.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def scores_from_confusion(matrix: torch.Tensor) -> dict[str, float | list[float]]:
    """Scores of a (C, C) confusion matrix (rows ground truth, columns predictions).

    Returns a dict of Python numbers (computed in float64):
        mean_iou: nanmean of per_class_iou (classes with TP + FP + FN = 0 excluded); NaN if every class is.
        per_class_iou: C values, NaN for classes absent from both ground truth and predictions.
        pixel_accuracy: trace / total (NaN for an empty matrix).
        mean_accuracy: nanmean over classes present in the ground truth of TP / (TP + FN).
        per_class_accuracy: C values, NaN for classes absent from the ground truth.
    """
    m = matrix.double()
    tp = m.diagonal()
    gt, predicted = m.sum(dim=1), m.sum(dim=0)
    union = gt + predicted - tp
    nan = torch.tensor(float("nan"), dtype=m.dtype, device=m.device)
    iou = torch.where(union > 0, tp / union.clamp(min=1), nan)
    accuracy = torch.where(gt > 0, tp / gt.clamp(min=1), nan)
    total = m.sum()
    return {
        "mean_iou": iou.nanmean().item(),
        "per_class_iou": iou.tolist(),
        "pixel_accuracy": (tp.sum() / total).item() if total > 0 else float("nan"),
        "mean_accuracy": accuracy.nanmean().item(),
        "per_class_accuracy": accuracy.tolist(),
    }


class ConfusionMatrix:
    """Accumulates a (C, C) int64 confusion matrix batch by batch; see `confusion_matrix` for the conventions.

    Typical use: `update(pred, target)` per batch, `all_reduce()` once at the end under torch.distributed, then
    `compute()`. The matrix lives on `device` (default: that of the first update).
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, device: torch.device | str | None = None):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.device = torch.device(device) if device is not None else None
        self.matrix: torch.Tensor | None = None
        self.reset()

    def reset(self) -> None:
        """Zero the counts (the device is kept)."""
        self.matrix = (torch.zeros(self.num_classes, self.num_classes, dtype=torch.long, device=self.device)
                       if self.device is not None else None)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch: `pred` and `target` integer tensors of the same shape (e.g. (B, H, W))."""
        counts = confusion_matrix(pred, target, self.num_classes, self.ignore_index)
        if self.matrix is None:
            self.device = counts.device
            self.matrix = counts
        else:
            self.matrix += counts.to(self.matrix.device)

    def _counts(self) -> torch.Tensor:
        if self.matrix is None:
            return torch.zeros(self.num_classes, self.num_classes, dtype=torch.long)
        return self.matrix

    def all_reduce(self) -> None:
        """Sum the counts over all processes when torch.distributed is initialised (a no-op otherwise).

        Collective: every process must call it, once, after its last update (calling it twice double counts).
        With NCCL the matrix must be on the process's CUDA device (pass `device=`).
        """
        if not (dist.is_available() and dist.is_initialized()):
            return
        if self.matrix is None:  # a process that saw no batch still has to take part
            self.matrix = self._counts().to(self.device) if self.device is not None else self._counts()
        dist.all_reduce(self.matrix, op=dist.ReduceOp.SUM)

    def compute(self) -> dict[str, float | list[float]]:
        """Scores of the counts so far (see `scores_from_confusion`); NaNs when nothing was counted."""
        return scores_from_confusion(self._counts())
