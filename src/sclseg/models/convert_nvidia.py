"""Convert NVIDIA `DeepWV3Plus` checkpoints (Zhu et al. 2019, github.com/NVIDIA/semantic-segmentation) and the
ImageNet `wider_resnet38.pth.tar` backbone into sclseg models.

Every NVIDIA tensor maps to exactly one of ours by a fixed renaming; a key that is missing, unexpected or of the
wrong shape is an error that names it (NVIDIA's own loader silently skips such keys). Files are read with
`torch.load(weights_only=True)`: a pickle that needs code execution is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch

from .configuration_deeplabv3plus import DeepLabV3PlusConfig
from .configuration_wide_resnet import WideResNetConfig
from .modeling_deeplabv3plus import DeepLabV3PlusForSemanticSegmentation
from .modeling_wide_resnet import WideResNetBackbone

_BLOCK_PARTS = {
    "bn1.0": "norm1.0",
    "convs.conv1": "conv1",
    "convs.bn2.0": "norm2.0",
    "convs.conv2": "conv2",
    "convs.bn3.0": "norm3.0",
    "convs.conv3": "conv3",
    "proj_conv": "shortcut",
}
_HEAD_PREFIXES = {
    "aspp.img_conv.0": "aspp.image_pooling.conv",
    "aspp.img_conv.1": "aspp.image_pooling.norm",
    "bot_aspp": "aspp.project",
    "bot_fine": "decoder.low_level_project",
    "final.0": "decoder.fuse1.conv",
    "final.1": "decoder.fuse1.norm",
    "final.3": "decoder.fuse2.conv",
    "final.4": "decoder.fuse2.norm",
    "final.6": "decoder.classifier",
}
_BLOCK_KEY = re.compile(r"mod(\d+)\.block(\d+)\.(.+)\.(\w+)$")
_ASPP_KEY = re.compile(r"aspp\.features\.(\d+)\.([01])\.(\w+)$")
# Parts of the ImageNet classifier that DeepLabV3+ drops (Zhu et al. build the backbone without them).
_IMAGENET_ONLY = ("bn_out.", "classifier.")


class CheckpointError(ValueError):
    """A checkpoint that cannot be converted exactly."""


def nvidia_backbone_key(key: str) -> str:
    """`mod3.block2.convs.bn2.0.weight` → `stages.1.blocks.1.norm2.0.weight` (names inside WideResNetBackbone)."""
    if key.startswith("mod1.conv1."):
        return "stem." + key[len("mod1.conv1.") :]
    match = _BLOCK_KEY.match(key)
    if match is None or match.group(3) not in _BLOCK_PARTS or int(match.group(1)) < 2:
        raise KeyError(key)
    stage, block, part, leaf = int(match.group(1)) - 2, int(match.group(2)) - 1, match.group(3), match.group(4)
    return f"stages.{stage}.blocks.{block}.{_BLOCK_PARTS[part]}.{leaf}"


def nvidia_key(key: str) -> str:
    """Name of an NVIDIA `DeepWV3Plus` tensor in `DeepLabV3PlusForSemanticSegmentation`."""
    if key.startswith("mod"):
        return "backbone." + nvidia_backbone_key(key)
    match = _ASPP_KEY.match(key)
    if match is not None:
        return f"aspp.branches.{match.group(1)}.{'conv' if match.group(2) == '0' else 'norm'}.{match.group(3)}"
    prefix, _, leaf = key.rpartition(".")
    if prefix in _HEAD_PREFIXES:
        return f"{_HEAD_PREFIXES[prefix]}.{leaf}"
    raise KeyError(key)


def load_nvidia_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read `{'state_dict': ...}` or a bare state dict, strip DataParallel's `module.` prefix."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError or EOFError depending on the damage
        raise CheckpointError(
            f"{path} is not a PyTorch checkpoint that can be read safely (torch.load(weights_only=True) failed: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from err
    state = obj.get("state_dict", obj) if isinstance(obj, Mapping) else None
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors (expected {{'state_dict': {{name: tensor}}}})")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _rename_all(state: Mapping[str, torch.Tensor], rename, source: Path) -> dict[str, torch.Tensor]:
    renamed = {}
    for key, value in state.items():
        try:
            renamed[rename(key)] = value
        except KeyError:
            raise CheckpointError(f"{source}: unexpected tensor '{key}' (not part of NVIDIA's DeepWV3Plus)") from None
    return renamed


def _load_exactly(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: Path) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}, "
            f"unexpected tensors {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}"
        )
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape) or value.dtype != expected[key].dtype:
            raise CheckpointError(
                f"{source}: tensor '{key}' has shape {tuple(value.shape)} and dtype {value.dtype}, expected "
                f"{tuple(expected[key].shape)} and {expected[key].dtype}"
            )
    # The model was built on the meta device: `assign` adopts the checkpoint's tensors, so 137M parameters are
    # neither allocated twice nor initialised only to be overwritten.
    model.load_state_dict({k: v.contiguous() for k, v in state.items()}, strict=True, assign=True)


def convert_deepwv3plus(
    checkpoint: str | Path, config: DeepLabV3PlusConfig | None = None
) -> DeepLabV3PlusForSemanticSegmentation:
    """NVIDIA `DeepWV3Plus` checkpoint → `DeepLabV3PlusForSemanticSegmentation` (eval mode, same logits)."""
    checkpoint = Path(checkpoint)
    state = load_nvidia_state_dict(checkpoint)
    config = config or DeepLabV3PlusConfig()
    classifier = state.get("final.6.weight")
    if classifier is not None and classifier.shape[0] != config.num_labels:
        raise CheckpointError(
            f"{checkpoint} has {classifier.shape[0]} classes but the target config has {config.num_labels}; "
            f"pass --num-labels {classifier.shape[0]}"
        )
    with torch.device("meta"):
        model = DeepLabV3PlusForSemanticSegmentation(config)
    _load_exactly(model, _rename_all(state, nvidia_key, checkpoint), checkpoint)
    return model.eval()


def convert_wider_resnet38(checkpoint: str | Path, config: WideResNetConfig | None = None) -> WideResNetBackbone:
    """ImageNet `wider_resnet38.pth.tar` → `WideResNetBackbone` (drops `bn_out` and `classifier`)."""
    checkpoint = Path(checkpoint)
    state = load_nvidia_state_dict(checkpoint)
    state = {k: v for k, v in state.items() if not k.startswith(_IMAGENET_ONLY)}
    with torch.device("meta"):
        model = WideResNetBackbone(config or WideResNetConfig())
    _load_exactly(model, _rename_all(state, nvidia_backbone_key, checkpoint), checkpoint)
    return model.eval()
