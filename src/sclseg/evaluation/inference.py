"""Class probabilities for whole images: whole-image or sliding-window forwards, horizontal flip, multi-scale.

This is the Cityscapes evaluation protocol of the paper (Kim et al. 2020, arXiv:2001.04647: sliding window, flip,
scales 0.5/1.0/2.0) written so that every pixel is an exact average:

- Sliding windows: stride ⌈2/3·tile⌉ by default (1024 → 683), windows on a regular grid whose last window is
  snapped to the border, so windows never leave the image and nothing is padded. Each pixel's summed
  probabilities are divided by the number of windows that really cover it. (The count in NVIDIA's
  semantic-segmentation code is wrong; with a true count a constant model gives back its constant, which
  tests/test_inference.py checks.)
- A dimension smaller than the tile uses a window of the whole dimension (a 512×1024 image with tile 1024 is
  one 512×1024 window): no zero padding, so no padded pixels leak into the softmax context.
- Flip: the horizontally flipped input is predicted and its probabilities flipped back, then averaged with the
  unflipped ones, per window.
- Scales: the input is resized (bilinear, align_corners=True, as our DeepLabV3+), predicted, its probabilities
  resized back to the input size the same way, and all scales averaged with equal weight.

Memory is bounded by the forward batch (`batch_size` windows of at most tile×tile) plus one float32 (B,C,H,W)
accumulator per scale; windows are never stacked all at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["predict_probabilities", "window_starts"]

_MODES = ("whole", "sliding")


def window_starts(size: int, tile: int, stride: int) -> list[int]:
    """Start offsets of the windows along one dimension of length `size`.

    Windows have length `min(tile, size)`; starts are 0, stride, 2·stride, … while the window fits, and the last
    window is snapped to the border (start `size − tile`) when the grid does not end exactly there.
    E.g. size 2048, tile 1024, stride 683 → [0, 683, 1024]; size 1024, tile 1024 → [0]; size 500, tile 1024 → [0].
    """
    if size <= tile:
        return [0]
    last = size - tile
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)
    return starts


def _validate(pixel_values: torch.Tensor, mode: str, tile: int, stride: int | None, scales: Sequence[float],
              batch_size: int) -> None:
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if pixel_values.dim() != 4:
        raise ValueError(f"pixel_values must be 4-D (B, C, H, W), got shape {tuple(pixel_values.shape)}")
    if 0 in pixel_values.shape:
        raise ValueError(f"pixel_values must not be empty, got shape {tuple(pixel_values.shape)}")
    if not pixel_values.is_floating_point():
        raise ValueError(f"pixel_values must be a floating-point tensor, got {pixel_values.dtype}")
    if isinstance(tile, bool) or not isinstance(tile, int) or tile <= 0:
        raise ValueError(f"tile must be a positive int, got {tile!r}")
    if stride is not None and (isinstance(stride, bool) or not isinstance(stride, int) or not 0 < stride <= tile):
        raise ValueError(f"stride must be an int in (0, tile={tile}], got {stride!r}")
    if len(scales) == 0 or any(not (isinstance(s, (int, float)) and math.isfinite(s) and s > 0) for s in scales):
        raise ValueError(f"scales must be a non-empty sequence of positive finite numbers, got {scales!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear, align_corners=True (our DeepLabV3+ and NVIDIA's resize this way); identity at the same size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


_Logits = Callable[[torch.Tensor], torch.Tensor]


def _forward(logits_of: _Logits, x: torch.Tensor, flip: bool) -> torch.Tensor:
    """Softmax probabilities (N, C, h, w) float32 for inputs `x` (N, 3, h, w); with `flip`, the mean of the plain
    and the flipped-back prediction of the mirrored input (two forwards, so the forward batch stays `N`).
    Logits are resized and normalised in float32, outside autocast."""
    probs = _resize(logits_of(x).float(), x.shape[-2:]).softmax(dim=1)
    if flip:
        mirrored = _resize(logits_of(x.flip(-1)).float(), x.shape[-2:]).softmax(dim=1).flip(-1)
        probs = (probs + mirrored) * 0.5
    return probs


def _predict_whole(logits_of: _Logits, x: torch.Tensor, flip: bool, batch_size: int) -> torch.Tensor:
    """Whole-image probabilities (B, C, H, W), `batch_size` images per forward."""
    return torch.cat([_forward(logits_of, chunk, flip) for chunk in x.split(batch_size)])


def _coverage(size: int, window: int, starts: list[int], device: torch.device) -> torch.Tensor:
    """How many windows cover each position of one dimension, (size,) float32."""
    count = torch.zeros(size, device=device)
    for start in starts:
        count[start:start + window] += 1
    return count


def _predict_sliding(logits_of: _Logits, x: torch.Tensor, flip: bool, batch_size: int, tile: int,
                     stride: int) -> torch.Tensor:
    """Sliding-window probabilities (B, C, H, W): windows of min(tile, H)×min(tile, W) on the grid of
    `window_starts`, `batch_size` windows per forward (windows of different images share a forward), summed
    into one accumulator and divided by the exact per-pixel window count."""
    b, _, h, w = x.shape
    th, tw = min(tile, h), min(tile, w)
    ys, xs = window_starts(h, tile, stride), window_starts(w, tile, stride)
    windows = [(i, y, x0) for i in range(b) for y in ys for x0 in xs]
    total: torch.Tensor | None = None
    for first in range(0, len(windows), batch_size):
        group = windows[first:first + batch_size]
        crops = torch.stack([x[i, :, y:y + th, x0:x0 + tw] for i, y, x0 in group])
        probs = _forward(logits_of, crops, flip)
        if total is None:  # the class count is known only after the first forward
            total = probs.new_zeros(b, probs.shape[1], h, w)
        for (i, y, x0), p in zip(group, probs):
            total[i, :, y:y + th, x0:x0 + tw] += p
    # The windows form a grid, so the count at (y, x) is (#windows covering row y) × (#covering column x).
    count = _coverage(h, th, ys, x.device)[:, None] * _coverage(w, tw, xs, x.device)[None, :]
    return total / count


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode and give each its own previous mode back afterwards (a module in train
    mode may hold frozen, eval-mode submodules; `model.train(True)` would unfreeze them)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def predict_probabilities(
    model: nn.Module,
    pixel_values: torch.Tensor,
    *,
    mode: str = "whole",
    tile: int = 1024,
    stride: int | None = None,
    flip: bool = False,
    scales: Sequence[float] = (1.0,),
    batch_size: int = 4,
    autocast_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Class probabilities of `model` for `pixel_values`, at the input size.

    Args:
        model: any module called as `model(pixel_values)` whose output has `.logits` (N, C, h, w); logits of
            another size than the input are resized bilinearly with align_corners=True.
        pixel_values: (B, 3, H, W) floating point, already normalised, on the model's device.
        mode: "whole" (one forward per image) or "sliding" (windows of `tile`, see the module docstring).
        tile: window side in pixels (sliding only); a dimension shorter than `tile` uses one window of its length.
        stride: window step, in (0, tile]; default ⌈2/3·tile⌉.
        flip: also predict the horizontally mirrored input and average (per window).
        scales: input scale factors; each scale's probabilities are resized back to (H, W), then averaged.
        batch_size: inputs per forward (windows in sliding mode, images in whole mode); bounds the memory.
        autocast_dtype: e.g. torch.bfloat16 to run forwards under `torch.autocast`; None runs in the input dtype.

    Returns:
        (B, C, H, W) float32 probabilities (each pixel sums to 1 up to rounding), on the input's device.

    The model runs under `torch.inference_mode()` in eval mode; each submodule's train/eval mode is restored.
    """
    _validate(pixel_values, mode, tile, stride, scales, batch_size)
    stride = stride if stride is not None else -(-2 * tile // 3)
    size = tuple(pixel_values.shape[-2:])
    device_type = pixel_values.device.type

    def logits_of(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            return model(x).logits

    total = None
    with _eval_mode(model), torch.inference_mode():
        for scale in scales:
            scaled_size = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
            x = _resize(pixel_values, scaled_size)
            if mode == "whole":
                probs = _predict_whole(logits_of, x, flip, batch_size)
            else:
                probs = _predict_sliding(logits_of, x, flip, batch_size, tile, stride)
            probs = _resize(probs, size)
            total = probs if total is None else total.add_(probs)
    return total / len(scales)
