"""Boxes as Darknet computes them: ``(x, y, w, h)`` centre and size, IoU and its variants, and the
correction from network coordinates back to the image.

Darknet: ``src/box.c`` (``overlap``, ``box_intersection``, ``box_iou``, ``box_diou``,
``box_diounms``), ``src/yolo_layer.c:correct_yolo_boxes`` (darknet-reference.md §3.5, §7.1).
All maths in float32, in Darknet's order of operations.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["Detections", "box_iou", "box_diou", "box_diounms", "correct_boxes", "iou_matrix", "grid_candidates", "threshold_probs"]


@dataclass
class Detections:
    """Candidate boxes of one image, before or after NMS (Darknet's ``detection`` array).

    ``boxes`` ``(N, 4)`` is ``x, y, w, h`` (centre and size) relative to the image; ``probs``
    ``(N, C)`` holds ``objectness·class`` with values ``<= thresh`` zeroed.
    """

    boxes: Tensor
    objectness: Tensor
    probs: Tensor
    extra: dict = field(default_factory=dict)  # e.g. Gaussian YOLO uncertainties

    @property
    def classes(self) -> int:
        return self.probs.shape[1]

    def __len__(self) -> int:
        return self.boxes.shape[0]

    def select(self, keep: Tensor) -> "Detections":
        return Detections(self.boxes[keep], self.objectness[keep], self.probs[keep], {k: v[keep] for k, v in self.extra.items()})

    @staticmethod
    def cat(parts: "list[Detections]", classes: int) -> "Detections":
        if not parts:
            z = torch.zeros(0)
            return Detections(z.view(0, 4), z, z.view(0, classes))
        extra_keys = set.intersection(*(set(p.extra) for p in parts)) if parts else set()
        return Detections(
            torch.cat([p.boxes for p in parts]),
            torch.cat([p.objectness for p in parts]),
            torch.cat([p.probs for p in parts]),
            {k: torch.cat([p.extra[k] for p in parts]) for k in extra_keys},
        )


def _corners(b: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    x, y, w, h = b.unbind(-1)
    return x - w / 2, y - h / 2, x + w / 2, y + h / 2


def _overlap(x1: Tensor, w1: Tensor, x2: Tensor, w2: Tensor) -> Tensor:
    """``overlap``: ``min(r1, r2) - max(l1, l2)`` (negative when apart)."""
    left = torch.maximum(x1 - w1 / 2, x2 - w2 / 2)
    right = torch.minimum(x1 + w1 / 2, x2 + w2 / 2)
    return right - left


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """``box_iou`` of broadcastable ``(..., 4)`` boxes."""
    w = _overlap(a[..., 0], a[..., 2], b[..., 0], b[..., 2])
    h = _overlap(a[..., 1], a[..., 3], b[..., 1], b[..., 3])
    inter = torch.where((w < 0) | (h < 0), torch.zeros_like(w), w * h)
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    return inter / union


def _enclosing_diagonal_sq(a: Tensor, b: Tensor) -> Tensor:
    al, at, ar, ab = _corners(a)
    bl, bt, br, bb = _corners(b)
    w = torch.maximum(ar, br) - torch.minimum(al, bl)
    h = torch.maximum(ab, bb) - torch.minimum(at, bt)
    return w * w + h * h


def _centre_distance_sq(a: Tensor, b: Tensor) -> Tensor:
    return (a[..., 0] - b[..., 0]) ** 2 + (a[..., 1] - b[..., 1]) ** 2


def box_diou(a: Tensor, b: Tensor, power: float = 0.6) -> Tensor:
    """``box_diou`` as AlexeyAB's greedy NMS uses it: ``iou - (d²/c²)^0.6`` (``iou`` when ``c = 0``)."""
    iou = box_iou(a, b)
    c = _enclosing_diagonal_sq(a, b)
    term = torch.pow(_centre_distance_sq(a, b) / c, power)
    return torch.where(c == 0, iou, iou - term)


def box_diounms(a: Tensor, b: Tensor, beta: float) -> Tensor:
    """``box_diounms``: ``iou - (d²/c²)^beta_nms``."""
    return box_diou(a, b, beta)


def iou_matrix(boxes: Tensor, kind: str = "iou", beta: float = 0.6) -> Tensor:
    """Pairwise ``(N, N)`` IoU (or ``diou``/``diounms`` with ``beta``) of ``(N, 4)`` boxes."""
    a, b = boxes[:, None, :], boxes[None, :, :]
    if kind == "iou":
        return box_iou(a, b)
    if kind == "diou":
        return box_diou(a, b)
    return box_diounms(a, b, beta)


def correct_boxes(boxes: Tensor, image_w: int, image_h: int, net_w: int, net_h: int, letterbox: bool) -> Tensor:
    """``correct_yolo_boxes`` with ``relative=1``: network-relative boxes to image-relative ones.

    With ``letterbox`` the padding of ``letterbox_image`` is removed; otherwise (AlexeyAB's
    stretched input) the boxes are already relative to the image.
    """
    if letterbox:
        if net_w / image_w < net_h / image_h:
            new_w, new_h = net_w, (image_h * net_w) // image_w
        else:
            new_w, new_h = (image_w * net_h) // image_h, net_h
    else:
        new_w, new_h = net_w, net_h
    if (new_w, new_h) == (net_w, net_h):
        return boxes
    ratio_w = torch.tensor(new_w, dtype=torch.float32) / net_w
    ratio_h = torch.tensor(new_h, dtype=torch.float32) / net_h
    x = (boxes[:, 0].double() - (net_w - new_w) / 2.0 / net_w) / ratio_w.double()
    y = (boxes[:, 1].double() - (net_h - new_h) / 2.0 / net_h) / ratio_h.double()
    w = boxes[:, 2] * (1 / ratio_w)
    h = boxes[:, 3] * (1 / ratio_h)
    return torch.stack([x.float(), y.float(), w, h], dim=1)


def grid_candidates(h: int, w: int, n: int, device: torch.device | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Row, column and anchor slot of every candidate in Darknet's order (cell by cell, its anchors inside)."""
    cells = torch.arange(h * w, device=device).repeat_interleave(n)
    slots = torch.arange(n, device=device).repeat(h * w)
    return cells // w, cells % w, slots


def threshold_probs(probs: Tensor, thresh: float) -> Tensor:
    """``prob > thresh ? prob : 0``."""
    return torch.where(probs > thresh, probs, torch.zeros_like(probs))
