"""Joint image + label transforms: the training augmentation of Zhu et al. (2019) and the evaluation transform.

The protocol every transform here (and `CityscapesDataset`) follows:

    transform(image, label, *, generator=None, center=None) -> (pixel_values, labels | None)

`image` is (H, W, 3) uint8 RGB, `label` (H, W) uint8 train ids (255 = ignore) or None (unlabeled images);
`pixel_values` is (3, h, w) float32 normalised with the ImageNet mean/std, `labels` (h, w) int64.
`center = (y, x)` is a pixel of the ORIGINAL image that the crop must contain (class-uniform sampling).
All randomness is drawn from `generator` (torch's global RNG when None), so a seeded generator reproduces a
sample exactly. Implemented with torch tensor ops only (no torchvision, which the package must not need).

Training augmentation (paper §4.1 "following Zhu et al."; NVIDIA semantic-segmentation
`scripts/train_cityscapes_WideResNet38.sh`: `--scale_min 0.5 --scale_max 2.0 --crop_size 896 --color_aug 0.25
--gblur`), in NVIDIA's order: random scale, crop (padding image 0 / label 255), horizontal flip, colour jitter,
Gaussian blur, normalisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
IGNORE_INDEX = 255
# ITU-R 601 luma weights: what PIL's convert("L") uses, hence what NVIDIA's PIL ImageEnhance jitter used.
_LUMA = (0.299, 0.587, 0.114)


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _randint(low: int, high: int, generator: torch.Generator | None) -> int:
    """Uniform integer in [low, high] (both inclusive)."""
    return int(torch.randint(low, high + 1, (), generator=generator))


def normalize(pixels: torch.Tensor, mean: tuple[float, ...] = IMAGENET_MEAN,
              std: tuple[float, ...] = IMAGENET_STD) -> torch.Tensor:
    """(3, h, w) float in [0, 1] -> (3, h, w) float32 `(x - mean) / std` (ImageNet statistics by default)."""
    mean_t = torch.tensor(mean, dtype=pixels.dtype).view(-1, 1, 1)
    std_t = torch.tensor(std, dtype=pixels.dtype).view(-1, 1, 1)
    return ((pixels - mean_t) / std_t).float()


def _to_chw(image: np.ndarray) -> torch.Tensor:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got shape {image.shape} dtype {image.dtype}")
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)


def _check_label(image: np.ndarray, label: np.ndarray | None) -> None:
    if label is not None and label.shape != image.shape[:2]:
        raise ValueError(f"label shape {label.shape} does not match image shape {image.shape[:2]}")


class EvalTransform:
    """Evaluation: normalise only. (H, W, 3) uint8 -> (3, H, W) float32; label (H, W) uint8 -> int64."""

    def __init__(self, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> None:
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, image: np.ndarray, label: np.ndarray | None = None, *,
                 generator: torch.Generator | None = None,
                 center: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        _check_label(image, label)
        pixels = normalize(_to_chw(image).float().div_(255.0), self.mean, self.std)
        return pixels, None if label is None else torch.from_numpy(label.astype(np.int64))


# ---------------------------------------------------------------------------------------------------------
# Geometry: scale + crop + flip, as one resampling of the original image.


@dataclass(frozen=True)
class CropGeometry:
    """One scale/crop/flip draw.

    The image is (conceptually) resized to `scaled_size` = round(scale * (H, W)); the crop is the window
    `[origin_y, origin_y + crop_h) x [origin_x, origin_x + crop_w)` of that scaled image. A negative origin or a
    window beyond the scaled size means padding. `flip` mirrors the crop horizontally.
    """

    scale: float
    scaled_size: tuple[int, int]
    origin: tuple[int, int]
    crop_size: tuple[int, int]
    flip: bool

    def source_window(self, height: int, width: int) -> tuple[float, float, float, float]:
        """The crop window in ORIGINAL pixel coordinates (y0, x0, y1, x1), continuous, half-open."""
        sy, sx = self.scaled_size[0] / height, self.scaled_size[1] / width
        (oy, ox), (ch, cw) = self.origin, self.crop_size
        return oy / sy, ox / sx, (oy + ch) / sy, (ox + cw) / sx


def _origin_range(scaled: int, crop: int, center_scaled: float | None) -> tuple[int, int]:
    """Inclusive range of crop origins along one axis.

    Without a centre: the crop lies inside the scaled image, or (when the image is smaller than the crop)
    the image lies inside the crop, anywhere. With a centre `p` (scaled coordinates, in [0, scaled)), the window
    [o, o + crop) must also contain p, i.e. floor(p) - crop + 1 <= o <= floor(p); the two ranges always
    intersect because floor(p) <= scaled - 1.
    """
    low, high = min(0, scaled - crop), max(0, scaled - crop)
    if center_scaled is not None:
        cell = min(int(math.floor(center_scaled)), scaled - 1)
        low, high = max(low, cell - crop + 1), min(high, cell)
    return low, high


def _sample_axes(source_rows: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest source index (for labels) and clamped continuous coordinate (for images) of each output pixel.

    `source_rows` holds the output pixel centres mapped to the source, (o + i + 0.5) * size / scaled — the
    `align_corners=False` convention of `F.interpolate`; the nearest index is its floor ("nearest-exact").
    """
    nearest = source_rows.floor().long().clamp_(0, size - 1)
    return nearest, source_rows - 0.5


def _valid_span(origin: int, crop: int, scaled: int) -> tuple[int, int]:
    """Output indices [a, b) whose scaled coordinate origin + i lies inside [0, scaled)."""
    return max(0, -origin), min(crop, scaled - origin)


def _resample_image(image: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, mode: str) -> torch.Tensor:
    """Sample the (3, H, W) uint8 image at continuous (rows, cols) pixel coordinates -> (3, len(rows), len(cols)).

    Only the source rectangle the crop touches (plus 2 pixels for the bicubic support) is converted to float,
    so a 2x-downscaled 896 crop of a 1024x2048 image costs O(crop) rather than O(image).
    """
    height, width = image.shape[-2:]
    r0 = max(0, int(rows.min().floor()) - 2)
    r1 = min(height, int(rows.max().floor()) + 4)
    c0 = max(0, int(cols.min().floor()) - 2)
    c1 = min(width, int(cols.max().floor()) + 4)
    region = image[:, r0:r1, c0:c1].float().unsqueeze(0)
    # Normalised grid coordinate for align_corners=False: (2 * (pixel + 0.5) / size) - 1.
    gy = (2.0 * (rows - r0 + 0.5) / (r1 - r0) - 1.0).view(-1, 1).expand(-1, cols.numel())
    gx = (2.0 * (cols - c0 + 0.5) / (c1 - c0) - 1.0).view(1, -1).expand(rows.numel(), -1)
    grid = torch.stack((gx, gy), dim=-1).unsqueeze(0)
    out = F.grid_sample(region, grid, mode=mode, padding_mode="border", align_corners=False)
    return out[0].clamp_(0.0, 255.0)  # bicubic overshoots


def apply_geometry(image: np.ndarray, label: np.ndarray | None, geometry: CropGeometry, *,
                   interpolation: str = "bilinear",
                   ignore_index: int = IGNORE_INDEX) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scale, crop/pad and flip: (H, W, 3) uint8 -> (3, h, w) float32 in [0, 255] (pad 0); label -> uint8 (pad 255).

    Image and label share one sampling map (pixel centre -> source coordinate): the image is interpolated
    (`interpolation`: "bilinear" or "bicubic", no antialiasing when downscaling — like `cv2.INTER_LINEAR`),
    the label takes the nearest source pixel, so every label pixel is the class of the source pixel whose area
    contains the output pixel's centre.
    """
    height, width = image.shape[:2]
    (sh, sw), (oy, ox), (ch, cw) = geometry.scaled_size, geometry.origin, geometry.crop_size
    ya, yb = _valid_span(oy, ch, sh)
    xa, xb = _valid_span(ox, cw, sw)
    ys = (torch.arange(oy + ya, oy + yb, dtype=torch.float64) + 0.5) * (height / sh)
    xs = (torch.arange(ox + xa, ox + xb, dtype=torch.float64) + 0.5) * (width / sw)
    row_idx, row_pos = _sample_axes(ys, height)
    col_idx, col_pos = _sample_axes(xs, width)
    out = torch.zeros(3, ch, cw)
    out[:, ya:yb, xa:xb] = _resample_image(_to_chw(image), row_pos.float(), col_pos.float(), interpolation)
    out_label = None
    if label is not None:
        out_label = torch.full((ch, cw), ignore_index, dtype=torch.uint8)
        out_label[ya:yb, xa:xb] = torch.from_numpy(label[np.ix_(row_idx.numpy(), col_idx.numpy())])
    if geometry.flip:
        out = out.flip(-1)
        out_label = None if out_label is None else out_label.flip(-1)
    return out, out_label


# ---------------------------------------------------------------------------------------------------------
# Photometric augmentation on (3, h, w) float images in [0, 1].


def luma(pixels: torch.Tensor) -> torch.Tensor:
    """(3, h, w) RGB in [0, 1] -> (1, h, w) grey level with the ITU-R 601 weights (PIL's convert("L"))."""
    r, g, b = pixels.unbind(0)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(0)


def adjust_brightness(pixels: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with black (PIL `ImageEnhance.Brightness`)."""
    return (pixels * factor).clamp_(0.0, 1.0)


def adjust_contrast(pixels: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with the mean grey level of the whole image (PIL `ImageEnhance.Contrast`)."""
    mean = luma(pixels).mean()
    return ((pixels - mean) * factor + mean).clamp_(0.0, 1.0)


def adjust_saturation(pixels: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with the per-pixel grey image (PIL `ImageEnhance.Color`)."""
    grey = luma(pixels)
    return ((pixels - grey) * factor + grey).clamp_(0.0, 1.0)


def adjust_hue(pixels: torch.Tensor, shift: float) -> torch.Tensor:
    """Rotate the hue by `shift` turns (in [-0.5, 0.5]) in HSV space, keeping saturation and value.

    What PIL's HSV shift (NVIDIA) and torchvision do, computed without materialising HSV: with
    v = max(r, g, b) and chroma c = v - min(r, g, b) (= v * s), the hue in sextants is h6 in [0, 6), and the
    hexcone's closed form gives channel n of (R, G, B) = v - c * clamp(min(k, 4 - k), 0, 1),
    k = (n' + h6) mod 6, n' = 5, 3, 1. About 25% faster than an HSV round trip on an 896x896 crop.
    """
    r, g, b = pixels.unbind(0)
    value = pixels.amax(0)
    chroma = value - pixels.amin(0)
    inverse = torch.where(chroma > 0, chroma, torch.ones_like(chroma)).reciprocal_()
    # Sector by the maximal channel, r first then g (colorsys's tie order); grey pixels (c = 0) get any hue.
    sextant = torch.where(value == r, (g - b) * inverse,
                          torch.where(value == g, (b - r) * inverse + 2.0, (r - g) * inverse + 4.0))
    sextant.add_(6.0 * shift + 6.0)  # + 6 keeps it positive; remainder below wraps it into [0, 6)
    out = torch.empty_like(pixels)
    for channel, offset in enumerate((5.0, 3.0, 1.0)):
        k = torch.remainder(sextant + offset, 6.0)
        torch.sub(value, chroma * torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0), out=out[channel])
    return out


def gaussian_blur(pixels: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a (3, h, w) image, per channel.

    Kernel radius round(4 sigma) and edge replication match `skimage.filters.gaussian` (truncate=4.0,
    mode="nearest"), which NVIDIA's `RandomGaussianBlur` called.
    """
    radius = max(1, int(4.0 * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=pixels.dtype)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = pixels.shape[0]
    out = F.pad(pixels.unsqueeze(0), (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    out = F.conv2d(out, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
    return out[0]


# ---------------------------------------------------------------------------------------------------------


class TrainTransform:
    """The paper's training augmentation for labeled (image + label) and unlabeled (label None) images.

    Args:
        crop_size: output (h, w), or one int for a square; 896 in the paper (Zhu et al. `--crop_size 896`).
        scale_range: random scale factor, uniform in [low, high]; (0.5, 2.0) in the paper.
        flip_prob: probability of a horizontal flip (0.5, NVIDIA `RandomHorizontallyFlip`).
        jitter: brightness, contrast and saturation factors uniform in [1 - j, 1 + j] and a hue shift uniform
            in [-j, j] turns, applied in a random order (NVIDIA `--color_aug 0.25`, its `ColorJitter`). 0 = off.
        blur_sigma: Gaussian blur sigma, uniform in [low, high) pixels of the crop — NVIDIA draws
            0.15 + U[0, 1) * 1.15, i.e. [0.15, 1.3).
        blur_prob: probability of blurring. Default 1.0: NVIDIA's `RandomGaussianBlur`, enabled by `--gblur`
            in its Cityscapes WideResNet38 script, blurs every training image; neither the SCL paper (it only
            says "augmentation used in Zhu et al.") nor Zhu et al. give a probability. Set 0.5 for the
            variant some reimplementations use.
        interpolation: "bilinear" or "bicubic" for the image (labels always take the nearest pixel).
        mean, std: normalisation statistics (ImageNet, the backbone's pretraining).
        ignore_index: label value for padding.
    """

    def __init__(self, crop_size: int | tuple[int, int] = 896, *, scale_range: tuple[float, float] = (0.5, 2.0),
                 flip_prob: float = 0.5, jitter: float = 0.25, blur_sigma: tuple[float, float] = (0.15, 1.3),
                 blur_prob: float = 1.0, interpolation: str = "bilinear",
                 mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
                 ignore_index: int = IGNORE_INDEX) -> None:
        if interpolation not in ("bilinear", "bicubic"):
            raise ValueError(f"interpolation must be 'bilinear' or 'bicubic', got {interpolation!r}")
        if not 0.0 <= jitter <= 0.5:
            raise ValueError(f"jitter must lie in [0, 0.5] (the hue shift is at most half a turn), got {jitter}")
        self.crop_size = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
        self.scale_range, self.flip_prob = tuple(scale_range), flip_prob
        self.jitter, self.blur_sigma, self.blur_prob = jitter, tuple(blur_sigma), blur_prob
        self.interpolation, self.ignore_index = interpolation, ignore_index
        self.mean, self.std = tuple(mean), tuple(std)

    def sample_geometry(self, height: int, width: int, *, generator: torch.Generator | None = None,
                        center: tuple[int, int] | None = None) -> CropGeometry:
        """Draw scale, crop origin and flip for an (height, width) image; the crop contains `center` if given."""
        scale = _uniform(*self.scale_range, generator)
        scaled = (max(1, round(height * scale)), max(1, round(width * scale)))
        origin = []
        for axis, size in enumerate((height, width)):
            # The centre of source pixel c lands at (c + 0.5) * scaled / size in the scaled image.
            point = None if center is None else (center[axis] + 0.5) * scaled[axis] / size
            origin.append(_randint(*_origin_range(scaled[axis], self.crop_size[axis], point), generator))
        flip = float(torch.rand((), generator=generator)) < self.flip_prob
        return CropGeometry(scale, scaled, (origin[0], origin[1]), self.crop_size, flip)

    def photometric(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Colour jitter (random order) then Gaussian blur, on a (3, h, w) float image in [0, 1]."""
        if self.jitter > 0:
            j = self.jitter
            ops = [(adjust_brightness, _uniform(1 - j, 1 + j, generator)),
                   (adjust_contrast, _uniform(1 - j, 1 + j, generator)),
                   (adjust_saturation, _uniform(1 - j, 1 + j, generator)),
                   (adjust_hue, _uniform(-j, j, generator))]
            for index in torch.randperm(len(ops), generator=generator).tolist():
                op, factor = ops[index]
                pixels = op(pixels, factor)
        if self.blur_prob > 0 and float(torch.rand((), generator=generator)) < self.blur_prob:
            pixels = gaussian_blur(pixels, _uniform(*self.blur_sigma, generator))
        return pixels

    def __call__(self, image: np.ndarray, label: np.ndarray | None = None, *,
                 generator: torch.Generator | None = None,
                 center: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(H, W, 3) uint8 [+ (H, W) uint8] -> (3, h, w) float32 normalised [+ (h, w) int64, padding 255]."""
        _check_label(image, label)
        height, width = image.shape[:2]
        if center is not None and not (0 <= center[0] < height and 0 <= center[1] < width):
            raise ValueError(f"center {center} lies outside the {height}x{width} image")
        geometry = self.sample_geometry(height, width, generator=generator, center=center)
        pixels, out_label = apply_geometry(image, label, geometry, interpolation=self.interpolation,
                                           ignore_index=self.ignore_index)
        pixels = self.photometric(pixels.div_(255.0), generator)
        return normalize(pixels, self.mean, self.std), None if out_label is None else out_label.long()
