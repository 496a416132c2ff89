"""Drawing primitives of the synthetic street scenes: camera, canvas and perspective-correct planar patches.

A `Patch` is the bounding box of a planar rectangle in the scene (a face facing the camera, or a face parallel
to the street) together with each pixel's face coordinates in metres (`u` along the face, `v` height above
ground) and its depth `z`; drawers build masks and colours from `u`, `v` with numpy and `Canvas.paint` them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .label_ids import UNLABELED

SKY_DEPTH = 1e4  # metres; sky is "at infinity" for fog and depth ordering


@dataclass(frozen=True)
class Camera:
    """Pinhole camera over a flat ground: image size, horizon row, vanishing column, focal (px), height (m)."""

    height: int
    width: int
    horizon: float
    vx: float
    focal: float
    cam_h: float

    def x_of(self, X: float, z: float) -> float:
        """Image column of a point X metres right of the camera, z metres ahead."""
        return self.vx + self.focal * X / z

    def y_of(self, v: float, z: float) -> float:
        """Image row of a point v metres above the ground, z metres ahead."""
        return self.horizon + self.focal * (self.cam_h - v) / z


@dataclass(frozen=True)
class Patch:
    """Pixels of a planar face: rows/cols slice the image; u, v, z, valid are (h, w) arrays over that box."""

    rows: slice
    cols: slice
    u: np.ndarray
    v: np.ndarray
    z: np.ndarray
    valid: np.ndarray


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: int) -> np.ndarray:
    """(H, W) float32 value noise in [0, 1] with features about `cell` pixels wide (bilinear upsampling)."""
    h, w = shape
    low = rng.random((h // cell + 2, w // cell + 2)).astype(np.float32)
    return np.asarray(Image.fromarray(low, mode="F").resize((w, h), Image.BILINEAR), dtype=np.float32)


@dataclass
class Canvas:
    """The scene being drawn: float RGB in 0..1, labelIds, depth (m) and instance ids, plus noise fields."""

    image: np.ndarray  # (H, W, 3) float32
    label: np.ndarray  # (H, W) uint8 labelIds
    depth: np.ndarray  # (H, W) float32
    instance: np.ndarray  # (H, W) int32, 0 = no instance
    noise_fine: np.ndarray  # (H, W) float32 in [0, 1], ~2 px features
    noise_coarse: np.ndarray  # (H, W) float32 in [0, 1], ~16 px features
    side_light: tuple[float, float]  # sunlight on left / right facades
    next_instance: int = 1

    @classmethod
    def blank(cls, height: int, width: int, rng: np.random.Generator) -> Canvas:
        """An empty canvas (unlabeled, sky depth) with fresh noise fields and per-side sunlight."""
        return cls(
            image=np.zeros((height, width, 3), np.float32),
            label=np.full((height, width), UNLABELED, np.uint8),
            depth=np.full((height, width), SKY_DEPTH, np.float32),
            instance=np.zeros((height, width), np.int32),
            noise_fine=smooth_noise(rng, (height, width), 2),
            noise_coarse=smooth_noise(rng, (height, width), 16),
            side_light=tuple(rng.uniform(0.55, 1.1, 2)),
        )

    def new_instance(self) -> int:
        """A fresh instance id (for coarse labels, which drop whole objects)."""
        self.next_instance += 1
        return self.next_instance - 1

    def texture(self, patch: Patch, rgb, amount: float = 0.3, coarse: bool = False) -> np.ndarray:
        """(h, w, 3) colour `rgb` modulated by the canvas noise over `patch` (±amount/2)."""
        noise = (self.noise_coarse if coarse else self.noise_fine)[patch.rows, patch.cols]
        return np.asarray(rgb, np.float32) * (1 - amount / 2 + amount * noise)[..., None]

    def paint(self, patch: Patch, mask: np.ndarray, colour, label: int, instance: int = 0) -> None:
        """Write colour ((3,) or (h, w, 3)), label, depth and instance where `mask & patch.valid`."""
        mask = mask & patch.valid
        box = patch.rows, patch.cols
        # copyto(where=) writes in place without the gather/scatter copies of boolean indexing
        np.copyto(self.image[box], np.asarray(colour, np.float32), where=mask[..., None])
        np.copyto(self.label[box], np.uint8(label), where=mask)
        np.copyto(self.depth[box], patch.z, where=mask)
        np.copyto(self.instance[box], np.int32(instance), where=mask)


def _box(cam: Camera, x0: float, x1: float, y0: float, y1: float) -> tuple[slice, slice] | None:
    c0, c1 = max(math.floor(x0), 0), min(math.ceil(x1), cam.width)
    r0, r1 = max(math.floor(y0), 0), min(math.ceil(y1), cam.height)
    if c0 >= c1 or r0 >= r1:
        return None
    return slice(r0, r1), slice(c0, c1)


def front_patch(cam: Camera, X0: float, X1: float, z: float, v0: float, v1: float) -> Patch | None:
    """The face X0..X1 (m), heights v0..v1 (m), at depth z, facing the camera; at least one pixel wide/tall."""
    if z <= 0.3:
        return None
    s = cam.focal / z  # pixels per metre at this depth
    half_u = max((X1 - X0) / 2, 0.5 / s)
    half_v = max((v1 - v0) / 2, 0.5 / s)
    xc, vc = (X0 + X1) / 2, (v0 + v1) / 2
    box = _box(cam, cam.x_of(xc - half_u, z), cam.x_of(xc + half_u, z), cam.y_of(vc + half_v, z),
               cam.y_of(vc - half_v, z))
    if box is None:
        return None
    rows, cols = box
    xs = np.arange(cols.start, cols.stop, dtype=np.float32) + 0.5
    ys = np.arange(rows.start, rows.stop, dtype=np.float32) + 0.5
    X = (xs - cam.vx) / s
    v = cam.cam_h - (ys - cam.horizon) / s
    valid = (np.abs(v - vc) <= half_v)[:, None] & (np.abs(X - xc) <= half_u)[None, :]
    shape = valid.shape
    u = np.broadcast_to((X - X0)[None, :], shape)
    z_map = np.broadcast_to(np.float32(z), shape)  # read-only view: no per-patch allocation
    return Patch(rows, cols, u, np.broadcast_to(v[:, None], shape), z_map, valid)


def side_patch(cam: Camera, X: float, z0: float, z1: float, v0: float, v1: float) -> Patch | None:
    """The face on the line X (m) from depth z0 to z1, heights v0..v1 (m); u = z − z0 along the street."""
    z0 = max(z0, 0.5)
    if abs(X) < 1e-3 or z1 <= z0:
        return None
    xa, xb = sorted((cam.x_of(X, z0), cam.x_of(X, z1)))
    c0, c1 = max(math.floor(xa), 0), min(math.ceil(xb), cam.width)
    if c0 >= c1:
        return None
    xs = np.arange(c0, c1, dtype=np.float32) + 0.5
    s = (xs - cam.vx) / X  # pixels per metre of each column; > 0 on the face's side of the vanishing point
    s = np.where(s > 1e-6, s, 1e-6)
    z = cam.focal / s
    col_ok = (z >= z0) & (z <= z1)
    if not col_ok.any():
        return None
    top = cam.horizon + s[col_ok] * (cam.cam_h - v1)
    bottom = cam.horizon + s[col_ok] * (cam.cam_h - v0)
    box = _box(cam, c0, c1, float(top.min()), float(bottom.max()))
    if box is None:
        return None
    rows, cols = box
    ys = np.arange(rows.start, rows.stop, dtype=np.float32)[:, None] + 0.5
    v = cam.cam_h - (ys - cam.horizon) / s[None, :]
    valid = col_ok[None, :] & (v >= v0) & (v <= v1)
    zz = np.broadcast_to(z[None, :], valid.shape)
    return Patch(rows, cols, zz - z0, v, zz, valid)


def segment_mask(u: np.ndarray, v: np.ndarray, a: tuple[float, float], b: tuple[float, float],
                 width: float) -> np.ndarray:
    """Pixels within width/2 (m) of the segment a-b in face coordinates (thick lines: bike frames, limbs)."""
    du, dv = b[0] - a[0], b[1] - a[1]
    t = np.clip(((u - a[0]) * du + (v - a[1]) * dv) / max(du * du + dv * dv, 1e-9), 0, 1)
    return (u - a[0] - t * du) ** 2 + (v - a[1] - t * dv) ** 2 <= (width / 2) ** 2


def ellipse_mask(u: np.ndarray, v: np.ndarray, centre: tuple[float, float], ru: float, rv: float) -> np.ndarray:
    """Pixels inside the axis-aligned ellipse with radii (ru, rv) metres in face coordinates."""
    return ((u - centre[0]) / ru) ** 2 + ((v - centre[1]) / rv) ** 2 <= 1.0
