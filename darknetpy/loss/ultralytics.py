"""The YOLOv5 loss (Ultralytics ``ComputeLoss``) on Darknet ``[yolo]`` heads, both forks.

Followed: ``ultralytics/yolov5`` ``utils/loss.py`` at commit 0010427 (the AGPL-3.0 v7.0.x file:
``ComputeLoss.__init__/__call__/build_targets``, ``smooth_BCE``, ``FocalLoss``), ``utils/metrics.py``
``bbox_iou(..., xywh=True, CIoU=True, eps=1e-7)`` at commit 01fc291 (v7.0; the CIoU ``alpha`` under
``no_grad``), the hyperparameter scaling of ``train.py`` (``box *= 3/nl``, ``cls *= nc/80·3/nl``,
``obj *= (imgsz/640)²·3/nl``) and the defaults of ``data/hyps/hyp.scratch-low.yaml`` (``box`` 0.05,
``cls`` 0.5, ``cls_pw`` 1, ``obj`` 1, ``obj_pw`` 1, ``anchor_t`` 4, ``fl_gamma`` 0, no label smoothing).

Per head ``i`` (``p_i = z.view(B, na, 5+C, H, W).permute(0, 1, 3, 4, 2)``, which is YOLOv5's
``Detect`` layout because Darknet's yolo memory is ``[b][anchor][5+C][H][W]`` too):

- targets ``(image, class, x, y, w, h)`` from the truths (relative to the network input), times
  ``(W, H, W, H)``; a target goes to anchor ``a`` of this head when ``max(r, 1/r) < anchor_t`` for both
  ``r = wh/anchor_a``; it is kept in its cell and copied to the left/upper/right/lower neighbour when
  its centre is within 0.5 of that side (``g = 0.5``, not in the border cells);
- box: ``xy = 2σ(t_xy) − 0.5``, ``wh = (2σ(t_wh))²·anchor`` (grid units), ``lbox = mean(1 − CIoU)``
  over the head's positives;
- objectness: target ``CIoU.detach().clamp(0)`` at the positives (the last write wins), 0 elsewhere,
  ``lobj = BCEWithLogits`` mean over ``B·na·H·W``, times the balance ``[4.0, 1.0, 0.4]`` for 3 heads
  and ``[4.0, 1.0, 0.25, 0.06, 0.02][:nl]`` otherwise, in the order largest grid first (YOLOv5's
  P3, P4, P5);
- classes (only with more than one class): ``BCEWithLogits`` mean over positives × classes, target
  ``cp = 1 − ε/2`` / ``cn = ε/2``;
- ``loss_i = B·(box·lbox + obj·balance_i·lobj + cls·lcls)`` with the scaled gains. The heads' sum is
  YOLOv5's total ``(lbox + lobj + lcls)·bs``.

Where the cfg comes in: the anchors are the cfg's ``anchors`` (input pixels) of the head's ``mask``,
divided by the head's stride (``net_w/W`` for widths, ``net_h/H`` for heights; YOLOv5's ``anchors /=
stride``), ``na = len(mask)``, ``nc = classes``, ``nl`` = the number of heads of the network and
``imgsz = max(net_w, net_h)``. With ``new_coords=1`` the conv before the head already applied the
logistic, so ``z`` holds probabilities: the decoding uses them directly and the BCEs are taken on
probabilities (the same values, and through the conv's logistic the same gradients, as YOLOv5's
logits). YOLOv5's decoding equals Darknet's inference decoding only for ``new_coords=1,
scale_x_y=2``; on other heads (``σ·S − (S−1)/2`` and ``exp(t)·anchor`` at inference) a warning says so.

``delta`` is ``−∂loss/∂z`` computed by autograd, ``cost`` the head's loss value, ``hyp`` the
(unscaled) hyperparameters, which can be changed on an instance before use.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import DarknetError
from .base import HeadLoss, HeadLossResult, Truths, register_loss
from .iou import ciou
from .region import c_float

__all__ = ["UltralyticsLoss", "smooth_bce"]

HYP = {"box": 0.05, "cls": 0.5, "cls_pw": 1.0, "obj": 1.0, "obj_pw": 1.0, "anchor_t": 4.0, "fl_gamma": 0.0, "label_smoothing": 0.0}


def smooth_bce(eps: float = 0.1) -> tuple[float, float]:
    """``smooth_BCE``: positive and negative BCE targets ``1 − ε/2``, ``ε/2``."""
    return 1.0 - 0.5 * eps, 0.5 * eps


def _bce(x: Tensor, t: Tensor, pos_weight: float, probs: bool) -> Tensor:
    """Elementwise ``BCEWithLogitsLoss(pos_weight)``; on probabilities (``new_coords``) the same value."""
    if not probs:
        pw = torch.tensor([pos_weight], dtype=x.dtype)
        return F.binary_cross_entropy_with_logits(x, t, pos_weight=pw, reduction="none")
    log_p = torch.log(x).clamp(min=-100)  # torch's BCELoss clamps the logs at -100
    log_q = torch.log(1 - x).clamp(min=-100)
    return -(pos_weight * t * log_p + (1 - t) * log_q)


def _criterion(x: Tensor, t: Tensor, pos_weight: float, gamma: float, probs: bool) -> Tensor:
    """``BCEWithLogitsLoss`` (mean), or YOLOv5's ``FocalLoss`` around it when ``fl_gamma > 0``."""
    loss = _bce(x, t, pos_weight, probs)
    if gamma > 0:
        pred_prob = x if probs else torch.sigmoid(x)
        p_t = t * pred_prob + (1 - t) * (1 - pred_prob)
        alpha = 0.25
        alpha_factor = t * alpha + (1 - t) * (1 - alpha)
        loss = loss * alpha_factor * (1.0 - p_t) ** gamma
    return loss.mean()


@register_loss("ultralytics", "yolo")
class UltralyticsLoss(HeadLoss):
    """YOLOv5's ``ComputeLoss`` for one ``[yolo]`` head (see the module text)."""

    delta_is_gradient = True

    def __init__(self, layer, model) -> None:
        super().__init__(layer, model)
        o = layer.options
        heads = model.heads
        self.nl = len(heads)
        if self.nl > 5:
            raise DarknetError(f"the YOLOv5 loss balances at most 5 heads; this network has {self.nl}")
        order = sorted(range(self.nl), key=lambda k: (-heads[k].out_shape[1] * heads[k].out_shape[2], k))
        self.rank = order.index(next(k for k, h in enumerate(heads) if h is layer))
        balance = {3: [4.0, 1.0, 0.4]}.get(self.nl, [4.0, 1.0, 0.25, 0.06, 0.02])
        self.balance = balance[self.rank]
        self.hyp = dict(HYP)
        self.na = layer.n
        self.nc = o.classes
        self.new_coords = bool(o.new_coords)
        _, h, w = layer.out_shape
        stride_w = torch.tensor(self.net_w / w, dtype=torch.float32)
        stride_h = torch.tensor(self.net_h / h, dtype=torch.float32)
        aw = torch.tensor([o.anchors[2 * m] for m in o.mask], dtype=torch.float32) / stride_w
        ah = torch.tensor([o.anchors[2 * m + 1] for m in o.mask], dtype=torch.float32) / stride_h
        self.anchors = torch.stack([aw, ah], dim=1)  # (na, 2), grid units
        if not (o.new_coords and o.scale_x_y == 2.0):
            warnings.warn(
                f"[yolo] layer {layer.index}: the YOLOv5 loss decodes boxes as 2σ−0.5 and (2σ)²·anchor, "
                f"this head as σ·{o.scale_x_y:g}−{(o.scale_x_y - 1) / 2:g} and "
                f"{'(2t)²' if o.new_coords else 'exp(t)'}·anchor (use new_coords=1, scale_x_y=2 to match)",
                UserWarning,
                stacklevel=3,
            )

    @property
    def gains(self) -> tuple[float, float, float]:
        """``train.py``'s scaled ``box``, ``obj``, ``cls`` gains."""
        imgsz = max(self.net_w, self.net_h)
        h = self.hyp
        return h["box"] * 3 / self.nl, h["obj"] * (imgsz / 640) ** 2 * 3 / self.nl, h["cls"] * self.nc / 80 * 3 / self.nl

    def build_targets(self, truths: Truths, batch: int) -> tuple[Tensor, Tensor, tuple[Tensor, ...], Tensor]:
        """``ComputeLoss.build_targets`` for this head: classes, boxes ``(dx, dy, w, h)`` in grid units
        relative to the assigned cell, ``(image, anchor, row, column)`` and the anchors, in YOLOv5's order
        (the centre cell first, then the left, upper, right and lower neighbours; within each, anchor by
        anchor, truths in label order), which decides the objectness write when positives coincide."""
        _, h, w = self.layer.out_shape
        rows = []
        for b, t in enumerate(truths[:batch]):
            for c, x, y, bw, bh in t.tolist():
                if not 0 <= int(c) < self.nc:
                    raise DarknetError(f"truth class {int(c)} is not one of the {self.nc} classes")
                rows.append([b, c, x * w, y * h, bw * w, bh * h])  # grid units, float32 as YOLOv5's targets
        t = torch.tensor(rows, dtype=torch.float32).view(-1, 6)
        # every (anchor, truth) pair whose width and height ratios to the anchor are below anchor_t
        ratio = t[None, :, 4:6] / self.anchors[:, None, :]  # (na, nt, 2)
        ok = torch.maximum(ratio, 1 / ratio).amax(dim=2) < self.hyp["anchor_t"]
        anchor_of, truth_of = torch.nonzero(ok, as_tuple=True)  # row-major: anchor by anchor
        cand = t[truth_of]
        gxy = cand[:, 2:4]
        far = torch.tensor([w, h], dtype=torch.float32) - gxy
        near_low = (gxy % 1 < 0.5) & (gxy > 1)  # close to the left / upper side
        near_high = (far % 1 < 0.5) & (far > 1)  # close to the right / lower side
        shifts = [
            (torch.ones(len(cand), dtype=torch.bool), (0.0, 0.0)),
            (near_low[:, 0], (0.5, 0.0)),
            (near_low[:, 1], (0.0, 0.5)),
            (near_high[:, 0], (-0.5, 0.0)),
            (near_high[:, 1], (0.0, -0.5)),
        ]
        b_all, a_all, c_all, xy_all, wh_all, cell_all = [], [], [], [], [], []
        for keep, (ox, oy) in shifts:
            sel = cand[keep]
            xy = sel[:, 2:4]
            cell = (xy - torch.tensor([ox, oy], dtype=torch.float32)).long()  # truncation, as .long()
            b_all.append(sel[:, 0].long())
            c_all.append(sel[:, 1].long())
            a_all.append(anchor_of[keep])
            xy_all.append(xy)
            wh_all.append(sel[:, 4:6])
            cell_all.append(cell)
        cell = torch.cat(cell_all)
        xy = torch.cat(xy_all)
        a = torch.cat(a_all)
        gi, gj = cell[:, 0], cell[:, 1]
        tbox = torch.cat([xy - cell, torch.cat(wh_all)], dim=1)
        indices = (torch.cat(b_all), a, gj.clamp(0, h - 1), gi.clamp(0, w - 1))
        return torch.cat(c_all), tbox, indices, self.anchors[a]

    def loss_from_targets(self, z: Tensor, targets, tobj_iou: Tensor | None = None, alpha: Tensor | None = None) -> tuple[Tensor, dict]:
        """The head's YOLOv5 loss. ``tobj_iou``/``alpha`` fixed (for gradcheck) replace the detached IoU
        objectness targets and CIoU's ``no_grad`` alpha, which otherwise come from ``z``."""
        tcls, tbox, (b, a, gj, gi), anch = targets
        bs, _, h, w = z.shape
        pred = z.view(bs, self.na, self.nc + 5, h, w).permute(0, 1, 3, 4, 2)  # YOLOv5's (bs, na, ny, nx, no)
        box_gain, obj_gain, cls_gain = self.gains
        fl = self.hyp["fl_gamma"]
        tobj = torch.zeros(pred.shape[:4], dtype=z.dtype)
        lbox = lcls = torch.zeros((), dtype=z.dtype)
        npos = len(b)
        iou = None
        if npos:
            ps = pred[b, a, gj, gi]
            act = ps[:, 0:4] if self.new_coords else torch.sigmoid(ps[:, 0:4])
            pbox = torch.cat([act[:, 0:2] * 2 - 0.5, (act[:, 2:4] * 2) ** 2 * anch.to(z.dtype)], dim=1)
            iou = ciou(pbox, tbox.to(z.dtype), alpha=alpha)
            lbox = (1.0 - iou).mean()
            tobj[b, a, gj, gi] = iou.detach().clamp(0) if tobj_iou is None else tobj_iou  # gr = 1
            if self.nc > 1:
                cp, cn = smooth_bce(self.hyp["label_smoothing"])
                tc = torch.full_like(ps[:, 5:], cn)
                tc[torch.arange(npos), tcls] = cp
                lcls = _criterion(ps[:, 5:], tc, self.hyp["cls_pw"], fl, self.new_coords)
        lobj = _criterion(pred[..., 4], tobj, self.hyp["obj_pw"], fl, self.new_coords) * self.balance
        parts = {"box": box_gain * lbox, "obj": obj_gain * lobj, "cls": cls_gain * lcls}
        loss = (parts["box"] + parts["obj"] + parts["cls"]) * bs
        return loss, dict(parts, iou=iou, count=npos)

    def pred_boxes(self, z: Tensor, targets) -> Tensor:
        """The decoded boxes of the positives (grid units), for :func:`ciou_alpha`."""
        _, _, (b, a, gj, gi), anch = targets
        bs, _, h, w = z.shape
        ps = z.view(bs, self.na, self.nc + 5, h, w).permute(0, 1, 3, 4, 2)[b, a, gj, gi]
        act = ps[:, 0:4] if self.new_coords else torch.sigmoid(ps[:, 0:4])
        return torch.cat([act[:, 0:2] * 2 - 0.5, (act[:, 2:4] * 2) ** 2 * anch.to(z.dtype)], dim=1)

    def __call__(self, z: Tensor, truths: Truths, seen: int = 0) -> HeadLossResult:
        zz = z if z.requires_grad else z.detach().requires_grad_(True)
        targets = self.build_targets(truths, z.shape[0])
        loss, info = self.loss_from_targets(zz, targets)
        (grad,) = torch.autograd.grad(loss, zz, retain_graph=True)
        stats = {"box": float(info["box"].detach()), "obj": float(info["obj"].detach()), "cls": float(info["cls"].detach()), "count": info["count"]}
        line = (
            f"YOLOv5 loss, layer {self.layer.index}: box {c_float(stats['box'])}, obj {c_float(stats['obj'])}, "
            f"cls {c_float(stats['cls'])}, targets {info['count']}"
        )
        return HeadLossResult(loss, (-grad).detach(), float(loss.detach()), stats, line)
