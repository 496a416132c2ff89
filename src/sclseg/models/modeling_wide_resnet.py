"""WideResNet38 backbone: pre-activation residual blocks (He et al. 2016, "identity mappings"), widths and
dilations of NVIDIA's `wider_resnet38_a2` (Zhu et al. 2019). Weight names map 1:1 to NVIDIA's
(see `convert_nvidia.py`)."""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers import initialization as init
from transformers.backbone_utils import BackboneMixin
from transformers.modeling_outputs import BackboneOutput
from transformers.modeling_utils import PreTrainedModel

from .configuration_wide_resnet import WideResNetConfig


def _bn_relu(channels: int, config: WideResNetConfig) -> nn.Sequential:
    return nn.Sequential(
        nn.BatchNorm2d(channels, eps=config.batch_norm_eps, momentum=config.batch_norm_momentum),
        nn.ReLU(inplace=True),
    )


class WideResNetBlock(nn.Module):
    """Pre-activation block: `bn1 = BN+ReLU(x)`; `out = body(bn1) + shortcut`, where the shortcut is a 1×1
    projection of `bn1` when the stride or width changes and `x` itself otherwise.

    Basic body (two widths): 3×3 (stride s, dilation d) → BN+ReLU → [Dropout2d] → 3×3 (dilation d).
    Bottleneck body (three widths): 1×1 (stride s) → BN+ReLU → 3×3 (d) → BN+ReLU → [Dropout2d] → 1×1.
    """

    def __init__(
        self, config: WideResNetConfig, in_channels: int, widths: list[int], stride: int, dilation: int, dropout: float
    ) -> None:
        super().__init__()
        self.norm1 = _bn_relu(in_channels, config)
        self.shortcut = (
            nn.Conv2d(in_channels, widths[-1], 1, stride=stride, bias=False)
            if stride != 1 or in_channels != widths[-1]
            else None
        )
        if len(widths) == 2:
            self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride, padding=dilation, dilation=dilation, bias=False)
            self.norm2 = _bn_relu(widths[0], config)
            self.conv2 = nn.Conv2d(widths[0], widths[1], 3, padding=dilation, dilation=dilation, bias=False)
            self.norm3, self.conv3 = None, None
        else:
            self.conv1 = nn.Conv2d(in_channels, widths[0], 1, stride, bias=False)
            self.norm2 = _bn_relu(widths[0], config)
            self.conv2 = nn.Conv2d(widths[0], widths[1], 3, padding=dilation, dilation=dilation, bias=False)
            self.norm3 = _bn_relu(widths[1], config)
            self.conv3 = nn.Conv2d(widths[1], widths[2], 1, bias=False)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.norm1(x)
        shortcut = x if self.shortcut is None else self.shortcut(pre)
        out = self.norm2(self.conv1(pre))
        if self.conv3 is None:
            return self.conv2(self.dropout(out)) + shortcut
        out = self.norm3(self.conv2(out))
        return self.conv3(self.dropout(out)) + shortcut


class WideResNetStage(nn.Module):
    """Optional 3×3/2 max-pool, then `depth` blocks; only the first block strides."""

    def __init__(self, config: WideResNetConfig, index: int, in_channels: int) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(3, stride=2, padding=1) if config.stage_pooling[index] else nn.Identity()
        widths = config.stage_channels[index]
        blocks = []
        for b in range(config.depths[index]):
            stride = config.stage_strides[index] if b == 0 else 1
            blocks.append(
                WideResNetBlock(
                    config, in_channels, widths, stride, config.stage_dilations[index], config.stage_dropout[index]
                )
            )
            in_channels = widths[-1]
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)
        for block in self.blocks:
            x = block(x)
        return x


def reset_batch_norm(module: nn.BatchNorm2d) -> None:
    """Identity BatchNorm: weight 1, bias 0, running mean 0 and variance 1 (guarded: loaded weights stay)."""
    init.ones_(module.weight)
    init.zeros_(module.bias)
    init.zeros_(module.running_mean)
    init.ones_(module.running_var)
    init.zeros_(module.num_batches_tracked)


class WideResNetPreTrainedModel(PreTrainedModel):
    config: WideResNetConfig
    config_class = WideResNetConfig
    base_model_prefix = "wide_resnet"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def _init_weights(self, module: nn.Module) -> None:
        # Kaiming normal (fan_out, ReLU gain) for fresh backbones, as torchvision/timm ResNets: NVIDIA only ever
        # trains this backbone from ImageNet weights, so it specifies no initialisation of its own.
        if isinstance(module, nn.Conv2d):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            reset_batch_norm(module)


class WideResNetBackbone(BackboneMixin, WideResNetPreTrainedModel):
    """Returns the feature maps named by `config.out_features` (`stem`, `stage1` … `stage6`)."""

    has_attentions = False

    def __init__(self, config: WideResNetConfig) -> None:
        super().__init__(config)
        self.stem = nn.Conv2d(config.num_channels, config.stem_channels, 3, padding=1, bias=False)
        channels = config.stem_channels
        stages = []
        for i in range(len(config.depths)):
            stages.append(WideResNetStage(config, i, channels))
            channels = config.stage_channels[i][-1]
        self.stages = nn.ModuleList(stages)
        self.num_features = [config.stem_channels] + [widths[-1] for widths in config.stage_channels]
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BackboneOutput | tuple:
        """pixel_values (B, num_channels, H, W) → `BackboneOutput.feature_maps`, one per `out_features`."""
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        wanted = set(self.out_features)
        hidden = self.stem(pixel_values)
        feature_maps = [hidden] if "stem" in wanted else []
        hidden_states = [hidden] if output_hidden_states else None
        for name, stage in zip(self.stage_names[1:], self.stages):
            hidden = stage(hidden)
            if name in wanted:
                feature_maps.append(hidden)
            if output_hidden_states:
                hidden_states.append(hidden)
        hidden_states = tuple(hidden_states) if output_hidden_states else None
        if not return_dict:
            return (tuple(feature_maps),) + ((hidden_states,) if output_hidden_states else ())
        return BackboneOutput(feature_maps=tuple(feature_maps), hidden_states=hidden_states, attentions=None)


def count_parameters(module: nn.Module) -> int:
    """Number of parameter elements (BatchNorm weight and bias included, running statistics not)."""
    return sum(math.prod(p.shape) for p in module.parameters())
