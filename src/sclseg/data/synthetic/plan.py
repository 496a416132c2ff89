"""Which things a synthetic street scene holds, where, and in what order they are drawn.

Per-scene probabilities give Cityscapes-like frequencies: cars, poles, trees and people in most scenes;
walls, fences, traffic lights, bicycles rarer; trucks, buses, trams, motorcycles and riders in about one scene
in ten. A `featured` rare class (cycled by the set generator) is always placed fairly near the camera, so every
class appears in every split of a dozen or more images. Barriers and rail beds go first; all other things are
drawn far to near (painter's algorithm).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .label_ids import BICYCLE, BUS, CAR, FENCE, LIGHT, MOTORCYCLE, RIDER, TRAIN, TRUCK, WALL
from .objects import draw_barrier, draw_bike, draw_person, draw_pole, draw_rails, draw_static, draw_tree, draw_vehicle
from .render import Camera, Canvas
from .street import Street

# The labelIds the set generator cycles through as `featured`: the classes that few scenes would hold otherwise.
RARE_LABEL_IDS: tuple[int, ...] = (TRUCK, BUS, TRAIN, MOTORCYCLE, RIDER, BICYCLE, WALL, FENCE, LIGHT)

Item = tuple[float, Callable[[], None]]


def _series(rng: np.random.Generator, start: tuple[float, float], step: tuple[float, float],
            end: float) -> list[float]:
    """Depths start, start + step, ... (random steps) up to `end` metres."""
    zs, z = [], rng.uniform(*start)
    while z < end:
        zs.append(z)
        z += rng.uniform(*step)
    return zs


def _barriers(canvas: Canvas, cam: Camera, rng, sides, featured: int | None) -> None:
    forced_side = rng.integers(2)
    for index, (sign, street) in enumerate(sides):
        X = sign * (street.sidewalk + 0.05 if street.sidewalk > street.parking else street.road + 0.3)
        for kind, prob in ((WALL, 0.2), (FENCE, 0.25)):
            forced = featured == kind and index == forced_side
            if forced or rng.random() < prob:
                z0 = rng.uniform(3, 8) if forced else rng.uniform(3, 30)
                draw_barrier(canvas, cam, rng, X, z0, z0 + rng.uniform(10, 60), kind)


def _roadside(canvas: Canvas, cam: Camera, rng, sides, featured: int | None, items: list[Item]) -> None:
    """Trees, poles (with signs / lights), static furniture along both sides."""
    light_side = rng.integers(2)
    for index, (sign, street) in enumerate(sides):
        if rng.random() < 0.7:
            wide_walk = street.sidewalk - street.parking > 2
            outer = street.sidewalk if wide_walk else min(street.terrain, street.sidewalk + 4)
            X = sign * max(outer - 0.8, street.parking + 0.3)
            for z in _series(rng, (4, 14), (8, 20), 120):
                if rng.random() < 0.8:
                    items.append((z, lambda X=X, z=z: draw_tree(canvas, cam, rng, X, z)))
        if rng.random() < 0.85 or (featured == LIGHT and index == light_side):
            X = sign * (street.parking + 0.35)
            for i, z in enumerate(_series(rng, (3, 15), (12, 35), 150)):
                light = rng.random() < 0.12 or (featured == LIGHT and index == light_side and i == 0)
                sign_on = rng.random() < 0.35
                items.append((z, lambda X=X, z=z, s=sign_on, li=light: draw_pole(canvas, cam, rng, X, z, sign=s,
                                                                                 light=li)))
        for z in rng.uniform(4, 50, rng.poisson(0.8)):
            X = sign * rng.uniform(street.parking + 0.5, max(street.sidewalk, street.parking + 0.6))
            items.append((z, lambda X=X, z=z: draw_static(canvas, cam, rng, X, z)))


def _traffic(canvas: Canvas, cam: Camera, rng, left: Street, right: Street, featured: int | None, night: bool,
             items: list[Item]) -> None:
    """Cars in lanes and parking strips, rare big vehicles (a tram brings its rail bed)."""
    lane = lambda: rng.uniform(-left.road + 1.1, right.road - 1.1)  # noqa: E731
    kinds = [CAR] * rng.poisson(2.5)
    kinds += [k for k, p in ((TRUCK, 0.1), (BUS, 0.08)) if rng.random() < p or featured == k]
    for kind in kinds:
        z = rng.uniform(7, 22) if kind == featured else rng.uniform(6, 100)
        items.append((z, lambda k=kind, X=lane(), z=z: draw_vehicle(canvas, cam, rng, k, X, z, night)))
    for sign, street in ((-1, left), (1, right)):
        if street.parking > street.road:
            for z in _series(rng, (5, 12), (5, 9), 80):
                if rng.random() < 0.7:
                    X = sign * (street.road + 1.2)
                    items.append((z, lambda X=X, z=z: draw_vehicle(canvas, cam, rng, CAR, X, z, night)))
    if rng.random() < 0.06 or featured == TRAIN:
        Xt, z = lane(), rng.uniform(8, 25) if featured == TRAIN else rng.uniform(8, 60)
        draw_rails(canvas, cam, Xt, 0.5)
        items.append((z, lambda: draw_vehicle(canvas, cam, rng, TRAIN, Xt, z, night)))


def _people(canvas: Canvas, cam: Camera, rng, left: Street, right: Street, featured: int | None,
            items: list[Item]) -> None:
    """Pedestrians on sidewalks (some crossing), cyclists and motorcyclists on the road, parked bicycles."""
    for _ in range(rng.poisson(2.2)):
        sign, street = (-1, left) if rng.random() < 0.5 else (1, right)
        on_walk = street.sidewalk - street.parking > 0.8 and rng.random() < 0.85
        X = sign * rng.uniform(street.parking + 0.4, street.sidewalk - 0.3) if on_walk else rng.uniform(
            -left.road, right.road)
        z = rng.uniform(4, 60)
        items.append((z, lambda X=X, z=z: draw_person(canvas, cam, rng, X, z)))
    # (motorised, probability, featured classes that force it): bicycles are ridden, motorcycles mostly.
    for motor, prob, forcing in ((False, 0.12, (BICYCLE, RIDER)), (True, 0.06, (MOTORCYCLE,))):
        forced = featured in forcing
        ridden = not motor or forced or rng.random() < 0.8
        if forced or rng.random() < prob:
            z = rng.uniform(6, 18) if forced else rng.uniform(6, 60)
            X = rng.uniform(right.road - 2.5, right.road - 0.8)
            items.append((z, lambda X=X, z=z, m=motor, r=ridden: draw_bike(canvas, cam, rng, X, z, m, r)))
    if rng.random() < 0.15:
        sign, street = (-1, left) if rng.random() < 0.5 else (1, right)
        X, z = sign * (street.sidewalk - 0.5), rng.uniform(4, 30)
        items.append((z, lambda: draw_bike(canvas, cam, rng, X, z, False, False)))


def draw_objects(canvas: Canvas, cam: Camera, rng: np.random.Generator, left: Street, right: Street, *,
                 featured: int | None = None, night: bool = False) -> None:
    """Place and draw every thing of the scene on top of the ground and facades."""
    sides = ((-1, left), (1, right))
    _barriers(canvas, cam, rng, sides, featured)
    items: list[Item] = []
    _roadside(canvas, cam, rng, sides, featured, items)
    _traffic(canvas, cam, rng, left, right, featured, night, items)
    _people(canvas, cam, rng, left, right, featured, items)
    for _, draw in sorted(items, key=lambda item: -item[0]):
        draw()
