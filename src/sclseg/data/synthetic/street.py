"""The lateral layout of one side of a synthetic street: road, parking, sidewalk, grass and building line.

Its own module because both the scene (which paints the ground and facades from it) and the plan (which
places things along it) read it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Street:
    """Lateral layout of one side of the street, in metres from the camera (positive outwards)."""

    road: float  # road edge
    parking: float  # outer edge of a parking strip (== road when none)
    sidewalk: float  # outer edge of the sidewalk
    terrain: float  # outer edge of a grass strip
    facade: float | None  # building line, None = open side (park / field)


def random_side(rng: np.random.Generator, road: float) -> Street:
    """One side with its road edge `road` metres out; the strips beyond it are each present or not at random."""
    parking = road + (rng.uniform(2.0, 2.6) if rng.random() < 0.2 else 0.0)
    sidewalk = parking + (rng.uniform(1.5, 5.0) if rng.random() < 0.9 else 0.0)
    terrain = sidewalk + (rng.uniform(1.0, 5.0) if rng.random() < 0.35 else 0.0)
    if rng.random() < 0.85:
        return Street(road, parking, sidewalk, terrain, terrain + rng.uniform(0.0, 1.5))
    # An open side: a park or field (terrain) reaching the horizon, sometimes bare ground (void).
    return Street(road, parking, sidewalk, np.inf if rng.random() < 0.75 else terrain, None)
