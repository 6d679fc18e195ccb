"""Darknet's non-maximum suppression: ``do_nms_sort``, ``do_nms_obj`` and AlexeyAB's ``diounms_sort``.

Darknet: ``src/box.c:do_nms_sort/do_nms_obj/diounms_sort`` (darknet-reference.md §7.1).
``do_nms_sort`` drops boxes with objectness 0, then for each class sorts by that class's
probability and zeroes the class probability of every later box whose IoU with a kept box
exceeds the threshold (a zeroed box suppresses nothing). AlexeyAB's ``nms_kind`` replaces the IoU
test by DIoU (``greedynms``: ``iou - (d²/c²)^0.6``; ``diounms``: ``iou - (d²/c²)^beta_nms``).
Darknet's qsort is not stable; here ties keep their candidate order.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .boxes import Detections, iou_matrix

__all__ = ["do_nms_sort", "do_nms_obj", "nms"]

_KIND_TEST = {"default": "iou", "greedynms": "diou", "diounms": "diounms", "cornersnms": "iou"}


def _greedy(scores: Tensor, overlap: Tensor, thresh: float) -> Tensor:
    """Keep mask of one greedy pass in descending ``scores`` (only positive scores take part)."""
    order = torch.argsort(scores, descending=True, stable=True)
    keep = torch.zeros_like(scores, dtype=torch.bool)
    alive = scores > 0
    for i in order.tolist():
        if not alive[i]:
            continue
        keep[i] = True
        alive &= ~(overlap[i] > thresh)
        alive[i] = False
    return keep


def do_nms_sort(dets: Detections, thresh: float, kind: str = "default", beta_nms: float = 0.6) -> Detections:
    """Per-class NMS; returns the boxes with objectness > 0 and their suppressed probabilities zeroed."""
    dets = dets.select(dets.objectness != 0)
    if len(dets) == 0 or thresh <= 0:
        return dets
    overlap = iou_matrix(dets.boxes, _KIND_TEST.get(kind, "iou"), beta_nms)
    probs = dets.probs.clone()
    for k in torch.nonzero((probs > 0).any(dim=0)).flatten().tolist():
        keep = _greedy(probs[:, k], overlap, thresh)
        probs[:, k] = torch.where(keep, probs[:, k], torch.zeros_like(probs[:, k]))
    return Detections(dets.boxes, dets.objectness, probs, dets.extra)


def do_nms_obj(dets: Detections, thresh: float) -> Detections:
    """One pass on objectness; a suppressed box loses objectness and every class probability."""
    dets = dets.select(dets.objectness != 0)
    if len(dets) == 0 or thresh <= 0:
        return dets
    keep = _greedy(dets.objectness, iou_matrix(dets.boxes), thresh)
    zero = torch.zeros_like(dets.objectness)
    return Detections(
        dets.boxes, torch.where(keep, dets.objectness, zero), dets.probs * keep[:, None].to(dets.probs.dtype), dets.extra
    )


def nms(dets: Detections, thresh: float, kind: str = "default", beta_nms: float = 0.6, by_objectness: bool = False) -> Detections:
    """``do_nms_obj`` if ``by_objectness``, else ``do_nms_sort`` with the head's ``nms_kind``."""
    if by_objectness:
        return do_nms_obj(dets, thresh)
    return do_nms_sort(dets, thresh, kind, beta_nms)
