"""Things in the synthetic street scenes: vehicles, people, bikes, poles with signs and lights, trees, walls, fences.

Each drawer takes metric positions (X right, z ahead, metres) and paints planar patches with official
Cityscapes labelIds. Sizes are real-world (car 1.8 x 1.5 x 4.5 m, bus 2.55 x 3.2 x 12 m, person 1.5-1.95 m,
...), so apparent size follows depth. How often each class appears is set in `plan.py`: cars, poles, people in
most scenes; trucks, buses, trams, motorcycles and riders in few (as in Cityscapes, where they are the rare
classes that NVIDIA's recipe boosts with coarse images).
"""

from __future__ import annotations

import numpy as np

from .label_ids import (
    BICYCLE, BUS, CAR, LIGHT, MOTORCYCLE, PERSON, POLE, RAIL, RIDER, SIGN, STATIC, TRAIN, TRUCK, VEGETATION, WALL,
)
from .render import Camera, Canvas, ellipse_mask, front_patch, segment_mask, side_patch

# (width, height, length) ranges in metres.
_VEHICLE_SIZE = {
    CAR: ((1.7, 1.9), (1.4, 1.65), (4.0, 4.9)),
    TRUCK: ((2.35, 2.55), (2.9, 3.8), (6.0, 9.0)),
    BUS: ((2.5, 2.55), (3.0, 3.3), (11.0, 13.0)),
    TRAIN: ((2.4, 2.65), (3.3, 3.7), (25.0, 35.0)),
}
_CAR_COLOURS = np.array([(0.9, 0.9, 0.9), (0.08, 0.08, 0.09), (0.6, 0.62, 0.65), (0.6, 0.08, 0.07),
                         (0.1, 0.2, 0.5), (0.3, 0.32, 0.3), (0.75, 0.7, 0.55), (0.15, 0.35, 0.2)], np.float32)


def _body_colour(rng: np.random.Generator, kind: int) -> np.ndarray:
    if kind == CAR:
        base = _CAR_COLOURS[rng.integers(len(_CAR_COLOURS))]
    else:
        base = rng.uniform(0.2, 0.95, 3)
    return np.clip(base * rng.uniform(0.85, 1.15, 3), 0, 1)


def _vehicle_side(canvas: Canvas, cam: Camera, kind, X, z, size, colour, inst, rng) -> None:
    """The street-parallel face of a vehicle: body, window band, wheels, in its own coordinates."""
    w, h, length = size
    p = side_patch(cam, X, z, z + length, 0.0, h)
    if p is None:
        return
    u, v = p.u, p.v
    if kind == CAR:
        shape = (v >= 0.25) & ((v < 0.6 * h) | ((u > 0.2 * length) & (u < 0.8 * length)))
        glass = (v > 0.65 * h) & (v < 0.93 * h) & (u > 0.25 * length) & (u < 0.75 * length)
        wheels = [0.17 * length, 0.83 * length]
    else:
        shape = v >= 0.35
        glass = (v > 0.45 * h) & (v < 0.8 * h) & ((u / 1.4) % 1 < 0.85) if kind in (BUS, TRAIN) else (
            (u > length - 2.2) & (v > 0.55 * h) & (v < 0.8 * h))
        wheels = [1.5, length - 1.5] if kind != TRAIN else [2.0, 3.5, length - 3.5, length - 2.0]
    colour = canvas.texture(p, colour, 0.15)
    colour[glass] = canvas.texture(p, rng.uniform(0.05, 0.25, 3), 0.4)[glass]
    wheel = np.zeros_like(shape)
    for c in wheels:
        wheel |= ellipse_mask(u, v, (c, 0.34), 0.34, 0.34)
    colour[wheel] = 0.05
    canvas.paint(p, shape | wheel, colour, kind, inst)


def _vehicle_back(canvas: Canvas, cam: Camera, kind, X0, z, size, colour, inst, rng, night) -> None:
    """The face towards the camera: silhouette, rear/front window, lamps, wheels under the body."""
    w, h, _ = size
    p = front_patch(cam, X0, X0 + w, z, 0.0, h)
    if p is None:
        return
    u, v = p.u, p.v
    body = (v >= 0.3) & ((v < 0.6 * h) | ((u > 0.1 * w) & (u < 0.9 * w))) if kind == CAR else v >= 0.35
    wheels = (v < 0.4) & (((u > 0.05 * w) & (u < 0.22 * w)) | ((u > 0.78 * w) & (u < 0.95 * w)))
    glass = (v > (0.65 if kind == CAR else 0.55) * h) & (v < 0.92 * h) & (u > 0.15 * w) & (u < 0.85 * w)
    low, high = (0.42 * h, 0.52 * h) if kind == CAR else (0.45, 0.75)
    lamps = (v > low) & (v < high) & ((u < 0.16 * w) | (u > 0.84 * w))
    colour = canvas.texture(p, colour, 0.15)
    colour[glass] = canvas.texture(p, rng.uniform(0.03, 0.2, 3), 0.4)[glass]
    colour[wheels] = 0.05
    colour[lamps] = (1.0, 0.9, 0.7) if (night and rng.random() < 0.5) else (0.85, 0.05, 0.05)
    canvas.paint(p, body | wheels, colour, kind, inst)


def draw_vehicle(canvas: Canvas, cam: Camera, rng: np.random.Generator, kind: int, Xc: float, z: float,
                 night: bool) -> None:
    """A car / truck / bus / tram centred at Xc, its near face at depth z: the visible side, then the back."""
    size = tuple(rng.uniform(*r) for r in _VEHICLE_SIZE[kind])
    w = size[0]
    colour = _body_colour(rng, kind)
    inst = canvas.new_instance()
    if Xc - w / 2 > 0.05:
        _vehicle_side(canvas, cam, kind, Xc - w / 2, z, size, colour * 0.85, inst, rng)
    elif Xc + w / 2 < -0.05:
        _vehicle_side(canvas, cam, kind, Xc + w / 2, z, size, colour * 0.85, inst, rng)
    _vehicle_back(canvas, cam, kind, Xc - w / 2, z, size, colour, inst, rng, night)


def draw_rails(canvas: Canvas, cam: Camera, Xc: float, z0: float) -> None:
    """Tram track bed (rail track, void) with two steel rails, from depth z0 to the horizon."""
    y0 = int(np.ceil(cam.horizon + 0.5))
    y1 = min(cam.height, int(cam.y_of(0.0, z0)) + 1)
    if y1 <= y0:
        return
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
    z = cam.focal * cam.cam_h / (ys - cam.horizon)
    X = (np.arange(cam.width, dtype=np.float32)[None, :] + 0.5 - cam.vx) * z / cam.focal
    bed = np.abs(X - Xc) < 0.9
    steel = bed & (np.abs(np.abs(X - Xc) - 0.72) < 0.05)
    rows = slice(y0, y1)
    canvas.image[rows][bed] = (0.32, 0.28, 0.25)
    canvas.image[rows][steel] = (0.7, 0.7, 0.72)
    canvas.label[rows][bed] = RAIL


def _person_masks(u, v, h, stride, rng) -> list[tuple[np.ndarray, np.ndarray]]:
    """Head, torso + arms, legs of a walking person 0.6 m wide, h tall, as (mask, colour) pairs."""
    k, c = h / 1.75, 0.3
    skin = rng.uniform([0.55, 0.35, 0.25], [0.95, 0.75, 0.6])
    head = ellipse_mask(u, v, (c, h - 0.12 * k), 0.1 * k, 0.12 * k)
    torso = (np.abs(u - c) < 0.19 * k) & (v > 0.5 * h) & (v < 0.83 * h)
    arms = (np.abs(np.abs(u - c) - 0.23 * k) < 0.045 * k) & (v > 0.45 * h) & (v < 0.82 * h)
    t = np.clip(1 - v / (0.5 * h), 0, 1)
    legs = ((np.abs(u - c + 0.08 * k + stride * t) < 0.065 * k) | (np.abs(u - c - 0.08 * k - stride * t) < 0.065 * k))
    legs &= v <= 0.5 * h
    return [(legs, rng.uniform(0.02, 0.5, 3)), (torso | arms, rng.uniform(0.05, 0.95, 3)), (head, skin)]


def draw_person(canvas: Canvas, cam: Camera, rng: np.random.Generator, Xc: float, z: float) -> None:
    """A pedestrian (person), 1.5-1.95 m, walking (legs apart) or standing."""
    h = rng.uniform(1.5, 1.95) if rng.random() < 0.9 else rng.uniform(1.0, 1.4)
    p = front_patch(cam, Xc - 0.3, Xc + 0.3, z, 0.0, h)
    if p is None:
        return
    inst = canvas.new_instance()
    stride = rng.uniform(0.0, 0.12)
    for mask, rgb in _person_masks(p.u, p.v, h, stride, rng):
        canvas.paint(p, mask, canvas.texture(p, rgb, 0.3), PERSON, inst)


def _bike_masks(u, v, motor: bool) -> tuple[np.ndarray, np.ndarray]:
    """Side view of a bicycle (rings + frame) or motorcycle (discs + body), 1.8 m long; (shape, dark parts)."""
    r = 0.32 if motor else 0.34
    rear, front = (0.35, r), (1.45, r)
    if motor:
        wheels = ellipse_mask(u, v, rear, r, r) | ellipse_mask(u, v, front, r, r)
        body = ellipse_mask(u, v, (0.9, 0.7), 0.55, 0.25) | segment_mask(u, v, front, (1.3, 1.05), 0.08)
        return wheels | body, wheels
    ring = lambda c: np.abs(np.hypot(u - c[0], v - c[1]) - r) < 0.035  # noqa: E731 - tiny local shape
    frame = (segment_mask(u, v, rear, (0.75, 0.9), 0.05) | segment_mask(u, v, (0.75, 0.9), (1.3, 0.95), 0.05)
             | segment_mask(u, v, rear, (0.8, 0.35), 0.05) | segment_mask(u, v, (0.8, 0.35), (1.3, 0.95), 0.05)
             | segment_mask(u, v, front, (1.3, 1.05), 0.05) | segment_mask(u, v, (1.2, 1.05), (1.4, 1.05), 0.05))
    wheels = ring(rear) | ring(front)
    return wheels | frame, wheels


def _rider_masks(u, v, motor: bool) -> tuple[np.ndarray, np.ndarray]:
    """A seated rider over the bike: (body, head)."""
    seat = (0.75, 1.0) if not motor else (0.8, 0.95)
    shoulder = (1.0, 1.55)
    body = segment_mask(u, v, seat, shoulder, 0.3) | segment_mask(u, v, shoulder, (1.3, 1.05), 0.09)
    body |= segment_mask(u, v, seat, (1.05, 0.65), 0.14) | segment_mask(u, v, (1.05, 0.65), (0.9, 0.3), 0.11)
    return body, ellipse_mask(u, v, (1.08, 1.78), 0.12, 0.13)


def draw_bike(canvas: Canvas, cam: Camera, rng: np.random.Generator, Xc: float, z: float, motor: bool,
              rider: bool) -> None:
    """A bicycle or motorcycle seen from the side, optionally ridden (the rider is labelled rider)."""
    p = front_patch(cam, Xc - 0.9, Xc + 0.9, z, 0.0, 1.95 if rider else 1.2)
    if p is None:
        return
    u = p.u if rng.random() < 0.5 else 1.8 - p.u  # facing left or right
    shape, dark = _bike_masks(u, p.v, motor)
    colour = canvas.texture(p, rng.uniform(0.05, 0.9, 3), 0.2)
    colour[dark] = 0.06
    canvas.paint(p, shape, colour, MOTORCYCLE if motor else BICYCLE, canvas.new_instance())
    if rider:
        body, head = _rider_masks(u, p.v, motor)
        inst = canvas.new_instance()
        canvas.paint(p, body, canvas.texture(p, rng.uniform(0.05, 0.8, 3), 0.3), RIDER, inst)
        head_rgb = (0.1, 0.1, 0.1) if motor else rng.uniform([0.5, 0.3, 0.2], [0.9, 0.7, 0.5])
        canvas.paint(p, head, head_rgb, RIDER, inst)


def _sign(canvas: Canvas, cam: Camera, rng: np.random.Generator, X: float, z: float, v: float) -> None:
    """Traffic sign: red-ringed disc, blue disc, warning triangle or rectangle, 0.6-0.9 m."""
    r = rng.uniform(0.3, 0.45)
    p = front_patch(cam, X - r, X + r, z, v - r, v + r)
    if p is None:
        return
    du, dv = p.u - r, p.v - v
    shape = rng.integers(4)
    dist = np.hypot(du, dv) / r
    if shape == 0:
        mask, colour = dist <= 1, np.where((dist > 0.75)[..., None], (0.8, 0.05, 0.05), (0.95, 0.95, 0.95))
    elif shape == 1:
        mask, colour = dist <= 1, np.broadcast_to(np.float32([0.05, 0.25, 0.7]), (*dist.shape, 3))
    elif shape == 2:
        mask = (dv > -0.8 * r) & (np.abs(du) < (0.8 * r - dv) * 0.58)
        colour = np.broadcast_to(np.float32([0.95, 0.8, 0.1]), (*dist.shape, 3))
    else:
        mask = (np.abs(du) < r) & (np.abs(dv) < 0.6 * r)
        colour = np.broadcast_to(np.float32(rng.choice([[0.05, 0.4, 0.15], [0.05, 0.2, 0.6], [0.9, 0.9, 0.9]])),
                                 (*dist.shape, 3))
    canvas.paint(p, mask, colour * canvas.texture(p, 1.0, 0.2), SIGN, canvas.new_instance())


def _light(canvas: Canvas, cam: Camera, rng: np.random.Generator, X: float, z: float, v: float) -> None:
    """Traffic light: dark housing 0.35 x 0.95 m with red / amber / green lamps, one lit."""
    p = front_patch(cam, X - 0.17, X + 0.17, z, v, v + 0.95)
    if p is None:
        return
    colour = canvas.texture(p, rng.uniform(0.05, 0.2) * np.ones(3), 0.3)
    lit = rng.integers(3)
    for i, rgb in enumerate(((1.0, 0.1, 0.05), (1.0, 0.7, 0.0), (0.1, 1.0, 0.4))):
        lamp = ellipse_mask(p.u, p.v, (0.17, v + 0.8 - 0.3 * i), 0.1, 0.1)
        colour[lamp] = rgb if i == lit else np.float32(rgb) * 0.25
    canvas.paint(p, p.valid, colour, LIGHT, canvas.new_instance())


def draw_pole(canvas: Canvas, cam: Camera, rng: np.random.Generator, X: float, z: float, *, sign: bool,
              light: bool) -> None:
    """A pole, 3.5-9 m, with an optional traffic sign or traffic light on it or on an arm over the road."""
    h = rng.uniform(3.5, 9.0)
    width = rng.uniform(0.1, 0.25)
    grey = rng.uniform(0.25, 0.7) * np.ones(3)
    p = front_patch(cam, X - width / 2, X + width / 2, z, 0.0, h)
    if p is not None:
        canvas.paint(p, p.valid, canvas.texture(p, grey, 0.2), POLE, canvas.new_instance())
    toward_road = -np.sign(X) or 1.0
    arm_len = rng.uniform(1.0, 4.0) if h > 5 and rng.random() < 0.5 else 0.0
    if arm_len:
        xa, xb = sorted((X, X + toward_road * arm_len))
        p = front_patch(cam, xa, xb, z, h - 0.15, h)
        if p is not None:
            canvas.paint(p, p.valid, grey, POLE)
    if light:
        on_arm = arm_len > 0
        _light(canvas, cam, rng, X + toward_road * arm_len if on_arm else X, z - 0.2,
               h - 1.1 if on_arm else rng.uniform(2.2, min(h, 3.5)))
    if sign:
        _sign(canvas, cam, rng, X + toward_road * 0.2, z - 0.2, rng.uniform(2.0, min(h, 3.2) + 0.3))


def draw_tree(canvas: Canvas, cam: Camera, rng: np.random.Generator, X: float, z: float) -> None:
    """A tree (trunk and crown are both vegetation in Cityscapes): 3-5 overlapping crown ellipses."""
    trunk_h, radius = rng.uniform(1.8, 4.0), rng.uniform(1.2, 3.0)
    green = rng.choice([[0.2, 0.4, 0.1], [0.15, 0.3, 0.1], [0.45, 0.4, 0.1], [0.5, 0.25, 0.05]],
                       p=(0.5, 0.3, 0.1, 0.1))
    p = front_patch(cam, X - 1.5 * radius, X + 1.5 * radius, z, 0.0, trunk_h + 2.2 * radius)
    if p is None:
        return
    u, v = p.u - 1.5 * radius, p.v
    trunk = (np.abs(u) < 0.15 + 0.02 * trunk_h) & (v < trunk_h + 0.5)
    crown = np.zeros_like(trunk)
    for _ in range(rng.integers(3, 6)):
        cu, cv = rng.uniform(-0.6, 0.6) * radius, trunk_h + radius * rng.uniform(0.6, 1.3)
        crown |= ellipse_mask(u, v, (cu, cv), radius * rng.uniform(0.5, 0.9), radius * rng.uniform(0.5, 0.9))
    bark = rng.uniform(0.15, 0.3) * np.float32([1.0, 0.8, 0.6])
    base = np.where(crown[..., None], np.float32(green) * np.float32(rng.uniform(0.7, 1.3)), bark)
    colour = base * (np.float32(0.55) + np.float32(0.9) * canvas.noise_fine[p.rows, p.cols])[..., None]
    canvas.paint(p, trunk | crown, colour, VEGETATION)


def draw_barrier(canvas: Canvas, cam: Camera, rng: np.random.Generator, X: float, z0: float, z1: float,
                 kind: int) -> None:
    """A wall (concrete or brick) or fence (posts, rails and see-through mesh) along the line X."""
    h = rng.uniform(0.8, 2.5)
    p = side_patch(cam, X, z0, z1, 0.0, h)
    if p is None:
        return
    u, v = p.u, p.v
    if kind == WALL:
        colour = canvas.texture(p, rng.uniform(0.35, 0.75) * rng.uniform(0.85, 1.15, 3), 0.3, coarse=True)
        if rng.random() < 0.5:  # brick courses 0.25 m, joints offset every other course
            joint = ((v % 0.25) < 0.03) | (((u + 0.25 * (np.floor(v / 0.25) % 2)) % 0.5) < 0.03)
            colour[joint] *= 0.7
    else:
        behind = canvas.image[p.rows, p.cols]
        metal = rng.uniform(0.2, 0.7) * rng.uniform(0.85, 1.15, 3)
        wire = ((u + v) % 0.2 < 0.04) | ((u - v) % 0.2 < 0.04) | (u % 2.5 < 0.1) | (v > h - 0.08)
        colour = np.where(wire[..., None], metal, behind * 0.7 + metal * 0.3)
    canvas.paint(p, p.valid, colour, kind)


def draw_static(canvas: Canvas, cam: Camera, rng: np.random.Generator, X: float, z: float) -> None:
    """Street furniture (static, void): a bin or a bollard box."""
    w, h = rng.uniform(0.3, 1.2), rng.uniform(0.5, 1.2)
    p = front_patch(cam, X - w / 2, X + w / 2, z, 0.0, h)
    if p is not None:
        canvas.paint(p, p.valid, canvas.texture(p, rng.uniform(0.1, 0.6, 3), 0.3), STATIC)

