"""Coarse labels from fine ones, imitating Cityscapes gtCoarse.

Real gtCoarse annotators drew rough polygons inside objects within a short time budget: boundaries are left
unlabeled, and many small or distant objects are not labeled at all. Here: a band of random width around
every boundary becomes unlabeled, the kept area is cut to blocks (polygon-like staircase outlines), and a random
30 % of the object instances is dropped.
"""

from __future__ import annotations

import numpy as np

from .label_ids import UNLABELED


def _boundaries(label: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose right or lower neighbour has another label (and those neighbours)."""
    edge = np.zeros(label.shape, bool)
    dx = label[:, 1:] != label[:, :-1]
    dy = label[1:, :] != label[:-1, :]
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    edge[1:, :] |= dy
    edge[:-1, :] |= dy
    return edge


def _dilate_axis(mask: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """1-D max filter of width 2r+1 along `axis` from a running count (a window is hit if its count > 0)."""
    count = np.cumsum(mask, axis=axis, dtype=np.int32)
    n = mask.shape[axis]
    take = lambda idx: np.take(count, idx, axis=axis)  # noqa: E731
    hi = take(np.minimum(np.arange(n) + radius, n - 1))
    lo_idx = np.arange(n) - radius - 1
    lo = np.where((lo_idx >= 0).reshape([-1 if a == axis else 1 for a in range(mask.ndim)]),
                  take(np.maximum(lo_idx, 0)), 0)
    return hi - lo > 0


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Square (2r+1)^2 binary dilation, separable into a row and a column pass."""
    if radius <= 0:
        return mask
    return _dilate_axis(_dilate_axis(mask, radius, 1), radius, 0)


def _blocks(keep: np.ndarray, cell: int) -> np.ndarray:
    """Keep only cells (cell x cell pixels) that are kept entirely."""
    h, w = keep.shape
    ph, pw = -h % cell, -w % cell
    padded = np.pad(keep, ((0, ph), (0, pw)), constant_values=False)
    full = padded.reshape((h + ph) // cell, cell, (w + pw) // cell, cell).all(axis=(1, 3))
    return np.repeat(np.repeat(full, cell, axis=0), cell, axis=1)[:h, :w]


def coarsen_labels(label_ids: np.ndarray, instance: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W) uint8 labelIds -> coarse labelIds: boundaries, blocky margins and dropped instances unlabeled.

    `instance` is (H, W) int with 0 for stuff; the margin is 0.6-2 % of the image height (2-5 px at 256) and
    blocks 0.8-2.5 % (2-6 px), which leaves roughly 40 % of the pixels unlabeled.
    """
    h = label_ids.shape[0]
    radius = max(1, int(round(h * rng.uniform(0.006, 0.02))))
    keep = ~_dilate(_boundaries(label_ids), radius)
    keep &= _blocks(keep, max(2, int(round(h * rng.uniform(0.008, 0.025)))))
    ids = np.unique(instance)
    ids = ids[ids > 0]
    dropped = ids[rng.random(len(ids)) < 0.3]
    keep &= ~np.isin(instance, dropped)
    return np.where(keep, label_ids, UNLABELED).astype(np.uint8)
