"""predict_probabilities: window grid, exact per-pixel averaging, flip, scales, batching, modes, validation.

The models here are tiny stand-ins with known behaviour (a constant, a per-pixel 1×1 conv, a model with a
receptive field), so each expected result is exact or has a stated tolerance.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sclseg.evaluation import predict_probabilities, window_starts

NUM_CLASSES = 5


class ConstantModel(nn.Module):
    """Logits that are the same fixed vector at every pixel: probabilities softmax(vector) everywhere."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.register_buffer("vector", logits)

    def forward(self, x: torch.Tensor) -> SimpleNamespace:
        b, _, h, w = x.shape
        return SimpleNamespace(logits=self.vector.view(1, -1, 1, 1).expand(b, -1, h, w).clone())


class PixelModel(nn.Module):
    """A 1×1 conv: each pixel's logits depend on that pixel only (translation and flip equivariant)."""

    def __init__(self, seed: int = 0, downsample: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(3, NUM_CLASSES, 1)
        with torch.no_grad():
            g = torch.Generator().manual_seed(seed)
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g))
            self.conv.bias.copy_(torch.randn(self.conv.bias.shape, generator=g))
        self.downsample = downsample
        self.calls: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> SimpleNamespace:
        self.calls.append(tuple(x.shape))
        logits = self.conv(x)
        if self.downsample > 1:  # logits smaller than the input, as models with an output stride
            logits = logits[..., :: self.downsample, :: self.downsample]
        return SimpleNamespace(logits=logits)


class ContextModel(nn.Module):
    """A 3×3 conv (zero padded): the result depends on the window, a symmetric kernel makes it flip equivariant."""

    def __init__(self, symmetric: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(3, NUM_CLASSES, 3, padding=1)
        with torch.no_grad():
            w = torch.randn(self.conv.weight.shape, generator=torch.Generator().manual_seed(1))
            if symmetric:
                w = (w + w.flip(-1)) / 2
            self.conv.weight.copy_(w)
        self.dropout = nn.Dropout(0.5)  # must be off during inference

    def forward(self, x: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(logits=self.dropout(self.conv(x)))


def image(b: int = 2, h: int = 37, w: int = 53, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "size, tile, stride, expected",
    [
        (2048, 1024, 683, [0, 683, 1024]),  # Cityscapes width, default stride: last window snapped from 1366
        (1024, 1024, 683, [0]),  # exactly one tile
        (500, 1024, 683, [0]),  # smaller than the tile: one window of the whole length
        (10, 4, 3, [0, 3, 6]),  # grid ends exactly at the border: nothing added
        (11, 4, 3, [0, 3, 6, 7]),
        (10, 4, 4, [0, 4, 6]),
        (5, 4, 1, [0, 1]),
    ],
)
def test_window_starts(size, tile, stride, expected):
    assert window_starts(size, tile, stride) == expected


def test_sliding_equals_whole_when_tile_covers_image():
    model, x = ContextModel(), image()
    whole = predict_probabilities(model, x)
    assert whole.shape == (2, NUM_CLASSES, 37, 53) and whole.dtype == torch.float32
    torch.testing.assert_close(whole.sum(1), torch.ones(2, 37, 53))
    for tile in (53, 64, 1024):
        torch.testing.assert_close(predict_probabilities(model, x, mode="sliding", tile=tile), whole)


@pytest.mark.parametrize("tile, stride", [(16, None), (16, 5), (7, 7), (20, 3), (40, 30)])
def test_sliding_on_constant_model_gives_the_constant(tile, stride):
    vector = torch.tensor([2.0, -1.0, 0.5, 0.0, 3.0])
    probs = predict_probabilities(ConstantModel(vector), image(), mode="sliding", tile=tile, stride=stride)
    expected = vector.softmax(0).view(1, -1, 1, 1).expand(2, -1, 37, 53)
    torch.testing.assert_close(probs, expected)


@pytest.mark.parametrize("tile, stride", [(16, None), (16, 5), (7, 7), (20, 3), (40, 30), (8, 3)])
def test_sliding_on_pixel_model_equals_whole(tile, stride):
    model, x = PixelModel(), image()
    expected = predict_probabilities(model, x)
    torch.testing.assert_close(predict_probabilities(model, x, mode="sliding", tile=tile, stride=stride), expected)


def test_sliding_windows_match_the_grid_and_default_stride():
    model = PixelModel()
    predict_probabilities(model, image(b=1, h=20, w=40), mode="sliding", tile=12, batch_size=1)
    # stride ⌈2/3·12⌉ = 8: rows [0, 8] (snapped 8), columns [0, 8, 16, 24, 28] → 10 windows of 12×12
    assert model.calls == [(1, 3, 12, 12)] * 10


def test_tile_batching_does_not_change_the_result():
    model, x = ContextModel(), image(b=3)
    results = [predict_probabilities(model, x, mode="sliding", tile=16, stride=9, batch_size=n) for n in (1, 4, 7)]
    for other in results[1:]:
        torch.testing.assert_close(other, results[0], rtol=1e-5, atol=1e-6)


def test_forward_batch_is_bounded_by_batch_size():
    model = PixelModel()
    predict_probabilities(model, image(b=3), mode="sliding", tile=16, batch_size=4, flip=True)
    assert max(shape[0] for shape in model.calls) == 4  # 3 images × 15 windows, 4 per forward, flip separate
    model.calls.clear()
    predict_probabilities(model, image(b=3), batch_size=2)
    assert [shape[0] for shape in model.calls] == [2, 1]


def test_flip_of_flip_equivariant_model_changes_nothing():
    x = image()
    for model in (PixelModel(), ContextModel(symmetric=True)):
        for mode in ("whole", "sliding"):
            plain = predict_probabilities(model, x, mode=mode, tile=16)
            torch.testing.assert_close(predict_probabilities(model, x, mode=mode, tile=16, flip=True), plain)


def test_flip_averages_the_mirrored_prediction():
    model, x = ContextModel(), image()
    plain = predict_probabilities(model, x)
    mirrored = predict_probabilities(model, x.flip(-1)).flip(-1)
    torch.testing.assert_close(predict_probabilities(model, x, flip=True), (plain + mirrored) / 2)


def test_scale_one_equals_whole():
    model, x = ContextModel(), image()
    torch.testing.assert_close(predict_probabilities(model, x, scales=(1.0,)), predict_probabilities(model, x))
    torch.testing.assert_close(predict_probabilities(model, x, scales=(1.0, 1.0)), predict_probabilities(model, x))


def test_multi_scale_on_pixel_model_equals_whole_on_a_smooth_input():
    # A smooth input (low-frequency sines): resizing it down/up and the probabilities back changes little.
    h, w = 48, 64
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    x = torch.stack([torch.sin(2 * yy + c) + torch.cos(3 * xx - c) for c in range(3)]).unsqueeze(0) * 0.5
    model = PixelModel()
    whole = predict_probabilities(model, x)
    multi = predict_probabilities(model, x, scales=(0.5, 1.0, 2.0))
    assert multi.shape == whole.shape
    torch.testing.assert_close(multi, whole, rtol=0, atol=0.02)
    sliding = predict_probabilities(model, x, mode="sliding", tile=24, flip=True, scales=(0.5, 1.0, 2.0))
    torch.testing.assert_close(sliding, multi, rtol=1e-5, atol=1e-6)  # per-pixel model: windows change nothing


def test_small_logits_are_upsampled_to_the_input_size():
    model, x = PixelModel(downsample=4), image(h=33, w=45)  # logits 9×12 for a 33×45 input
    probs = predict_probabilities(model, x)
    assert probs.shape == (2, NUM_CLASSES, 33, 45)
    logits = model.conv(x)[..., ::4, ::4]
    expected = F.interpolate(logits, size=(33, 45), mode="bilinear", align_corners=True).softmax(1)
    torch.testing.assert_close(probs, expected)
    sliding = predict_probabilities(model, x, mode="sliding", tile=17)
    assert sliding.shape == probs.shape
    torch.testing.assert_close(sliding.sum(1), torch.ones(2, 33, 45))


def test_modes_restored_and_no_grad():
    model = ContextModel()
    model.train()
    model.dropout.eval()  # a submodule deliberately in another mode keeps it
    x = image()
    first = predict_probabilities(model, x)
    torch.testing.assert_close(predict_probabilities(model, x), first)  # dropout was off: deterministic
    assert model.training and model.conv.training and not model.dropout.training
    assert not first.requires_grad


def test_bf16_autocast_is_close_to_float32():
    model, x = ContextModel(), image()
    probs = predict_probabilities(model, x, mode="sliding", tile=16, autocast_dtype=torch.bfloat16)
    assert probs.dtype == torch.float32
    torch.testing.assert_close(probs, predict_probabilities(model, x, mode="sliding", tile=16), rtol=0, atol=0.05)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(mode="tiles"), "mode"),
        (dict(mode="sliding", tile=0), "tile"),
        (dict(mode="sliding", tile=8, stride=9), "stride"),
        (dict(mode="sliding", tile=8, stride=0), "stride"),
        (dict(scales=()), "scales"),
        (dict(scales=(1.0, -0.5)), "scales"),
        (dict(batch_size=0), "batch_size"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        predict_probabilities(PixelModel(), image(), **kwargs)


def test_bad_input():
    with pytest.raises(ValueError, match="4-D"):
        predict_probabilities(PixelModel(), image()[0])
    with pytest.raises(ValueError, match="floating"):
        predict_probabilities(PixelModel(), image().long())
    with pytest.raises(ValueError, match="empty"):
        predict_probabilities(PixelModel(), image(b=0), mode="sliding", tile=8)
