"""Tests of the detection losses; small builders shared by them.

The synthetic head: a 64x64 input pooled to a 2x2 grid, a 1x1 conv, and ``[yolo]`` with 2
classes, anchors 16x16, 32x48, 60x40 (input pixels) and ``mask=0,1`` unless a test says
otherwise. Expected deltas are worked out in the tests with plain Python following the C.
"""
from __future__ import annotations

import math
import warnings

import torch

from darknetpy import Darknet, parse_cfg_text
from darknetpy.loss import NetworkLoss

ANCHORS = ((16, 16), (32, 48), (60, 40))
NET = 64


def yolo_model(flavor: str, extra: str = "", mask: str = "0,1", classes: int = 2, anchors=ANCHORS, grid: int = 2) -> Darknet:
    """The synthetic head model; ``extra`` lines go into ``[yolo]``."""
    n = len(mask.split(","))
    pool = NET // grid
    text = (
        f"[net]\nwidth={NET}\nheight={NET}\nchannels=1\n[maxpool]\nsize={pool}\nstride={pool}\n"
        f"[convolutional]\nfilters={n * (classes + 5)}\nsize=1\nactivation=linear\n"
        f"[yolo]\nclasses={classes}\nnum={len(anchors)}\nmask={mask}\n"
        f"anchors={', '.join(f'{w},{h}' for w, h in anchors)}\n{extra}\n"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Darknet(parse_cfg_text(text, "t.cfg"), flavor=flavor)


def run(model: Darknet, z: torch.Tensor, truths, seen: int = 0):
    """The head's result for ``z`` ``(B, n·(5+C), H, W)``; checks ``-grad == delta``."""
    z = z.clone().requires_grad_(True)
    result = NetworkLoss(model, "darknet")([z], truths, seen=seen)
    result.loss.backward()
    head = result.heads[0]
    torch.testing.assert_close(-z.grad, head.delta, atol=2e-6, rtol=1e-5, msg="minus the autograd gradient is not the delta")
    return head


def at(t: torch.Tensor, slot: int, entry: int, j: int, i: int, classes: int = 2, b: int = 0) -> float:
    """``t[b, slot·(5+C) + entry, j, i]`` as a float (Darknet's entry_index)."""
    return float(t[b, slot * (classes + 5) + entry, j, i])


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def iou(a, b) -> float:
    """box_iou of (x, y, w, h) boxes, plain Python."""
    def overlap(x1, w1, x2, w2):
        return min(x1 + w1 / 2, x2 + w2 / 2) - max(x1 - w1 / 2, x2 - w2 / 2)

    w = overlap(a[0], a[2], b[0], b[2])
    h = overlap(a[1], a[3], b[1], b[3])
    inter = 0.0 if w < 0 or h < 0 else w * h
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union
