"""The student's strong view of unlabeled images (FixMatch's weak-to-strong consistency, UniMatch's core).

FixMatch (Sohn et al. 2020) and UniMatch (Yang et al. 2023) let the teacher guess on a weakly augmented image and
train the student on a strongly augmented copy of the *same* crop: the guess is made where the model is surest and
the student must reproduce it under colour changes it has not seen. UniMatch's strong view is ColorJitter(0.5, 0.5,
0.5, 0.25) with probability 0.8, RandomGrayscale(0.2), blur and CutMix; blur is left out here because the
benchmark images are 1/8 of Cityscapes per side, where UniMatch's blur would span 8x more of the scene. The
geometry is untouched, so the teacher's guess stays aligned with the student's pixels.
"""

from __future__ import annotations

import torch

from .transforms import (
    IMAGENET_MEAN, IMAGENET_STD, adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation, luma,
)

# UniMatch applies its colour jitter to 80% of the images.
JITTER_PROB = 0.8


def strong_view(pixels: torch.Tensor, *, jitter: float, grayscale_prob: float,
                generator: torch.Generator | None = None, jitter_prob: float = JITTER_PROB,
                mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> torch.Tensor:
    """(B, 3, h, w) normalised images -> (B, 3, h, w) normalised strong views.

    Per image, with probability `jitter_prob`: brightness, contrast and saturation factors uniform in
    [1 - jitter, 1 + jitter] and a hue shift uniform in [-jitter/2, jitter/2] turns (UniMatch's 0.5 / 0.25), in a
    random order; then, with probability `grayscale_prob`, the luma image on all three channels. The images are
    un-normalised to [0, 1] for this and normalised back. All draws come from `generator` (on its device).
    """
    if jitter <= 0 and grayscale_prob <= 0:
        return pixels
    batch = pixels.shape[0]
    device = generator.device if generator is not None else pixels.device
    draws = torch.rand(batch, 6, generator=generator, device=device).cpu()  # apply?, b, c, s, h, grey?
    order = torch.rand(batch, 4, generator=generator, device=device).argsort(dim=1).cpu()
    mean_t = torch.tensor(mean, dtype=pixels.dtype, device=pixels.device).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=pixels.dtype, device=pixels.device).view(3, 1, 1)
    views = []
    for k in range(batch):
        image = (pixels[k] * std_t + mean_t).clamp(0.0, 1.0)
        if jitter > 0 and draws[k, 0] < jitter_prob:
            factors = [1.0 + jitter * (2.0 * float(draws[k, i]) - 1.0) for i in (1, 2, 3)]
            ops = [(adjust_brightness, factors[0]), (adjust_contrast, factors[1]),
                   (adjust_saturation, factors[2]), (adjust_hue, 0.5 * jitter * (2.0 * float(draws[k, 4]) - 1.0))]
            for index in order[k].tolist():
                op, factor = ops[index]
                image = op(image, factor)
        if draws[k, 5] < grayscale_prob:
            image = luma(image).expand(3, -1, -1)
        views.append((image - mean_t) / std_t)
    return torch.stack(views).to(pixels.dtype)


__all__ = ["JITTER_PROB", "strong_view"]
