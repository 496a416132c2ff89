"""DeepLabV3+ (Chen et al. 2018) in the layout of NVIDIA's `DeepWV3Plus` (Zhu et al. 2019), the network of the
SCL paper: ASPP on the backbone's last map, a 48-channel projection of its stride-2 map, a two-convolution
decoder, logits upsampled to the input size. All resizing is bilinear with `align_corners=True`, as NVIDIA's."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.backbone_utils import load_backbone
from transformers.modeling_outputs import SemanticSegmenterOutput
from transformers.modeling_utils import PreTrainedModel

from .configuration_deeplabv3plus import DeepLabV3PlusConfig
from .configuration_wide_resnet import WideResNetConfig
from .modeling_wide_resnet import WideResNetBackbone, reset_batch_norm


class ConvNormReLU(nn.Module):
    """Conv (no bias) → BatchNorm → ReLU."""

    def __init__(self, config: DeepLabV3PlusConfig, cin: int, cout: int, kernel: int, dilation: int = 1) -> None:
        super().__init__()
        padding = dilation * (kernel // 2)
        self.conv = nn.Conv2d(cin, cout, kernel, padding=padding, dilation=dilation, bias=False)
        self.norm = nn.BatchNorm2d(cout, eps=config.batch_norm_eps, momentum=config.batch_norm_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)), inplace=True)


class DeepLabV3PlusASPP(nn.Module):
    """Atrous spatial pyramid pooling. Output channel order = NVIDIA's: image pooling first, then the 1×1
    branch, then the 3×3 branches by rate; the concatenation is projected by a 1×1 conv without BN/ReLU."""

    def __init__(self, config: DeepLabV3PlusConfig, in_channels: int) -> None:
        super().__init__()
        c = config.aspp_channels
        self.image_pooling = ConvNormReLU(config, in_channels, c, 1) if config.aspp_image_pooling else None
        branches = [ConvNormReLU(config, in_channels, c, 1)]
        branches += [ConvNormReLU(config, in_channels, c, 3, dilation=r) for r in config.aspp_rates]
        self.branches = nn.ModuleList(branches)
        num_maps = len(branches) + (1 if config.aspp_image_pooling else 0)
        self.project = nn.Conv2d(num_maps * c, c, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = []
        if self.image_pooling is not None:
            pooled = self.image_pooling(x.mean(dim=(2, 3), keepdim=True))
            # Upsampling a 1×1 map with align_corners=True is a broadcast.
            maps.append(pooled.expand(-1, -1, x.shape[2], x.shape[3]))
        maps += [branch(x) for branch in self.branches]
        return self.project(torch.cat(maps, dim=1))


class DeepLabV3PlusDecoder(nn.Module):
    """[low-level projection (48), upsampled ASPP (256)] → 3×3 BN ReLU → 3×3 BN ReLU → 1×1 classifier."""

    def __init__(self, config: DeepLabV3PlusConfig, low_level_in: int) -> None:
        super().__init__()
        self.low_level_project = nn.Conv2d(low_level_in, config.low_level_channels, 1, bias=False)
        fused_in = config.low_level_channels + config.aspp_channels
        self.fuse1 = ConvNormReLU(config, fused_in, config.decoder_channels, 3)
        self.fuse2 = ConvNormReLU(config, config.decoder_channels, config.decoder_channels, 3)
        self.classifier = nn.Conv2d(config.decoder_channels, config.num_labels, 1, bias=False)
        # NVIDIA initialises exactly these (its `final` block) with Kaiming normal; read by `_init_weights`.
        for conv in (self.fuse1.conv, self.fuse2.conv, self.classifier):
            conv.kaiming_fan_in_init = True

    def forward(self, low_level: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        context = F.interpolate(context, size=low_level.shape[-2:], mode="bilinear", align_corners=True)
        fused = torch.cat([self.low_level_project(low_level), context], dim=1)
        return self.classifier(self.fuse2(self.fuse1(fused)))


class DeepLabV3PlusPreTrainedModel(PreTrainedModel):
    config: DeepLabV3PlusConfig
    config_class = DeepLabV3PlusConfig
    base_model_prefix = "deeplabv3plus"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def _init_weights(self, module: nn.Module) -> None:
        # NVIDIA: PyTorch's default init for ASPP and the projections, Kaiming normal (fan_in, ReLU gain) and
        # BN (1, 0) for the decoder (`initialize_weights(self.final)` in Zhu et al.'s deepv3.py).
        # The decision is per convolution: transformers skips parameter-less container modules of custom code.
        if isinstance(module, nn.Conv2d) and getattr(module, "kaiming_fan_in_init", False):
            init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(module, nn.Conv2d):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
        elif isinstance(module, nn.BatchNorm2d):
            reset_batch_norm(module)


def _build_backbone(config: DeepLabV3PlusConfig) -> nn.Module:
    # Build WideResNet directly (not through AutoBackbone) so remote-code loading needs no registry. Compare
    # model types, not classes: remote-code loading may import configuration_wide_resnet twice.
    if getattr(config.backbone_config, "model_type", None) == WideResNetConfig.model_type:
        return WideResNetBackbone(config.backbone_config)
    return load_backbone(config)


class DeepLabV3PlusForSemanticSegmentation(DeepLabV3PlusPreTrainedModel):
    """DeepLabV3+ for semantic segmentation; logits come out at the input resolution."""

    def __init__(self, config: DeepLabV3PlusConfig) -> None:
        super().__init__(config)
        self.backbone = _build_backbone(config)
        low_channels, high_channels = self.backbone.channels
        self.aspp = DeepLabV3PlusASPP(config, high_channels)
        self.decoder = DeepLabV3PlusDecoder(config, low_channels)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> SemanticSegmenterOutput | tuple:
        """
        pixel_values: (B, 3, H, W) float, normalised with the ImageNet mean/std.
        labels: optional (B, H, W) int64 train ids; `config.semantic_loss_ignore_index` (255) is ignored.
        Returns `SemanticSegmenterOutput` with `logits` (B, num_labels, H, W) and, with labels, the mean
        cross-entropy over non-ignored pixels.
        """
        self._check_inputs(pixel_values, labels)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        features = self.backbone(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        low_level, high_level = features.feature_maps
        logits = self.decoder(low_level, self.aspp(high_level))
        logits = F.interpolate(logits, size=pixel_values.shape[-2:], mode="bilinear", align_corners=True)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float(), labels, ignore_index=self.config.semantic_loss_ignore_index)
        hidden_states = features.hidden_states if output_hidden_states else None
        if not return_dict:
            output = (logits,) + ((hidden_states,) if output_hidden_states else ())
            return ((loss,) + output) if loss is not None else output
        return SemanticSegmenterOutput(loss=loss, logits=logits, hidden_states=hidden_states, attentions=None)

    def _check_inputs(self, pixel_values: torch.Tensor, labels: torch.Tensor | None) -> None:
        channels = getattr(self.config.backbone_config, "num_channels", 3)
        if pixel_values.dim() != 4 or pixel_values.shape[1] != channels:
            raise ValueError(
                f"`pixel_values` must be (batch, {channels}, height, width); got shape {tuple(pixel_values.shape)}"
            )
        if labels is None:
            return
        expected = (pixel_values.shape[0], *pixel_values.shape[2:])
        if tuple(labels.shape) != expected:
            raise ValueError(
                f"`labels` must be (batch, height, width) = {expected} to match `pixel_values`; "
                f"got shape {tuple(labels.shape)}"
            )
        if labels.dtype != torch.long:
            raise ValueError(f"`labels` must be int64 class ids, got dtype {labels.dtype}")
