"""`SCLImageProcessor`: ImageNet normalisation at full resolution (no resize by default, as the Cityscapes
protocol evaluates at 1024×2048), segmentation maps to int64 labels, optional Cityscapes labelId → train id
conversion, and `post_process_semantic_segmentation` for `pipeline("image-segmentation")`.

Uses transformers' PIL/NumPy backend so that torchvision is never needed."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from transformers.image_processing_backends import PilBackend
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, ChannelDimension, PILImageResampling
from transformers.processing_utils import ImagesKwargs, Unpack

# Label ids of the 19 evaluated Cityscapes classes in train-id order (Cordts et al. 2016). Repeated from
# sclseg.data.labels on purpose: a saved model folder must load with trust_remote_code and no sclseg installed.
_CITYSCAPES_TRAIN_ID_TO_LABEL_ID = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
_IGNORE_INDEX = 255


def _label_ids_to_train_ids(label_map: np.ndarray) -> np.ndarray:
    lut = np.full(256, _IGNORE_INDEX, dtype=np.int64)
    lut[list(_CITYSCAPES_TRAIN_ID_TO_LABEL_ID)] = np.arange(len(_CITYSCAPES_TRAIN_ID_TO_LABEL_ID))
    label_map = np.asarray(label_map).astype(np.int64)
    out = np.full(label_map.shape, _IGNORE_INDEX, dtype=np.int64)
    valid = (label_map >= 0) & (label_map < 256)
    out[valid] = lut[label_map[valid]]
    return out


class SCLImageProcessorKwargs(ImagesKwargs, total=False):
    r"""
    do_convert_label_ids (`bool`, *optional*, defaults to `self.do_convert_label_ids`):
        Treat segmentation maps as Cityscapes `*_labelIds.png` values and convert them to the 19 train ids
        (every other id becomes 255, the ignore index).
    """

    do_convert_label_ids: bool


class SCLImageProcessor(PilBackend):
    """Image processor of sclseg models: `processor(images, segmentation_maps=None)` →
    `{"pixel_values": (B,3,H,W) float32, "labels": (B,H,W) int64}`."""

    valid_kwargs = SCLImageProcessorKwargs
    model_input_names = ["pixel_values"]
    resample = PILImageResampling.BILINEAR
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    size = None
    do_resize = False
    do_center_crop = False
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    do_convert_rgb = True
    do_convert_label_ids = False

    def __init__(self, **kwargs: Unpack[SCLImageProcessorKwargs]) -> None:
        super().__init__(**kwargs)

    def preprocess(self, images, segmentation_maps=None, **kwargs: Unpack[SCLImageProcessorKwargs]) -> BatchFeature:
        """images: PIL images, (H,W,3) arrays or tensors; segmentation_maps: matching (H,W) label maps."""
        return super().preprocess(images, segmentation_maps, **kwargs)

    def _preprocess_image_like_inputs(
        self, images, segmentation_maps, do_convert_rgb, input_data_format, return_tensors, **kwargs
    ) -> BatchFeature:
        prepared = self._prepare_image_like_inputs(
            images=images, do_convert_rgb=do_convert_rgb, input_data_format=input_data_format
        )
        data = {"pixel_values": self._preprocess(prepared, return_tensors=None, **kwargs)["pixel_values"]}
        if segmentation_maps is not None:
            data["labels"] = self._preprocess_labels(segmentation_maps, **kwargs)
            self._check_label_sizes(data["pixel_values"], data["labels"])
        data["pixel_values"] = [np.asarray(p, dtype=np.float32) for p in data["pixel_values"]]
        return BatchFeature(data=data, tensor_type=return_tensors)

    def _preprocess_labels(self, segmentation_maps, do_convert_label_ids: bool, **kwargs) -> list[np.ndarray]:
        maps = self._prepare_image_like_inputs(
            images=segmentation_maps, expected_ndims=2, do_convert_rgb=False, input_data_format=ChannelDimension.FIRST
        )
        label_kwargs = {**kwargs, "do_rescale": False, "do_normalize": False, "resample": PILImageResampling.NEAREST}
        maps = self._preprocess(maps, return_tensors=None, **label_kwargs)["pixel_values"]
        maps = [np.asarray(m)[0].astype(np.int64) for m in maps]
        return [_label_ids_to_train_ids(m) for m in maps] if do_convert_label_ids else maps

    @staticmethod
    def _check_label_sizes(pixel_values: list[np.ndarray], labels: list[np.ndarray]) -> None:
        if len(pixel_values) != len(labels):
            raise ValueError(f"got {len(pixel_values)} images but {len(labels)} segmentation maps")
        for i, (image, label) in enumerate(zip(pixel_values, labels)):
            if tuple(image.shape[-2:]) != tuple(label.shape):
                raise ValueError(
                    f"segmentation map {i} has size {tuple(label.shape)} but its image has {tuple(image.shape[-2:])}"
                )

    def to_dict(self) -> dict:
        # No `auto_map`/`image_processor_type` here: the model's config.json carries the remote-code entry, so
        # AutoImageProcessor resolves through the model config (see DeepLabV3PlusConfig.to_dict).
        output = super().to_dict()
        output.pop("auto_map", None)
        output.pop("image_processor_type", None)
        return output

    def post_process_semantic_segmentation(
        self, outputs, target_sizes: list[tuple[int, int]] | None = None
    ) -> list[torch.Tensor]:
        """outputs.logits (B, C, h, w) → list of B (H, W) int64 class-id maps, resized (bilinear, align_corners
        as the model) to `target_sizes[i]` when given."""
        logits = outputs.logits
        if target_sizes is not None and len(target_sizes) != logits.shape[0]:
            raise ValueError(f"got {len(target_sizes)} target sizes for a batch of {logits.shape[0]} predictions")
        maps = []
        for i in range(logits.shape[0]):
            item = logits[i : i + 1]
            if target_sizes is not None and tuple(item.shape[-2:]) != tuple(int(s) for s in target_sizes[i]):
                size = tuple(int(s) for s in target_sizes[i])
                item = F.interpolate(item.float(), size=size, mode="bilinear", align_corners=True)
            maps.append(item[0].argmax(dim=0))
        return maps
