"""Configuration of DeepLabV3+ (Chen et al. 2018) as NVIDIA's `DeepWV3Plus` (Zhu et al. 2019), the SCL network."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers.configuration_utils import PreTrainedConfig, SubConfigSpec
from transformers.models.auto.configuration_auto import AutoConfig

from .configuration_wide_resnet import WideResNetConfig

# The 19 Cityscapes evaluation classes in train-id order (Cordts et al. 2016); kept here, not imported from
# sclseg.data, so that a saved model folder loads with `trust_remote_code=True` without the package.
CITYSCAPES_CLASSES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)


@strict
class DeepLabV3PlusConfig(PreTrainedConfig):
    r"""
    DeepLabV3+ head on any backbone that returns a low-level and a high-level feature map. The defaults are
    NVIDIA's `DeepWV3Plus(num_classes=19)`: WideResNet38 backbone, 137,103,936 parameters, Cityscapes labels.

    Args:
        backbone_config: the backbone's config (a `WideResNetConfig` by default, or any `AutoBackbone` config
            whose `out_features` name exactly two maps: low-level first, high-level second).
        aspp_channels: width of every ASPP branch (256).
        aspp_rates: dilation rates of the three 3×3 ASPP branches; (12, 24, 36) = DeepLab's (6, 12, 18) doubled
            for output stride 8.
        aspp_image_pooling: whether ASPP has the global-average-pooling branch (placed first, as NVIDIA's).
        low_level_channels: width of the 1×1 projection of the low-level feature (`bot_fine`, 48).
        decoder_channels: width of the two 3×3 decoder convolutions (`final`, 256).
        semantic_loss_ignore_index: label ignored by the cross-entropy of `forward(labels=...)` (255).
        batch_norm_eps / batch_norm_momentum: BatchNorm settings of the head.
    """

    model_type = "deeplabv3plus"
    sub_configs_defaults = {
        "backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="wide_resnet"),
    }

    backbone_config: dict | PreTrainedConfig | None = None
    aspp_channels: int = 256
    aspp_rates: list[int] | tuple[int, ...] = (12, 24, 36)
    aspp_image_pooling: bool = True
    low_level_channels: int = 48
    decoder_channels: int = 256
    semantic_loss_ignore_index: int = 255
    batch_norm_eps: float = 1e-5
    batch_norm_momentum: float = 0.1

    def __post_init__(self, **kwargs):
        # Build the WideResNet sub-config ourselves: the Auto registry that would resolve "wide_resnet" is
        # absent when a saved folder is loaded with `trust_remote_code=True` and no sclseg installed.
        if self.backbone_config is None:
            self.backbone_config = WideResNetConfig()
        elif isinstance(self.backbone_config, dict) and self.backbone_config.get("model_type") == "wide_resnet":
            self.backbone_config = WideResNetConfig.from_dict(self.backbone_config)
        self.aspp_rates = [int(r) for r in self.aspp_rates]
        if self.id2label is None and kwargs.get("num_labels") in (None, len(CITYSCAPES_CLASSES)):
            kwargs.pop("num_labels", None)
            self.id2label = dict(enumerate(CITYSCAPES_CLASSES))
            self.label2id = {name: i for i, name in self.id2label.items()}
        super().__post_init__(**kwargs)
        self._check_backbone_outputs()

    def to_dict(self) -> dict:
        output = super().to_dict()
        # The image processor's remote-code entry lives here, not in preprocessor_config.json: there,
        # transformers' AutoVideoProcessor would derive a non-existent "SCLVideoProcessor" from it and prompt
        # `pipeline()` users to trust remote code (transformers 5.24, video_processing_auto.py).
        auto_map = output.get("auto_map")
        if auto_map and "AutoModelForSemanticSegmentation" in auto_map:
            output["auto_map"] = {**auto_map, "AutoImageProcessor": "image_processing_scl.SCLImageProcessor"}
        return output

    def _check_backbone_outputs(self) -> None:
        out_features = getattr(self.backbone_config, "out_features", None)
        if out_features is not None and len(out_features) != 2:
            raise ValueError(
                "DeepLabV3+ needs exactly two backbone feature maps (low-level, high-level); "
                f"backbone_config.out_features = {out_features}"
            )
