"""`SCLMeanIoU`: an `evaluate.Metric` that scores segmentation maps with `ConfusionMatrix`, without the Hub.

`evaluate.load("mean_iou")` downloads its script from the Hub and fails offline; this class is
instantiated directly instead and gives the same numbers as `ConfusionMatrix` (a test checks it):

    metric = SCLMeanIoU()
    metric.add_batch(predictions=preds, references=labels)          # (B, H, W) integer arrays, any number of times
    metric.compute(num_labels=19, ignore_index=255)                 # -> mean_iou, per_class_iou, ...

Maps go through evaluate's Arrow cache as nested lists of int32 (evaluate 0.4.6 accepts only `Value` features
with the "numpy" format, so a 2-D map is a `Sequence(Sequence(Value))`); examples may differ in size. That
costs ~0.1 s per 512×1024 map on a CPU: fine for `evaluate`-based code, but the training loop and the CLI use
`ConfusionMatrix` on tensors directly.
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np
import torch

from .metrics import ConfusionMatrix

__all__ = ["SCLMeanIoU"]

_DESCRIPTION = """Mean intersection-over-union of semantic segmentation maps, the Cityscapes protocol: a confusion
matrix over `num_labels` classes, pixels whose reference is `ignore_index` or -100 left out, IoU = TP/(TP+FP+FN),
mean over classes present in the references or the predictions."""

_INPUTS = """Args:
    predictions: 2-D integer maps of predicted class ids (one per example).
    references: 2-D integer maps of ground-truth class ids, same size as the matching prediction.
    num_labels (int): number of classes C; ids must lie in [0, C) except ignored reference pixels.
    ignore_index (int, default 255): reference value to leave out (−100 is always left out).
Returns:
    mean_iou, pixel_accuracy, mean_accuracy (float); per_class_iou, per_class_accuracy (lists of C floats, NaN
    for classes absent from both maps / from the references).
"""

_CITATION = """@article{kim2020structured,
  title={Structured Consistency Loss for semi-supervised semantic segmentation},
  author={Kim, Jongmok and Jang, Jooyoung and Park, Hyunwoo and Jeong, SeongAh},
  journal={arXiv preprint}, year={2020}, eprint={2001.04647}, archivePrefix={arXiv}
}"""

# int32 holds the ignore values 255 and −100 and any class id; half the Arrow size of int64.
_MAP = datasets.Sequence(datasets.Sequence(datasets.Value("int32")))


class SCLMeanIoU(evaluate.Metric):
    """Local `evaluate` metric; see the module docstring. Constructor arguments are `evaluate.Metric`'s."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features({"predictions": _MAP, "references": _MAP}),
        )

    def _compute(self, predictions: list, references: list, num_labels: int | None = None,
                 ignore_index: int = 255) -> dict:
        if num_labels is None:
            raise ValueError("SCLMeanIoU.compute needs num_labels=")
        matrix = ConfusionMatrix(num_labels, ignore_index=ignore_index)
        for index, (pred, ref) in enumerate(zip(predictions, references)):
            pred_t, ref_t = torch.from_numpy(np.asarray(pred)), torch.from_numpy(np.asarray(ref))
            if pred_t.shape != ref_t.shape:
                raise ValueError(f"example {index}: prediction {tuple(pred_t.shape)} and reference "
                                 f"{tuple(ref_t.shape)} differ in size")
            matrix.update(pred_t, ref_t)
        return matrix.compute()
