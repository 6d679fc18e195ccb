"""``darknet-ciou``: pjreddie's target assignment with CIoU replacing the coordinate terms.

The anchors, ignore rule, objectness and classes are exactly pjreddie's ``forward_yolo_layer``
(:class:`~darknetpy.loss.yolo_pjreddie.PjreddieYoloLoss`); for every assigned anchor the four
x, y, w, h terms become ``(2 − w·h)·(1 − CIoU(pred, truth))`` with the box decoded as the layer
decodes it (``(i + σ(t_x))/l_w``, ``e^{t_w}·anchor_w/net_w``; AlexeyAB's ``scale_x_y`` and
``new_coords`` when the cfg sets them) and the textbook CIoU of Zheng et al., *Distance-IoU Loss*
(AAAI 2020) — a true function with its true gradient (``α`` held constant, as in the paper's
implementation), unlike AlexeyAB's hand-written ``dx_box_iou``. ``delta`` is ``−∂loss/∂z``;
``cost`` is ``Σδ²``, Darknet's measure, so logs stay comparable.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .base import HeadLossResult, Truths, register_loss
from .iou import ciou
from .yolo_pjreddie import BoxTargets, PjreddieYoloLoss, YoloTargets, mag_squared, yolo_loss_from_targets

__all__ = ["DarknetCiouLoss"]


@register_loss("darknet-ciou", "yolo")
class DarknetCiouLoss(PjreddieYoloLoss):
    """pjreddie's assignment, CIoU box terms."""

    def loss_from_targets(self, z: Tensor, t: YoloTargets) -> Tensor:
        _, _, h, w = z.shape
        return yolo_loss_from_targets(z, t, lambda zb, box: self.ciou_terms(zb, box, w, h, t.probabilities))

    def ciou_terms(self, zb: Tensor, box: BoxTargets, lw: int, lh: int, probabilities: bool) -> Tensor:
        """``Σ (2 − w·h)·(1 − CIoU)`` over the assigned anchors (``zb`` ``(K, 4)`` raw entries)."""
        _, slot, j, i = box.index
        anchors = self.anchors_mask.to(zb.dtype)[slot]
        s = float(self.options.scale_x_y)
        t = box.target.to(zb.dtype)
        if probabilities:  # new_coords: the conv already applied the logistic
            xy = s * zb[:, :2] - (s - 1) / 2
            wh = zb[:, 2:] ** 2 * 4 * anchors
            truth_wh = t[:, 2:] ** 2 * 4 * anchors
        else:
            xy = s * torch.sigmoid(zb[:, :2]) - (s - 1) / 2
            wh = torch.exp(zb[:, 2:]) * anchors
            truth_wh = torch.exp(t[:, 2:]) * anchors
        grid = torch.stack([i.to(zb.dtype), j.to(zb.dtype)], dim=1)
        size = torch.tensor([lw, lh], dtype=zb.dtype)
        net = torch.tensor([self.net_w, self.net_h], dtype=zb.dtype)
        pred = torch.cat([(grid + xy) / size, wh / net], dim=1)
        truth = torch.cat([(grid + t[:, :2]) / size, truth_wh / net], dim=1)
        weight = (box.weight * box.post).to(zb.dtype)
        return (weight * (1 - ciou(pred, truth))).sum()

    def __call__(self, z: Tensor, truths: Truths, seen: int = 0) -> HeadLossResult:
        result = super().__call__(z, truths, seen)  # pjreddie's targets, log line and the CIoU loss
        t = self.last_targets
        if z.requires_grad:
            (grad,) = torch.autograd.grad(result.loss, z, retain_graph=True)
        else:
            leaf = z.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.loss_from_targets(leaf, t), leaf)
        delta = -grad.detach()
        return HeadLossResult(result.loss, delta, mag_squared(delta), result.stats, result.line)
