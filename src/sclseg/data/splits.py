"""Semi-supervised splits: seeded labeled subsets (1/16 ... 1/2) and list files of image ids.

The SCL paper (Kim et al. 2020, §4.1) labels all 2,975 fine training images and uses the ~20k coarse images as
unlabeled data; the smaller label budgets here follow the semi-supervised protocol of French et al. (2019): a
fraction of the training images keeps its labels and the rest becomes unlabeled data.

Rounding: a fraction `f` of `n` images labels `ceil(n * f)` of them (f taken as an exact fraction), which gives
2,975 -> 186 (1/16), 372 (1/8), 744 (1/4), 1,488 (1/2), never 0 for a non-empty set.

For one seed the subsets are nested (the 1/16 ids are among the 1/8 ids, and so on): every fraction takes a prefix
of the same seeded permutation of the *sorted* ids, so the split depends on the set of ids, not on their order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import numpy as np

STANDARD_FRACTIONS: tuple[str, ...] = ("1/16", "1/8", "1/4", "1/2")

_Item = TypeVar("_Item")


@dataclass(frozen=True)
class SemiSupervisedSplit:
    """Disjoint labeled / unlabeled image ids; both sorted."""

    labeled: tuple[str, ...]
    unlabeled: tuple[str, ...]


def _as_fraction(fraction: float | str | Fraction) -> Fraction:
    # limit_denominator turns the float 1/16 (or 0.1) into the exact fraction the user meant.
    value = Fraction(fraction).limit_denominator(1_000_000)
    if not 0 < value <= 1:
        raise ValueError(f"labeled fraction must be in (0, 1], got {fraction!r}")
    return value


def labeled_count(num_images: int, fraction: float | str | Fraction) -> int:
    """`ceil(num_images * fraction)`: 2,975 images -> 186, 372, 744, 1,488 for 1/16, 1/8, 1/4, 1/2."""
    return math.ceil(num_images * _as_fraction(fraction))


def make_semi_supervised_split(
    image_ids: Iterable[str], fraction: float | str | Fraction, *, seed: int = 0
) -> SemiSupervisedSplit:
    """Draw `labeled_count(n, fraction)` labeled ids with a seeded permutation; the rest are unlabeled."""
    ids = sorted(image_ids)
    if len(set(ids)) != len(ids):
        raise ValueError("image ids contain duplicates")
    count = labeled_count(len(ids), fraction)
    order = np.random.default_rng(seed).permutation(len(ids))
    chosen = np.zeros(len(ids), dtype=bool)
    chosen[order[:count]] = True
    labeled = tuple(i for i, keep in zip(ids, chosen) if keep)
    unlabeled = tuple(i for i, keep in zip(ids, chosen) if not keep)
    return SemiSupervisedSplit(labeled, unlabeled)


def write_id_list(path: str | Path, image_ids: Iterable[str], *, header: str | None = None) -> Path:
    """Write one image id per line (sorted), after an optional `# header` comment block."""
    path = Path(path)
    lines = [f"# {line}".rstrip() for line in header.splitlines()] if header else []
    lines += sorted(image_ids)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _unknown_error(path: Path, unknown: list[str]) -> ValueError:
    shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
    return ValueError(f"{path}: {len(unknown)} image id(s) not in the data set: {shown}")


def read_id_list(path: str | Path, known_ids: Iterable[str] | None = None) -> list[str]:
    """Read image ids, one per line; blank lines and `#` comments (whole-line or trailing) are skipped.

    Raises `ValueError` for an empty list, duplicates, or (when `known_ids` is given) ids not among them,
    listing the first few offenders.
    """
    path = Path(path)
    ids = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    ids = [i for i in ids if i]
    if not ids:
        raise ValueError(f"{path}: no image ids (one per line expected, `#` starts a comment)")
    seen, duplicates = set(), []
    for image_id in ids:
        if image_id in seen:
            duplicates.append(image_id)
        seen.add(image_id)
    if duplicates:
        raise ValueError(f"{path}: duplicate image id(s): {', '.join(duplicates[:5])}")
    if known_ids is not None:
        known = set(known_ids)
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise _unknown_error(path, unknown)
    return ids


def select_items(items: Sequence[_Item], image_ids: Iterable[str]) -> tuple[list[_Item], list[_Item]]:
    """Partition items (anything with `.image_id`, e.g. `CityscapesItem`) into (in `image_ids`, the rest).

    Order follows `items`; raises `ValueError` if an id matches no item.
    """
    wanted = set(image_ids)
    unknown = sorted(wanted - {item.image_id for item in items})
    if unknown:
        shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise ValueError(f"{len(unknown)} image id(s) not in the data set: {shown}")
    chosen = [item for item in items if item.image_id in wanted]
    rest = [item for item in items if item.image_id not in wanted]
    return chosen, rest
