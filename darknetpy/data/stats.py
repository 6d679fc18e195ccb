"""Label statistics: boxes and images per class, box sizes, and a size histogram drawn as a PNG.

Box sizes are in image pixels (the relative ``w h`` of each label times its image's size from the
file header), summarised per class as ``sqrt(w * h)``; the histogram stacks the classes in each bin.
Drawn with OpenCV (no plotting library needed). Lines :func:`~darknetpy.data.labels.read_labels`
refuses are counted, not used (``darknetpy data check`` names them).
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from .check import dataset_images, image_size
from .labels import label_path, read_labels

__all__ = ["DatasetStats", "dataset_stats", "draw_size_histogram"]

_PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
            (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]  # RGB


@dataclass
class DatasetStats:
    """Counts per class and every box's ``(w, h)`` in pixels."""

    names: list[str]
    images: int = 0
    empty: int = 0
    missing: int = 0
    refused: int = 0
    boxes: Counter = field(default_factory=Counter)
    images_with: Counter = field(default_factory=Counter)
    sizes: dict[int, list[tuple[float, float]]] = field(default_factory=dict)

    def name(self, cls: int) -> str:
        return self.names[cls] if 0 <= cls < len(self.names) else str(cls)

    def table(self) -> str:
        rows = [("class", "boxes", "images", "mean w x h px", "median size", "min", "max")]
        for cls in sorted(set(self.boxes) | set(range(len(self.names)))):
            wh = np.asarray(self.sizes.get(cls, []), np.float64).reshape(-1, 2)
            side = np.sqrt(wh[:, 0] * wh[:, 1])
            stats = (f"{wh[:, 0].mean():.0f} x {wh[:, 1].mean():.0f}", f"{np.median(side):.1f}", f"{side.min():.1f}",
                     f"{side.max():.1f}") if len(wh) else ("-", "-", "-", "-")
            rows.append((f"{cls} {self.name(cls)}", str(self.boxes[cls]), str(self.images_with[cls])) + stats)
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))) for r in rows]
        lines.append(f"{self.images} images ({self.empty} without boxes, {self.missing} without a label file), "
                     f"{sum(self.boxes.values())} boxes, {self.refused} label lines refused; size = sqrt(w*h) in image pixels")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def dataset_stats(
    sources: "str | os.PathLike | list[str | os.PathLike]",
    *,
    classes: int | None = None,
    names: list[str] | None = None,
    flavor: str = "alexeyab",
) -> DatasetStats:
    """Count the boxes of every image of ``sources`` (``.data`` files, image lists, folders, images)."""
    items = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    groups, config = dataset_images(items)
    if config is not None:
        classes = classes if classes is not None else (config.classes or None)
        if names is None:
            try:
                names = config.names()
            except DataError:
                names = None
    stats = DatasetStats(list(names or []))
    for image in dict.fromkeys(Path(os.path.abspath(p)) for paths in groups.values() for p in paths):
        stats.images += 1
        label = label_path(image, flavor)
        boxes, problems = read_labels(label, classes)
        if not label.exists():
            stats.missing += 1
            continue
        stats.refused += len(problems)
        if not len(boxes):
            stats.empty += 1
            continue
        size = image_size(image) if image.exists() else None
        for cls, _, _, w, h in boxes.tolist():
            stats.boxes[int(cls)] += 1
            if size:
                stats.sizes.setdefault(int(cls), []).append((w * size[0], h * size[1]))
        stats.images_with.update({int(c) for c in boxes[:, 0]})
    return stats


def _nice_step(span: float, target: int) -> float:
    raw = max(span, 1e-9) / target
    power = 10 ** np.floor(np.log10(raw))
    return float(min((m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw), default=10 * power))


def draw_size_histogram(
    stats: DatasetStats, path: "str | os.PathLike", *, bins: int = 30, width: int = 900, height: int = 520,
) -> Path:
    """Write a PNG histogram of box sizes (``sqrt(w*h)`` in pixels), the classes stacked in each bin."""
    import cv2

    classes = sorted(stats.sizes)
    sides = {c: np.sqrt(np.prod(np.asarray(stats.sizes[c], np.float64).reshape(-1, 2), axis=1)) for c in classes}
    top = max((float(s.max()) for s in sides.values() if len(s)), default=1.0)
    step = _nice_step(top, bins)
    edges = np.arange(0.0, top + step, step)
    if len(edges) < 2:
        edges = np.array([0.0, step])
    counts = np.zeros((len(classes), len(edges) - 1), np.int64)
    for row, cls in enumerate(classes):
        counts[row] = np.histogram(sides[cls], edges)[0]
    ymax = max(int(counts.sum(axis=0).max()), 1)
    ystep = _nice_step(ymax, 5)
    ymax = float(np.ceil(ymax / ystep) * ystep)
    img = np.full((height, width, 3), 255, np.uint8)
    left, right, top_px, bottom = 70, width - 20, 40, height - 60
    font, black, grey = cv2.FONT_HERSHEY_SIMPLEX, (0, 0, 0), (200, 200, 200)

    def to_x(v: float) -> int:
        return round(left + (right - left) * v / edges[-1])

    def to_y(v: float) -> int:
        return round(bottom - (bottom - top_px) * v / ymax)

    for v in np.arange(0.0, ymax + ystep / 2, ystep):  # grid and y labels
        cv2.line(img, (left, to_y(v)), (right, to_y(v)), grey, 1)
        cv2.putText(img, f"{v:g}", (8, to_y(v) + 5), font, 0.45, black, 1, cv2.LINE_AA)
    base = np.zeros(len(edges) - 1)
    for row, cls in zip(counts, classes):
        color = _PALETTE[cls % len(_PALETTE)][::-1]  # OpenCV draws BGR
        for i, n in enumerate(row):
            if n:
                cv2.rectangle(img, (to_x(edges[i]) + 1, to_y(base[i] + n)), (to_x(edges[i + 1]) - 1, to_y(base[i])), color, -1)
        base += row
    cv2.line(img, (left, bottom), (right, bottom), black, 1)
    cv2.line(img, (left, top_px), (left, bottom), black, 1)
    label_every = max(1, int(np.ceil((len(edges) - 1) / 12)))
    for i in range(0, len(edges), label_every):
        cv2.line(img, (to_x(edges[i]), bottom), (to_x(edges[i]), bottom + 5), black, 1)
        cv2.putText(img, f"{edges[i]:g}", (to_x(edges[i]) - 10, bottom + 20), font, 0.45, black, 1, cv2.LINE_AA)
    n_boxes = sum(len(s) for s in sides.values())
    cv2.putText(img, f"box size sqrt(w*h) in image pixels ({n_boxes} boxes, {stats.images} images)",
                (left, height - 15), font, 0.55, black, 1, cv2.LINE_AA)
    cv2.putText(img, "boxes", (8, top_px - 15), font, 0.5, black, 1, cv2.LINE_AA)
    for k, cls in enumerate(classes):  # legend
        y = top_px + 10 + 22 * k
        cv2.rectangle(img, (right - 210, y - 10), (right - 196, y + 4), _PALETTE[cls % len(_PALETTE)][::-1], -1)
        cv2.putText(img, f"{stats.name(cls)} ({len(sides[cls])})", (right - 188, y + 3), font, 0.5, black, 1, cv2.LINE_AA)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(os.fspath(out), img):
        raise DataError(f"{out}: cannot write the PNG")
    return out
