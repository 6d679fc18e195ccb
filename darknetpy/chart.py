"""``chart.png``: the loss and mAP curves of a training run, drawn with OpenCV like AlexeyAB's chart."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["draw_chart"]

_W, _H, _LEFT, _RIGHT, _TOP, _BOTTOM = 1000, 640, 70, 70, 40, 60


def draw_chart(
    path: "str | os.PathLike",
    losses: Sequence[tuple[int, float]],
    maps: Sequence[tuple[int, float]],
    max_batches: int,
    title: str = "",
) -> Path:
    """Draw avg loss (blue) and mAP@0.50 (red, right axis in %) against iterations; write PNG atomically."""
    import cv2

    from .weights import atomic_write

    img = np.full((_H, _W, 3), 255, np.uint8)
    x0, x1, y0, y1 = _LEFT, _W - _RIGHT, _TOP, _H - _BOTTOM
    finite = [v for _, v in losses if math.isfinite(v)]
    top = max(finite) * 1.05 if finite else 1.0
    top = top if top > 0 else 1.0
    n = max(1, max_batches)
    sx = lambda it: int(round(x0 + (x1 - x0) * min(it, n) / n))  # noqa: E731
    sy = lambda v: int(round(y1 - (y1 - y0) * min(max(v, 0.0), top) / top))  # noqa: E731
    font = cv2.FONT_HERSHEY_SIMPLEX
    for k in range(11):  # grid, loss axis on the left, iterations below
        y = int(round(y1 - (y1 - y0) * k / 10))
        cv2.line(img, (x0, y), (x1, y), (225, 225, 225), 1)
        cv2.putText(img, f"{top * k / 10:.4g}", (5, y + 4), font, 0.4, (120, 60, 0), 1, cv2.LINE_AA)
        cv2.putText(img, f"{10 * k}%", (x1 + 8, y + 4), font, 0.4, (0, 0, 200), 1, cv2.LINE_AA)
        x = int(round(x0 + (x1 - x0) * k / 10))
        cv2.line(img, (x, y0), (x, y1), (225, 225, 225), 1)
        cv2.putText(img, str(int(n * k / 10)), (x - 12, y1 + 18), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.rectangle(img, (x0, y0), (x1, y1), (0, 0, 0), 1)
    points = np.array([(sx(it), sy(v)) for it, v in losses if math.isfinite(v)], np.int32)
    if len(points) > 1:
        cv2.polylines(img, [points.reshape(-1, 1, 2)], False, (200, 80, 0), 1, cv2.LINE_AA)  # BGR: blue
    if maps:
        pts = np.array([(sx(it), int(round(y1 - (y1 - y0) * m))) for it, m in maps], np.int32)
        if len(pts) > 1:
            cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, (0, 0, 220), 2, cv2.LINE_AA)
        for (it, m), (x, y) in zip(maps, pts):
            cv2.circle(img, (int(x), int(y)), 3, (0, 0, 220), -1)
            cv2.putText(img, f"{100 * m:.1f}%", (int(x) - 20, int(y) - 8), font, 0.45, (0, 0, 220), 1, cv2.LINE_AA)
    last = f"avg loss {losses[-1][1]:.4f} at {losses[-1][0]}" if losses else "no iterations yet"
    best = f", best mAP {100 * max(m for _, m in maps):.2f}%" if maps else ""
    cv2.putText(img, f"{title}  {last}{best}", (x0, 25), font, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "iteration", (x1 - 80, _H - 12), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    ok, png = cv2.imencode(".png", img)
    if not ok:  # pragma: no cover - OpenCV always encodes PNG
        raise RuntimeError("OpenCV could not encode the chart")
    out = Path(path)
    atomic_write(out, lambda f: f.write(png.tobytes()))
    return out
