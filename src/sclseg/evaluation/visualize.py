"""Pictures of an evaluation a person can read: an example grid (image | ground truth | prediction | error map)
and a per-class IoU bar chart.

The grid needs only PIL. The bar chart uses matplotlib (the optional extra `pip install sclseg[plots]`); without
it a plainer chart is drawn with PIL, so `--save-examples` never fails for a missing plotting library.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..data.labels import IGNORE_INDEX, colorize

__all__ = ["ERROR_COLORS", "error_map", "example_grid", "iou_bar_chart"]

# error map colours: right, wrong, not evaluated (ground truth 255)
ERROR_COLORS = {"right": (0, 160, 0), "wrong": (220, 0, 0), "ignored": (0, 0, 0)}
_GAP = 4  # pixels between panels


def error_map(label: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """(H, W) ground-truth and predicted train ids → (H, W, 3) uint8: green right, red wrong, black ignored."""
    out = np.empty((*label.shape, 3), dtype=np.uint8)
    out[:] = ERROR_COLORS["wrong"]
    out[label == prediction] = ERROR_COLORS["right"]
    out[label == IGNORE_INDEX] = ERROR_COLORS["ignored"]
    return out


def example_grid(rows: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], max_width: int = 512) -> Image.Image:
    """One row per example: (image (H, W, 3) uint8, label (H, W) train ids, prediction (H, W) train ids) →
    an RGB grid of four panels per row (image | ground truth | prediction | error map), each panel scaled to
    at most `max_width` pixels wide (nearest for label panels, so colours stay exact)."""
    if not rows:
        raise ValueError("example_grid needs at least one (image, label, prediction) row")
    panels = []
    for image, label, prediction in rows:
        scale = min(1.0, max_width / image.shape[1])
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        row = [Image.fromarray(image).resize(size, Image.BILINEAR)]
        row += [Image.fromarray(a).resize(size, Image.NEAREST)
                for a in (colorize(label), colorize(prediction), error_map(label, prediction))]
        panels.append(row)
    width = max(sum(p.width for p in row) + _GAP * 3 for row in panels)
    height = sum(row[0].height for row in panels) + _GAP * (len(panels) - 1)
    grid = Image.new("RGB", (width, height), (255, 255, 255))
    y = 0
    for row in panels:
        x = 0
        for panel in row:
            grid.paste(panel, (x, y))
            x += panel.width + _GAP
        y += row[0].height + _GAP
    return grid


def _bar_chart_matplotlib(names: list[str], values: list[float], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.3 * len(names) + 1.2))
    shown = [0.0 if math.isnan(v) else v for v in values]
    ax.barh(range(len(names)), shown, color="#4c72b0")
    ax.set_yticks(range(len(names)), [f"{n} (absent)" if math.isnan(v) else n for n, v in zip(names, values)])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("IoU")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _bar_chart_pil(names: list[str], values: list[float], title: str, path: Path) -> None:
    row, label_width, bar_width = 18, 170, 400
    image = Image.new("RGB", (label_width + bar_width + 60, row * (len(names) + 2)), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.text((4, 2), title, fill=(0, 0, 0))
    for i, (name, value) in enumerate(zip(names, values)):
        y = row * (i + 1) + 4
        draw.text((4, y), name, fill=(0, 0, 0))
        if math.isnan(value):
            draw.text((label_width, y), "absent", fill=(128, 128, 128))
            continue
        draw.rectangle((label_width, y, label_width + round(value * bar_width), y + row - 6), fill=(76, 114, 176))
        draw.text((label_width + bar_width + 6, y), f"{value:.3f}", fill=(0, 0, 0))
    image.save(path)


def iou_bar_chart(per_class_iou: Mapping[str, float], path: str | Path, title: str = "IoU per class") -> str:
    """Write a horizontal bar chart of {class name: IoU} (NaN = class absent, drawn as "absent") to `path`.
    Returns the backend used: "matplotlib", or "pil" when matplotlib is not installed."""
    names, values = list(per_class_iou), [float(v) for v in per_class_iou.values()]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        _bar_chart_matplotlib(names, values, title, path)
        return "matplotlib"
    except ImportError:
        _bar_chart_pil(names, values, title, path)
        return "pil"
