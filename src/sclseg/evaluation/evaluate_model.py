"""Evaluate a segmentation model on a list of labeled Cityscapes items: the loop behind `sclseg evaluate`.

Each process takes every `world_size`-th image (rank, rank + world, ...), predicts it with
`predict_probabilities` (whole / sliding / flip / scales), adds the argmax to a `ConfusionMatrix` and drops the
probabilities; at the end the C×C counts are summed over processes (gathering full-resolution
logits would cost 19 × 1024 × 2048 floats per image and process). With one process it is a plain loop; under
`accelerate launch` the process group must already be initialised (e.g. by `accelerate.PartialState()`), which
`sclseg evaluate` does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..data.cityscapes import CityscapesItem, read_image, read_label
from .inference import predict_probabilities
from .metrics import ConfusionMatrix

__all__ = ["EvaluationExample", "InferenceOptions", "evaluate_model", "load_model_and_processor", "predict_train_ids"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferenceOptions:
    """How each image is predicted (see `predict_probabilities`); `batch_size` counts windows (sliding) or
    images (whole) per forward."""

    mode: str = "whole"
    tile: int = 1024
    stride: int | None = None
    flip: bool = False
    scales: tuple[float, ...] = (1.0,)
    batch_size: int = 4
    autocast_dtype: torch.dtype | None = None

    def describe(self) -> dict[str, object]:
        """The options as JSON-ready values (what `--json` and the model card record)."""
        return {"mode": self.mode, "tile": self.tile if self.mode == "sliding" else None,
                "stride": self.stride, "flip": self.flip, "scales": list(self.scales)}


@dataclass
class EvaluationExample:
    """One evaluated image kept for pictures: (H, W, 3) uint8 RGB, (H, W) uint8 train ids (255 = ignore)."""

    image_id: str
    image: np.ndarray
    label: np.ndarray
    prediction: np.ndarray = field(repr=False)


def load_model_and_processor(name_or_path: str | Path, **kwargs) -> tuple[nn.Module, object]:
    """`AutoModelForSemanticSegmentation` + `AutoImageProcessor` from a local folder or a Hub id.

    A folder (or repo) without a processor config gets `SCLImageProcessor()` defaults (ImageNet mean/std, no
    resize) and a logged warning, since converted or hand-saved checkpoints often ship weights only.
    `kwargs` go to both `from_pretrained` calls (e.g. `revision`, `trust_remote_code`).
    """
    import sclseg  # noqa: F401  registers the Auto* classes
    from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation

    from ..models import SCLImageProcessor

    model = AutoModelForSemanticSegmentation.from_pretrained(str(name_or_path), **kwargs)
    try:
        processor = AutoImageProcessor.from_pretrained(str(name_or_path), **kwargs)
    except (OSError, ValueError):  # transformers raises OSError for a missing preprocessor_config.json
        logger.warning("%s has no image processor (preprocessor_config.json); using SCLImageProcessor() defaults: "
                       "ImageNet mean/std, no resize", name_or_path)
        processor = SCLImageProcessor()
    return model, processor


def predict_train_ids(model: nn.Module, processor, image: np.ndarray, options: InferenceOptions,
                      device: torch.device | str = "cpu") -> np.ndarray:
    """(H, W, 3) uint8 RGB image → (H, W) uint8 predicted class ids (int32 above 255 classes) (train ids for Cityscapes
    models) at the image size. The processor normalises (and may resize: the probabilities are then resized back to the
    image size, bilinear with align_corners=True like the model, before the argmax)."""
    pixel_values = processor(images=[image], return_tensors="pt")["pixel_values"].to(device)
    probs = predict_probabilities(model, pixel_values, mode=options.mode, tile=options.tile, stride=options.stride,
                                  flip=options.flip, scales=options.scales, batch_size=options.batch_size,
                                  autocast_dtype=options.autocast_dtype)
    if tuple(probs.shape[-2:]) != image.shape[:2]:
        probs = torch.nn.functional.interpolate(probs, size=image.shape[:2], mode="bilinear", align_corners=True)
    # uint8 is what PNG writers and the label LUTs take; wider only for models with more than 255 classes
    dtype = torch.uint8 if probs.shape[1] <= 255 else torch.int32
    return probs[0].argmax(dim=0).to(dtype).cpu().numpy()


def _rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def evaluate_model(
    model: nn.Module,
    processor,
    items: Sequence[CityscapesItem],
    options: InferenceOptions = InferenceOptions(),
    *,
    device: torch.device | str = "cpu",
    keep_examples: int = 0,
    progress: bool = False,
) -> dict[str, object]:
    """Scores of `model` on labeled `items`, summed over all processes.

    Returns a dict: `mean_iou`, `pixel_accuracy`, `mean_accuracy` (floats), `per_class_iou` (C floats, NaN for
    classes absent from ground truth and predictions), `confusion` ((C, C) int64 tensor, rows ground truth),
    `num_images` (all processes), and `examples` (this process's first `keep_examples` `EvaluationExample`s).
    """
    rank, world = _rank_and_world()
    num_classes = int(model.config.num_labels)
    # gloo reduces CPU tensors, NCCL CUDA ones: keep the counts on the evaluation device.
    matrix = ConfusionMatrix(num_classes, device=device)
    model.to(device)
    shard = list(items)[rank::world]
    examples: list[EvaluationExample] = []
    from tqdm.auto import tqdm

    for item in tqdm(shard, desc=f"evaluating ({world} process{'es' if world > 1 else ''})", unit="image",
                     disable=not progress or rank != 0):
        if item.label_path is None:
            raise ValueError(f"image {item.image_path} has no label file; evaluation needs a labeled split")
        image, label = read_image(item.image_path), read_label(item.label_path)
        if label.shape != image.shape[:2]:
            raise ValueError(f"image {item.image_path} is {image.shape[1]}x{image.shape[0]} but its label "
                             f"{item.label_path} is {label.shape[1]}x{label.shape[0]} (width x height)")
        prediction = predict_train_ids(model, processor, image, options, device)
        matrix.update(torch.from_numpy(prediction).to(device), torch.from_numpy(label).to(device))
        if len(examples) < keep_examples:
            examples.append(EvaluationExample(item.image_id, image, label, prediction))
    matrix.all_reduce()
    num_images = torch.tensor([len(shard)], device=device)
    if world > 1:
        dist.all_reduce(num_images)
    scores = matrix.compute()
    return {**scores, "confusion": matrix.matrix.cpu() if matrix.matrix is not None else None,
            "num_images": int(num_images.item()), "examples": examples}
