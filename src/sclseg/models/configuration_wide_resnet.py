"""Configuration of the WideResNet38 backbone (Wu, Shen, van den Hengel 2019), as used by Zhu et al. 2019
(NVIDIA `wider_resnet38_a2`, dilated) and by the SCL paper (Kim, Jang, Park 2020)."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers.backbone_utils import BackboneConfigMixin
from transformers.configuration_utils import PreTrainedConfig


@strict
class WideResNetConfig(BackboneConfigMixin, PreTrainedConfig):
    r"""
    Pre-activation ("identity mapping") wide residual network. The defaults are NVIDIA's dilated
    `wider_resnet38_a2` (105,062,720 parameters without its ImageNet classifier), output stride 8.

    Args:
        num_channels: input image channels.
        stem_channels: width of the single 3×3 stem convolution (`mod1`).
        depths: residual blocks per stage (`mod2` … `mod7`).
        stage_channels: per stage, the widths of a block's convolutions: two entries = basic block
            (3×3, 3×3), three entries = bottleneck (1×1, 3×3, 1×1). The last entry is the stage's output width.
        stage_strides: stride of each stage's first block.
        stage_pooling: whether a 3×3/2 max-pool (padding 1) precedes the stage (`pool2`, `pool3`).
        stage_dilations: dilation of the 3×3 convolutions of each stage (2 for `mod5`, 4 for `mod6`/`mod7`
            keep output stride 8, Zhu et al. 2019).
        stage_dropout: `Dropout2d` probability inside the blocks of each stage (0.3 in `mod6`, 0.5 in `mod7`).
        batch_norm_eps / batch_norm_momentum: BatchNorm settings (PyTorch defaults, as NVIDIA's).
        out_features / out_indices: which of `stem`, `stage1` … `stage6` to return; DeepLabV3+ takes
            `stage1` (128 ch, stride 2: its low-level feature) and `stage6` (4096 ch, stride 8).
    """

    model_type = "wide_resnet"

    num_channels: int = 3
    stem_channels: int = 64
    depths: list[int] | tuple[int, ...] = (3, 3, 6, 3, 1, 1)
    stage_channels: list[list[int]] | tuple[tuple[int, ...], ...] = (
        (128, 128),
        (256, 256),
        (512, 512),
        (512, 1024),
        (512, 1024, 2048),
        (1024, 2048, 4096),
    )
    stage_strides: list[int] | tuple[int, ...] = (1, 1, 2, 1, 1, 1)
    stage_pooling: list[bool] | tuple[bool, ...] = (True, True, False, False, False, False)
    stage_dilations: list[int] | tuple[int, ...] = (1, 1, 1, 2, 4, 4)
    stage_dropout: list[float] | tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.3, 0.5)
    batch_norm_eps: float = 1e-5
    batch_norm_momentum: float = 0.1

    def __post_init__(self, **kwargs):
        self.depths = [int(d) for d in self.depths]
        self.stage_channels = [[int(c) for c in widths] for widths in self.stage_channels]
        self.stage_strides = [int(s) for s in self.stage_strides]
        self.stage_pooling = [bool(p) for p in self.stage_pooling]
        self.stage_dilations = [int(d) for d in self.stage_dilations]
        self.stage_dropout = [float(p) for p in self.stage_dropout]
        self._check_stage_lists()
        self.stage_names = ["stem"] + [f"stage{i}" for i in range(1, len(self.depths) + 1)]
        out_features = kwargs.pop("out_features", None)
        out_indices = kwargs.pop("out_indices", None)
        if out_features is None and out_indices is None:
            out_features = ["stage1", self.stage_names[-1]]
        self.set_output_features_output_indices(out_features=out_features, out_indices=out_indices)
        super().__post_init__(**kwargs)

    def _check_stage_lists(self) -> None:
        n = len(self.depths)
        for name in ("stage_channels", "stage_strides", "stage_pooling", "stage_dilations", "stage_dropout"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"`{name}` has {len(getattr(self, name))} entries but `depths` has {n} stages")
        for i, widths in enumerate(self.stage_channels):
            if len(widths) not in (2, 3):
                raise ValueError(f"`stage_channels[{i}]` must have 2 (basic) or 3 (bottleneck) widths, got {widths}")
        if any(d < 1 for d in self.depths):
            raise ValueError(f"every stage needs at least one block, got depths={self.depths}")
