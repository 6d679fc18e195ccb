"""Drawing boxes: boxes that leave the image are clipped to it (Darknet's draw_detections)."""
from __future__ import annotations

import math

import numpy as np

from darknetpy.detect import Detection
from darknetpy.image import draw_detections


def _det(class_id: int, x: float, y: float, w: float, h: float) -> Detection:
    return Detection(class_id, f"c{class_id}", 0.9, 0.9, x, y, w, h, 60, 50)


def test_an_untrained_heads_infinite_box_is_clipped_to_the_image_and_nan_is_skipped():
    image = np.zeros((50, 60, 3), np.uint8)
    out = draw_detections(image, [_det(0, 0.5, 0.5, math.inf, math.inf)], 3)
    assert out[0, :, :].any() and out[-1, :, :].any() and out[:, 0, :].any() and out[:, -1, :].any()  # the border
    assert not draw_detections(image, [_det(1, math.nan, 0.5, 0.1, 0.1)], 3).any()
    assert not image.any()  # drawn on a copy
