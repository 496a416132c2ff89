"""Joint transforms: image/label alignment, centre-containing crops, padding, determinism, colour ops."""

import colorsys

import numpy as np
import pytest
import torch

from sclseg.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    EvalTransform,
    TrainTransform,
    adjust_hue,
    apply_geometry,
    gaussian_blur,
)

MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)




def _colour(label: np.ndarray) -> np.ndarray:
    """A distinct colour per class (0..18): the image 'encodes' its label."""
    table = np.array([[(37 * c) % 256, (91 * c + 40) % 256, (53 * c + 90) % 256] for c in range(256)], np.uint8)
    return table[label]


def _block_scene(height: int, width: int, block: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned blocks of random classes; the image colour is a function of the class."""
    rng = np.random.default_rng(seed)
    grid = rng.integers(0, 19, size=(-(-height // block), -(-width // block)), dtype=np.uint8)
    label = np.kron(grid, np.ones((block, block), np.uint8))[:height, :width]
    return _colour(label), np.ascontiguousarray(label)


def _interior(label: torch.Tensor, radius: int) -> torch.Tensor:
    """Pixels whose (2r+1)^2 neighbourhood lies inside the crop and holds one class (and no padding)."""
    lab = label.float()[None, None]
    pad = torch.nn.functional.pad(lab, (radius,) * 4, value=-1.0)  # beyond the crop edge: unknown
    hi = torch.nn.functional.max_pool2d(pad, 2 * radius + 1, stride=1)
    lo = -torch.nn.functional.max_pool2d(-pad, 2 * radius + 1, stride=1)
    return ((hi == lo) & (lab < 255))[0, 0]


def _denormalise(pixels: torch.Tensor) -> torch.Tensor:
    return (pixels * STD + MEAN) * 255.0


# Interpolation support in output pixels: bilinear taps lie within 1 source px of the sample point, bicubic
# within 2; output neighbours are 1/scale <= 2 source px apart, and blocks are convex, so a neighbourhood of
# radius 2 (bilinear) / 4 (bicubic) holding one class means every tap has that class.
@pytest.mark.parametrize("interpolation,radius", [("bilinear", 2), ("bicubic", 4)])
def test_geometry_keeps_image_and_label_aligned(interpolation, radius):
    image, label = _block_scene(70, 110, block=13, seed=1)
    transform = TrainTransform(48, jitter=0.0, blur_prob=0.0, interpolation=interpolation)
    checked = 0
    for seed in range(40):
        pixels, out_label = transform(image, label, generator=torch.Generator().manual_seed(seed))
        inside = _interior(out_label, radius)
        expected = torch.from_numpy(_colour(out_label.numpy().astype(np.uint8))).permute(2, 0, 1).float()
        error = (_denormalise(pixels) - expected).abs().amax(0)[inside]
        assert error.numel() == 0 or error.max() < 1e-2, (seed, error.max())
        checked += error.numel()
    assert checked > 10_000


def _reference_geometry(image, label, geometry, mode):
    """Independent reference: resize the WHOLE image with F.interpolate, then crop/pad, then flip."""
    scaled = torch.nn.functional.interpolate(torch.from_numpy(image).permute(2, 0, 1).float()[None],
                                             size=geometry.scaled_size, mode=mode, align_corners=False)[0]
    scaled_label = torch.nn.functional.interpolate(torch.from_numpy(label).float()[None, None],
                                                   size=geometry.scaled_size, mode="nearest-exact")[0, 0]
    (ch, cw), (oy, ox), (sh, sw) = geometry.crop_size, geometry.origin, geometry.scaled_size
    pixels, labels = torch.zeros(3, ch, cw), torch.full((ch, cw), 255.0)
    ya, yb, xa, xb = max(0, -oy), min(ch, sh - oy), max(0, -ox), min(cw, sw - ox)
    pixels[:, ya:yb, xa:xb] = scaled[:, oy + ya:oy + yb, ox + xa:ox + xb].clamp(0, 255)
    labels[ya:yb, xa:xb] = scaled_label[oy + ya:oy + yb, ox + xa:ox + xb]
    if geometry.flip:
        pixels, labels = pixels.flip(-1), labels.flip(-1)
    return pixels, labels.long()


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_geometry_matches_a_whole_image_resize(interpolation):
    """Sub-pixel exact: cropping first must equal resizing the whole image first (a half-pixel shift fails)."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    label = rng.integers(0, 19, (37, 53), dtype=np.uint8)
    transform = TrainTransform((24, 40), jitter=0.0, blur_prob=0.0, interpolation=interpolation)
    for seed in range(30):
        geometry = transform.sample_geometry(37, 53, generator=torch.Generator().manual_seed(seed))
        pixels, labels = apply_geometry(image, label, geometry, interpolation=interpolation)
        expected_pixels, expected_labels = _reference_geometry(image, label, geometry, interpolation)
        assert torch.equal(labels.long(), expected_labels), seed
        assert torch.allclose(pixels, expected_pixels, atol=1e-2), (seed, (pixels - expected_pixels).abs().max())


def test_every_transform_keeps_one_colour_per_class():
    """With jitter and blur on, pixels of one class (away from edges) still share one colour."""
    image, label = _block_scene(80, 120, block=16, seed=2)
    transform = TrainTransform(56, blur_prob=1.0)
    for seed in range(25):
        pixels, out_label = transform(image, label, generator=torch.Generator().manual_seed(seed))
        inside = _interior(out_label, 2 + 6)  # bilinear support + blur radius round(4 * 1.3) = 5
        for class_id in out_label[inside].unique():
            colours = pixels[:, inside & (out_label == class_id)]
            assert (colours.amax(1) - colours.amin(1)).max() < 1e-3, (seed, int(class_id))


def test_labels_are_only_source_classes_or_ignore():
    image, label = _block_scene(50, 50, block=5, seed=3)
    label[:5] = 255
    _, out = TrainTransform(64, scale_range=(0.5, 2.0))(image, label, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.int64 and out.shape == (64, 64)
    assert set(out.unique().tolist()) <= set(np.unique(label).tolist())


@pytest.mark.parametrize("shape,crop", [((40, 60), 32), ((20, 30), 64), ((300, 200), 96), ((5, 400), 48)])
def test_crop_contains_the_centre(shape, crop):
    height, width = shape
    transform = TrainTransform(crop, jitter=0.0, blur_prob=0.0)
    rng = np.random.default_rng(0)
    for seed in range(60):
        cy, cx = int(rng.integers(height)), int(rng.integers(width))
        generator = torch.Generator().manual_seed(seed)
        geometry = transform.sample_geometry(height, width, generator=generator, center=(cy, cx))
        y0, x0, y1, x1 = geometry.source_window(height, width)
        assert y0 <= cy + 0.5 < y1 and x0 <= cx + 0.5 < x1
        # End to end: a 5x5 marker of class 7 around the centre survives the crop (nearest sampling every <= 2 px).
        label = np.zeros(shape, np.uint8)
        label[max(0, cy - 2):cy + 3, max(0, cx - 2):cx + 3] = 7
        _, out = transform(_colour(label), label, generator=torch.Generator().manual_seed(seed), center=(cy, cx))
        assert (out == 7).any(), (seed, cy, cx)


def test_centre_outside_the_image_is_an_error():
    image, label = _block_scene(10, 10, 2, 0)
    with pytest.raises(ValueError, match="outside"):
        TrainTransform(8)(image, label, center=(10, 0))


def test_small_images_are_padded_with_zero_and_ignore():
    image = np.full((10, 20, 3), 255, np.uint8)
    label = np.full((10, 20), 3, np.uint8)
    transform = TrainTransform((32, 48), scale_range=(1.0, 1.0), jitter=0.0, blur_prob=0.0)
    pixels, out = transform(image, label, generator=torch.Generator().manual_seed(4))
    assert pixels.shape == (3, 32, 48) and out.shape == (32, 48)
    assert (out == 3).sum() == 200 and (out == 255).sum() == 32 * 48 - 200
    raw = _denormalise(pixels)
    assert torch.allclose(raw[:, out == 255], torch.zeros(1), atol=1e-3)  # pad 0 before normalisation
    assert torch.allclose(raw[:, out == 3], torch.full((1,), 255.0), atol=1e-3)


def test_unlabeled_images_return_no_label_and_same_pixels():
    image, label = _block_scene(60, 90, 7, 5)
    transform = TrainTransform(40)
    with_label, _ = transform(image, label, generator=torch.Generator().manual_seed(9))
    without, none = transform(image, None, generator=torch.Generator().manual_seed(9))
    assert none is None and torch.equal(with_label, without)


def test_randomness_comes_from_the_generator():
    image, label = _block_scene(60, 90, 7, 6)
    transform = TrainTransform(40)
    a = transform(image, label, generator=torch.Generator().manual_seed(3))
    b = transform(image, label, generator=torch.Generator().manual_seed(3))
    c = transform(image, label, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    torch.manual_seed(11)
    d = transform(image, label)
    torch.manual_seed(11)
    e = transform(image, label)
    assert torch.equal(d[0], e[0]) and torch.equal(d[1], e[1])


def test_flip_mirrors_image_and_label():
    image, label = _block_scene(32, 32, 4, 7)
    transform = TrainTransform(32, scale_range=(1.0, 1.0), jitter=0.0, blur_prob=0.0)
    geometry = transform.sample_geometry(32, 32, generator=torch.Generator().manual_seed(0))
    plain, plain_label = apply_geometry(image, label, geometry.__class__(1.0, (32, 32), (0, 0), (32, 32), False))
    flipped, flipped_label = apply_geometry(image, label, geometry.__class__(1.0, (32, 32), (0, 0), (32, 32), True))
    assert torch.equal(plain_label, torch.from_numpy(label))
    assert torch.equal(flipped_label, plain_label.flip(-1)) and torch.equal(flipped, plain.flip(-1))
    assert torch.allclose(plain, torch.from_numpy(image).permute(2, 0, 1).float())


def test_eval_transform_normalises_only():
    image, label = _block_scene(13, 17, 3, 8)
    pixels, out = EvalTransform()(image, label)
    assert pixels.dtype == torch.float32 and pixels.shape == (3, 13, 17)
    assert out.dtype == torch.int64 and torch.equal(out, torch.from_numpy(label).long())
    assert torch.allclose(_denormalise(pixels), torch.from_numpy(image).permute(2, 0, 1).float(), atol=1e-3)
    assert EvalTransform()(image, None)[1] is None


@pytest.mark.parametrize("shift", [-0.5, -0.25, -0.1, 0.0, 0.13, 0.25, 0.5])
def test_hue_shift_matches_colorsys(shift):
    pixels = torch.rand(3, 6, 7, generator=torch.Generator().manual_seed(0))
    pixels[:, 0, 0] = 0.5  # grey: zero chroma
    pixels[:, 0, 1] = torch.tensor([0.2, 0.7, 0.7])  # a tie between the maximal channels
    expected = np.zeros((3, 6, 7))
    for i in range(6):
        for j in range(7):
            h, s, v = colorsys.rgb_to_hsv(*pixels[:, i, j].tolist())
            expected[:, i, j] = colorsys.hsv_to_rgb((h + shift) % 1.0, s, v)
    assert np.allclose(adjust_hue(pixels, shift).numpy(), expected, atol=1e-5)
    red = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    assert torch.allclose(adjust_hue(red, 1 / 3), torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1), atol=1e-5)


def test_blur_keeps_constants_and_mass():
    flat = torch.full((3, 9, 11), 0.3)
    assert torch.allclose(gaussian_blur(flat, 1.2), flat)
    spike = torch.zeros(3, 21, 21)
    spike[:, 10, 10] = 1.0
    blurred = gaussian_blur(spike, 1.0)
    assert torch.allclose(blurred.sum((1, 2)), torch.ones(3), atol=1e-5) and blurred[0, 10, 10] < 0.2
