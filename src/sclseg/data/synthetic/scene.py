"""Render one synthetic street scene (RGB image + Cityscapes labelIds) from a numpy `Generator`.

A pinhole camera looks down a street: the ground plane, vertical facades along both sides, and objects
(vehicles, people, bikes, poles, trees, ...) standing on the ground are drawn back to front (painter's
algorithm) as planar patches whose pixels carry metric face coordinates, so textures, windows and wheels come out
in perspective. Everything is vectorised over each patch's bounding box; no per-pixel Python loops.

Coordinates: X metres to the right of the camera, Z metres ahead, heights `v` metres above the ground.
A ground point projects to x = vx + f·X/Z, y = horizon + f·h_cam/Z; a point at height v to
y = horizon + f·(h_cam − v)/Z. Labels are the official Cityscapes labelIds (`label_ids.py`), void ones
(ego vehicle, static, ground, parking, rail track) included.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
from PIL import Image, ImageFilter

from .label_ids import BUILDING, EGO, GROUND, PARKING, ROAD, SIDEWALK, SKY, TERRAIN, VEGETATION
from .plan import draw_objects
from .render import Camera, Canvas, front_patch, side_patch, smooth_noise
from .street import Street, random_side

# Standard-normal quantiles at (k + 0.5) / 256: uniform bytes through this table are ~Gaussian noise.
_NORMAL_QUANTILES = np.array([NormalDist().inv_cdf((k + 0.5) / 256) for k in range(256)])


def make_camera(rng: np.random.Generator, height: int, width: int) -> Camera:
    """Horizon 28-55 % down the frame, vanishing point near the centre, camera 1.3-2.6 m up."""
    return Camera(
        height=height,
        width=width,
        horizon=height * rng.uniform(0.28, 0.55),
        vx=width * rng.uniform(0.38, 0.62),
        focal=width * rng.uniform(0.55, 1.0),
        cam_h=rng.uniform(1.3, 2.6),
    )


def _sky(canvas: Canvas, cam: Camera, rng: np.random.Generator, night: bool) -> None:
    """Gradient from zenith to horizon colour plus soft clouds; label sky everywhere (painted over later)."""
    if night:
        top, low = rng.uniform(0.0, 0.06, 3), rng.uniform(0.05, 0.2, 3)
    else:
        palettes = (((0.25, 0.45, 0.85), (0.7, 0.82, 0.95)), ((0.55, 0.57, 0.6), (0.8, 0.8, 0.82)),
                    ((0.3, 0.3, 0.6), (0.95, 0.6, 0.35)))
        top, low = (np.array(c) for c in palettes[rng.choice(3, p=(0.55, 0.3, 0.15))])
    rows = min(cam.height, int(cam.horizon) + 2)  # the ground covers everything below the horizon
    t = np.clip(np.arange(rows, dtype=np.float32) / max(cam.horizon, 1.0), 0, 1)[:, None, None] ** 0.7
    gradient = (1 - t) * np.float32(top) + t * np.float32(low)  # (rows, 1, 3)
    clouds = smooth_noise(rng, (rows, cam.width), 24) - np.float32(rng.uniform(0.4, 0.8))
    clouds = np.clip(clouds * 3, 0, 1)[..., None]
    canvas.image[:rows] = gradient * (1 - clouds) + clouds * np.float32(rng.uniform(0.6, 1.0))
    canvas.label[:] = SKY


def _road_marks(X: np.ndarray, Z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(h, w) bool: a dashed centre line (3-9 m period) and sometimes a zebra crossing (0.5 m stripes)."""
    marks = (np.abs(X - rng.uniform(-0.5, 0.5)) < 0.08) & ((Z / rng.uniform(3, 9)) % 1 < 0.5)
    if rng.random() < 0.25:
        z0 = rng.uniform(8, 30)
        marks |= (Z > z0) & (Z < z0 + 4) & ((X / 1.0) % 1 < 0.5)
    return marks


def _ground(canvas: Canvas, cam: Camera, left: Street, right: Street, rng: np.random.Generator) -> None:
    """Label and texture every pixel below the horizon by its lateral ground position X."""
    y0 = int(np.ceil(cam.horizon + 0.5))
    ys = np.arange(y0, cam.height, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(cam.width, dtype=np.float32)[None, :] + 0.5
    Z = cam.focal * cam.cam_h / (ys - cam.horizon)
    X = (xs - cam.vx) * Z / cam.focal
    is_left = xs[0] < cam.vx  # the side of the street depends on the column only
    dist = np.abs(X)
    zone = np.zeros(X.shape, np.uint8)  # 0 road, 1 parking, 2 sidewalk, 3 terrain, 4 ground
    for key in ("road", "parking", "sidewalk", "terrain"):
        zone += dist >= np.where(is_left, getattr(left, key), getattr(right, key))[None, :]
    grey = rng.uniform(0.22, 0.45) * rng.uniform(0.9, 1.1, 3)
    palette = np.stack([grey, grey * 0.9 + 0.05, rng.uniform(0.45, 0.75) * rng.uniform(0.85, 1.15, 3),
                        rng.uniform([0.25, 0.35, 0.1], [0.45, 0.55, 0.2]),
                        rng.uniform([0.35, 0.3, 0.25], [0.5, 0.45, 0.35])]).astype(np.float32)
    colour = palette[zone]
    Zb = np.broadcast_to(Z, X.shape)
    np.copyto(colour, np.float32(0.85), where=((zone == 0) & _road_marks(X, Zb, rng))[..., None])
    tiles = (zone == 2) & (((X / 0.5) % 1 < 0.08) | ((Z / 0.5) % 1 < 0.08))
    colour *= (np.float32(0.8) + np.float32(0.4) * canvas.noise_fine[y0:] - np.float32(0.2) * tiles)[..., None]
    canvas.image[y0:] = colour
    canvas.label[y0:] = np.array([ROAD, PARKING, SIDEWALK, TERRAIN, GROUND], np.uint8)[zone]
    canvas.depth[y0:] = Zb


def _facade_colours(rng: np.random.Generator, n: int) -> np.ndarray:
    base = rng.uniform(0.25, 0.8, (n, 1)) * rng.uniform(0.8, 1.2, (n, 3))
    return np.clip(base, 0, 1)


def _facade(canvas: Canvas, cam: Camera, X: float, rng: np.random.Generator, night: bool) -> None:
    """A row of buildings (different heights, colours, window grids; some gaps) along the line X."""
    z_end = rng.uniform(80, 400)
    bounds = np.cumsum(rng.uniform(6, 25, 64))
    bounds = np.concatenate([[1.0], bounds[bounds < z_end], [z_end]])
    n = len(bounds) - 1
    heights = rng.uniform(5, 28, n) * (rng.random(n) > 0.08)  # ~8 % gaps (alleys) show the sky
    colours = _facade_colours(rng, n)
    floor_h, pitch = rng.uniform(2.8, 3.6), rng.uniform(1.8, 3.5)
    glass = rng.uniform(0.05, 0.25, 3) if not night else np.array([0.9, 0.75, 0.4])
    patch = side_patch(cam, X, bounds[0], bounds[-1], 0.0, float(heights.max(initial=1.0)))
    if patch is None:
        return
    # Depth, building index and window columns vary per image column only: compute them in 1-D.
    z = patch.z[0]
    seg = np.clip(np.searchsorted(bounds, z, side="right") - 1, 0, n - 1)
    mask = patch.valid & (patch.v <= heights[seg][None, :])
    phase = ((z - bounds[seg]) / pitch) % 1
    window_cols = (phase > 0.3) & (phase < 0.75) & (rng.random(n)[seg] < (0.5 if night else 1.0))
    floor = (patch.v / floor_h) % 1
    lit = (floor > 0.35) & (floor < 0.8) & (patch.v > 1.0) & window_cols[None, :]
    shade = np.float32(canvas.side_light[int(X > 0)])
    colour = (colours[seg] * shade).astype(np.float32)[None, :, :] * (
        0.85 + 0.3 * canvas.noise_fine[patch.rows, patch.cols])[..., None]
    colour[lit] = glass * shade * (0.8 + 0.4 * canvas.noise_coarse[patch.rows, patch.cols][lit])[:, None]
    canvas.paint(patch, mask, colour, BUILDING)


def _far_end(canvas: Canvas, cam: Camera, rng: np.random.Generator) -> None:
    """Buildings (or a tree line) across the end of the street so the vanishing point is not always sky."""
    if rng.random() < 0.3:
        return
    z = rng.uniform(60, 250)
    x0 = -rng.uniform(15, 60)
    for width in rng.uniform(8, 25, 8):
        height = rng.uniform(4, 30)
        label, rgb = (BUILDING, _facade_colours(rng, 1)[0]) if rng.random() < 0.75 else (VEGETATION, (0.2, 0.35, 0.12))
        patch = front_patch(cam, x0, x0 + width, z, 0.0, height)
        if patch is not None:
            colour = np.asarray(rgb, np.float32) * (0.8 + 0.4 * canvas.noise_fine[patch.rows, patch.cols])[..., None]
            canvas.paint(patch, patch.valid, colour, label)
        x0 += width


def _ego_vehicle(canvas: Canvas, rng: np.random.Generator) -> None:
    """The recording car's bonnet along the bottom edge (ego vehicle, void), as in most Cityscapes frames."""
    h, w = canvas.label.shape
    depth = rng.uniform(0.04, 0.1) * h
    xs = (np.arange(w) + 0.5 - w / 2) / (0.75 * w)
    top = h - depth * np.clip(1 - xs**2, 0, 1)
    ys = np.arange(h)[:, None] + 0.5
    mask = ys > top[None, :]
    rows = slice(int(top.min()), h)
    colour = np.broadcast_to(rng.uniform(0.05, 0.35, 3).astype(np.float32), (h, w, 3)).copy()
    colour *= (0.7 + 0.6 * canvas.noise_coarse)[..., None]
    canvas.image[rows][mask[rows]] = colour[rows][mask[rows]]
    canvas.label[rows][mask[rows]] = EGO


def _tone_curve(rng: np.random.Generator, night: bool) -> np.ndarray:
    """(256, 3) uint8 lookup table: per-image exposure, colour cast, gamma and contrast, per channel."""
    gain = rng.uniform(0.35, 0.7) if night else rng.uniform(0.6, 1.4)
    cast = rng.uniform(0.75, 1.25, 3)
    x = np.arange(256)[:, None] / 255.0
    y = np.clip(x * (gain * cast / cast.mean()), 0, 1) ** rng.uniform(0.7, 1.4)
    y = 0.5 + (y - 0.5) * rng.uniform(0.6, 1.3)
    return np.clip(y * 255 + 0.5, 0, 255).astype(np.uint8)


def _photometric(image: np.ndarray, rng: np.random.Generator, night: bool) -> Image.Image:
    """Saturation and vignetting in float, then the per-channel tone curve; an RGB PIL image."""
    sat = np.float32(rng.uniform(0.3, 1.5))
    grey = (image[..., 0] + image[..., 1] + image[..., 2]) * np.float32((1 - sat) / 3)
    h, w = grey.shape
    r2 = ((np.arange(h, dtype=np.float32)[:, None] - h / 2) / h) ** 2
    r2 = r2 + ((np.arange(w, dtype=np.float32)[None, :] - w / 2) / w) ** 2
    vignette = (1 - np.float32(rng.uniform(0, 0.8)) * r2) * np.float32(255)
    out = image * sat
    out += grey[..., None]
    out *= vignette[..., None]
    out += np.float32(0.5)
    np.clip(out, 0, 255, out=out)
    # PIL applies a 768-entry (R, G, B) lookup table in C, much faster than numpy fancy indexing.
    return Image.fromarray(out.astype(np.uint8)).point(_tone_curve(rng, night).T.ravel().tolist())


def _fog(canvas: Canvas, rng: np.random.Generator) -> None:
    if rng.random() < 0.2:
        visibility = rng.uniform(30, 250)
        alpha = (1 - np.exp(-canvas.depth / visibility))[..., None]
        canvas.image[:] = canvas.image * (1 - alpha) + alpha * rng.uniform(0.55, 0.85)


def _finish(image: np.ndarray, rng: np.random.Generator, night: bool) -> np.ndarray:
    """Photometric changes, optical blur and sensor noise; returns (H, W, 3) uint8."""
    pil = _photometric(image, rng, night)
    radius = rng.choice([0.0, rng.uniform(0.3, 1.0), rng.uniform(1.0, 2.0)], p=(0.45, 0.4, 0.15))
    if radius > 0:
        pil = pil.filter(ImageFilter.GaussianBlur(float(radius)))
    sigma = rng.uniform(1.5, 10) if rng.random() < 0.75 else 0.0
    if sigma == 0.0:
        return np.asarray(pil, np.uint8).copy()
    # Sensor noise: uniform bytes through a table of Gaussian quantiles (sigma 1.5-10 grey levels);
    # ~5x cheaper than drawing normal floats for every pixel.
    quantiles = np.round(_NORMAL_QUANTILES * sigma).astype(np.int16)
    out = np.asarray(pil, np.int16) + quantiles[rng.integers(0, 256, image.shape, dtype=np.uint8)]
    return np.clip(out, 0, 255).astype(np.uint8)


def render_scene(
    rng: np.random.Generator, height: int, width: int, *, featured: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene: (H, W, 3) uint8 RGB, (H, W) uint8 labelIds, (H, W) int32 instance ids (0 = stuff).

    `featured` is the labelId of a rare class that this scene must contain (the set generator cycles through the
    rare classes so that every class appears in every split of at least a dozen images).
    """
    cam = make_camera(rng, height, width)
    night = rng.random() < 0.15
    canvas = Canvas.blank(height, width, rng)
    road_left, road_right = rng.uniform(3.0, 7.5, 2)
    left, right = random_side(rng, road_left), random_side(rng, road_right)
    _sky(canvas, cam, rng, night)
    _far_end(canvas, cam, rng)
    _ground(canvas, cam, left, right, rng)
    for sign, street in ((-1, left), (1, right)):
        if street.facade is not None:
            _facade(canvas, cam, sign * street.facade, rng, night)
    draw_objects(canvas, cam, rng, left, right, featured=featured, night=night)
    _fog(canvas, rng)
    if rng.random() < 0.6:
        _ego_vehicle(canvas, rng)
    return _finish(canvas.image, rng, night), canvas.label, canvas.instance
