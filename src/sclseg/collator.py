"""Batching of segmentation samples for `Trainer`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def segmentation_collator(features: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack `pixel_values` (3, H, W) and `labels` (H, W) into batches; keep `image_id` as a list.

    Unlike `default_data_collator` it accepts the string ids our datasets carry (they let a run record which
    labeled images each process trained on); the trainer removes them before calling the model.
    """
    if not features:
        raise ValueError("cannot collate an empty batch")
    batch: dict[str, Any] = {"pixel_values": torch.stack([f["pixel_values"] for f in features])}
    if features[0].get("labels") is not None:
        batch["labels"] = torch.stack([torch.as_tensor(f["labels"], dtype=torch.long) for f in features])
    if "image_id" in features[0]:
        batch["image_id"] = [f["image_id"] for f in features]
    return batch
