"""pjreddie's ``[yolo]`` training loss, and the pieces AlexeyAB's loss shares with it.

Darknet: pjreddie ``src/yolo_layer.c:forward_yolo_layer``, ``delta_yolo_box``,
``delta_yolo_class``, ``get_yolo_box`` and ``src/box.c:box_iou`` at f6afaab
(darknet-reference.md §4.1). The targets are built without gradient (Darknet's own loops: a
vectorised noobj pass, then a loop over the truths in label order); the loss is built from them
with ordinary torch ops, summed (no mean), so that its gradient with respect to the head input
``z`` is ``-l.delta``:

- x, y: ``(2 - w·h)·BCEwithLogits(z, t)``, ``t = x·lw - i`` (Darknet applies no logistic derivative);
- w, h: ``½(2 - w·h)(z - t)²``, ``t = log(w·net_w/anchor_w)``;
- objectness: ``BCEwithLogits(z, 1)`` for assigned anchors, ``BCEwithLogits(z, 0)`` for the
  others unless their best IoU with a truth is above ``ignore_thresh``;
- classes: ``BCEwithLogits(z_k, y_k)`` with ``y`` the classes assigned to that anchor.

The cost (``Σδ²`` summed in float32 in memory order, as ``mag_array``) and the log line are
Darknet's, including its float32 sums (so the printed digits match). The truth pass follows the
C: cell ``(int)(x·lw)``, best of *all* ``num`` anchors by shape IoU (ties keep the first), box and
objectness written (a later truth on the same anchor overwrites), classes by
``delta_yolo_class``, which only sets the new class to ``1 - p`` when ``δ`` of class 0 (sic) is
already non-zero. The logistic is computed in double, as pjreddie does. Where Darknet would write
outside the anchor's memory (a class outside ``0..classes-1``, a centre outside the image) this
raises :class:`DarknetError`; more than 90 truths per image are cut to 90 (``max`` above 90 makes
pjreddie read the next image's boxes, not emulated).

``head.targets(z, truths)`` (no gradient) and ``head.loss_from_targets(z, targets)`` split a call
so the loss can be evaluated with the targets fixed (``gradcheck``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import DarknetError
from .base import HeadLoss, HeadLossResult, Truths, register_loss
from .iou import box_iou

__all__ = ["PjreddieYoloLoss", "YoloTargets", "c_float", "darknet_logistic", "yolo_pred_boxes"]

_F32 = torch.float32
# make_yolo_layer: l.truths = 90*(4 + 1) whatever `max` says; load_data_detection fills 90 boxes.
PJ_TRUTH_SLOTS = 90


# ----------------------------------------------------------------------------------------------
# Shared by both forks


def darknet_logistic(z: Tensor, in_double: bool) -> Tensor:
    """``logistic_activate`` as each fork computes it, float32 result.

    pjreddie: ``1./(1. + exp(-x))`` in double; AlexeyAB: ``1.f/(1.f + expf(-x))`` in float
    (``expf`` is taken as the correctly rounded double ``exp``).
    """
    if in_double:
        return (1.0 / (1.0 + torch.exp(-z.detach().double()))).to(_F32)
    e = torch.exp(-z.detach().double()).to(_F32)
    return 1 / (1 + e)


def yolo_pred_boxes(out: Tensor, anchors: Tensor, net_w: int, net_h: int, new_coords: bool) -> Tensor:
    """``get_yolo_box`` of every cell: ``(B, n, H, W, 4)`` float32 from Darknet's ``l.output``.

    ``out`` is ``(B, n, 5+C, H, W)``; ``anchors`` ``(n, 2)`` float32 in input pixels.
    """
    _, _, _, h, w = out.shape
    cols = torch.arange(w, dtype=_F32).view(1, 1, 1, w)
    rows = torch.arange(h, dtype=_F32).view(1, 1, h, 1)
    aw, ah = anchors[:, 0].view(1, -1, 1, 1), anchors[:, 1].view(1, -1, 1, 1)
    bx = (cols + out[:, :, 0]) / w
    by = (rows + out[:, :, 1]) / h
    if new_coords:
        bw = out[:, :, 2] * out[:, :, 2] * 4 * aw / net_w
        bh = out[:, :, 3] * out[:, :, 3] * 4 * ah / net_h
    else:
        bw = (torch.exp(out[:, :, 2].double()) * aw.double() / net_w).to(_F32)
        bh = (torch.exp(out[:, :, 3].double()) * ah.double() / net_h).to(_F32)
    return torch.stack([bx, by, bw, bh], dim=-1)


def pad_truths(truths: Truths, limit: int) -> Tensor:
    """The first ``limit`` truths of each image as ``(B, T, 5)`` float32, rows ``class x y w h``.

    Padding rows have ``x == 0`` (where Darknet's loops ``break``).
    """
    rows = [t[:limit].to(_F32) for t in truths]
    t_max = max((len(r) for r in rows), default=0)
    out = torch.zeros(len(rows), t_max, 5, dtype=_F32)
    for b, r in enumerate(rows):
        out[b, : len(r)] = r
    return out


def truth_cells(tb: Tensor, lw: int, lh: int) -> tuple[Tensor, Tensor]:
    """``i = (truth.x * l.w)``, ``j = (truth.y * l.h)``: float32 product, truncated toward zero."""
    return (tb[..., 1] * lw).to(torch.int64), (tb[..., 2] * lh).to(torch.int64)


def best_anchor(wh: Tensor, anchors_all: Tensor, net_w: int, net_h: int, guard: bool) -> Tensor:
    """Index of the anchor (of all ``total``) whose shape IoU with ``wh`` ``(K, 2)`` is highest.

    ``box_iou((0, 0, aw/net_w, ah/net_h), (0, 0, w, h))`` with a strict ``>`` from 0: ties keep
    the first, all-zero gives 0.
    """
    if not len(wh):
        return torch.zeros(0, dtype=torch.int64)
    shapes = anchor_shapes(anchors_all, net_w, net_h)
    truth = torch.cat([torch.zeros_like(wh), wh], dim=1)[:, None, :]
    iou = box_iou(shapes[None], truth, guard=guard)
    iou = torch.where(torch.isnan(iou), torch.zeros_like(iou), iou)
    return first_argmax(iou)


def anchor_shapes(anchors: Tensor, net_w: int, net_h: int) -> Tensor:
    """``(total, 4)`` boxes ``(0, 0, aw/net_w, ah/net_h)`` (``biases[2n]/net.w`` in float)."""
    z = torch.zeros(len(anchors), dtype=_F32)
    return torch.stack([z, z, anchors[:, 0] / net_w, anchors[:, 1] / net_h], dim=1)


def first_argmax(v: Tensor) -> Tensor:
    """Index of the first maximum along the last dim (Darknet's ``if (iou > best)`` loops)."""
    best = v.max(dim=-1, keepdim=True).values
    idx = torch.arange(v.shape[-1]).expand_as(v)
    return torch.where(v == best, idx, v.shape[-1]).min(dim=-1).values.clamp(max=max(v.shape[-1] - 1, 0))


def f32(v: float) -> float:
    """A cfg value as the C ``float`` field holds it (thresholds compare float to float)."""
    return float(np.float32(v))


def mask_slot(mask: tuple[int, ...], n: int) -> int:
    """``int_index(l.mask, n, l.n)``: the first slot of this layer using anchor ``n``, or -1."""
    return mask.index(n) if n in mask else -1


def f32_sum(values) -> np.float32:
    """A float32 sum in the given order (Darknet's ``float sum; sum += v``)."""
    arr = np.asarray(values, dtype=np.float32).reshape(-1)
    return np.add.accumulate(arr, dtype=np.float32)[-1] if arr.size else np.float32(0)


def mag_squared(x: Tensor) -> float:
    """``pow(mag_array(x, n), 2)``: float32 sum of squares in memory order, float sqrt, squared in double.

    The result is the double ``pow`` returns; Darknet rounds it to float where it stores it.
    """
    a = x.detach().reshape(-1).numpy().astype(np.float32, copy=False)
    s = f32_sum(a * a)
    mag = np.float32(math.sqrt(float(s)))
    return float(mag) ** 2


def c_float(x: float | np.floating) -> str:
    """``printf("%f")`` of a float: ``-nan`` for 0/0 as x86 Darknet prints it."""
    v = float(x)
    if math.isnan(v):
        return "-nan" if np.signbit(x) else "nan"
    if math.isinf(v):
        return "-inf" if v < 0 else "inf"
    return f"{v:f}"


def c_div(a: float | np.floating, b: int) -> np.float32:
    """``float / int`` in float32, 0/0 giving the default (negative) NaN."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.float32(a) / np.float32(b)


@dataclass
class BoxTargets:
    """The box terms of K assignments (one per ``delta_yolo_box`` call that counts for the loss)."""

    index: tuple[Tensor, Tensor, Tensor, Tensor]  # b, anchor slot, j, i: (K,) each
    kind: str  # "mse" or an IoU kind
    target: Tensor  # (K, 4): mse t_x, t_y, t_w, t_h; iou kinds: the truth box x, y, w, h
    weight: Tensor  # (K,): mse (2 - w·h)[·iou_normalizer·cm]; iou kinds iou_normalizer·cm
    post: Tensor  # (K,): averages_yolo_deltas factor (1 or 1/classes_in_one_box)
    extra: dict = field(default_factory=dict)  # iou kinds: cells, anchors, net size, max_delta...


@dataclass
class YoloTargets:
    """Everything the loss of one head needs, built without gradient from ``z`` and the truths.

    The non-box entries have Darknet's delta ``w·(y - p)``: ``obj_w``/``obj_y`` ``(B, n, H, W)``
    dense; classes only at the touched anchors ``cls_index`` with ``cls_w``/``cls_y`` ``(U, C)``.
    """

    delta: Tensor  # (B, n·(5+C), H, W): Darknet's l.delta
    obj_w: Tensor
    obj_y: Tensor
    cls_index: tuple[Tensor, Tensor, Tensor, Tensor]
    cls_w: Tensor
    cls_y: Tensor
    box: BoxTargets
    probabilities: bool = False  # new_coords: the head input already went through the logistic
    scale_x_y: float = 1.0

    def to(self, device: torch.device) -> YoloTargets:
        """The targets on ``device`` (they are built on the CPU, in Darknet's arithmetic)."""
        mv = lambda idx: tuple(v.to(device) for v in idx)
        box = BoxTargets(mv(self.box.index), self.box.kind, self.box.target.to(device), self.box.weight.to(device), self.box.post.to(device), self.box.extra)
        return YoloTargets(self.delta.to(device), self.obj_w.to(device), self.obj_y.to(device), mv(self.cls_index), self.cls_w.to(device),
                           self.cls_y.to(device), box, self.probabilities, self.scale_x_y)


def gather_slots(z5: Tensor, index: tuple[Tensor, Tensor, Tensor, Tensor]) -> Tensor:
    """``(K, 5+C)``: the entries of each (b, slot, j, i) of a ``(B, n, 5+C, H, W)`` tensor."""
    b, s, j, i = index
    return z5[b, s, :, j, i]


def _nonbox_term(z: Tensor, w: Tensor, y: Tensor, probabilities: bool) -> Tensor:
    w, y = w.to(z.dtype), y.to(z.dtype)
    if probabilities:  # new_coords: delta = w·(y - v) on the logistic's output v itself
        return (0.5 * w * (z - y) ** 2).sum()
    return (w * F.binary_cross_entropy_with_logits(z, y, reduction="none")).sum()


def yolo_loss_from_targets(z: Tensor, t: YoloTargets, box_loss) -> Tensor:
    """The differentiable loss of a head from fixed targets; ``box_loss(zb (K, 4), t.box)``."""
    b, _, h, w = z.shape
    n = t.obj_w.shape[1]
    z5 = z.view(b, n, -1, h, w)
    loss = _nonbox_term(z5[:, :, 4], t.obj_w, t.obj_y, t.probabilities)
    if len(t.cls_index[0]):
        loss = loss + _nonbox_term(gather_slots(z5, t.cls_index)[:, 5:], t.cls_w, t.cls_y, t.probabilities)
    if len(t.box.index[0]):
        loss = loss + box_loss(gather_slots(z5, t.box.index)[:, :4], t.box)
    return loss


def mse_box_loss(zb: Tensor, box: BoxTargets, scale_x_y: float = 1.0, probabilities: bool = False) -> Tensor:
    """Box terms whose gradient is ``-δ`` of the mse ``delta_yolo_box``, summed over assignments.

    x, y: ``δ = k(t - (S·σ(z) - (S-1)/2))`` ⇒ ``k·S·BCE(z, (t + (S-1)/2)/S)``; with
    ``new_coords`` (``v`` already a probability) ``k/(2S)·(S·v - (S-1)/2 - t)²``.
    w, h: ``δ = k(t - z)`` ⇒ ``½k(z - t)²``.
    """
    k = (box.weight * box.post).to(zb.dtype)[:, None]
    tgt = box.target.to(zb.dtype)
    s = float(scale_x_y)
    if probabilities:
        xy = (k / (2 * s) * (s * zb[:, :2] - (s - 1) / 2 - tgt[:, :2]) ** 2).sum()
    else:
        xy = (k * s * F.binary_cross_entropy_with_logits(zb[:, :2], (tgt[:, :2] + (s - 1) / 2) / s, reduction="none")).sum()
    wh = (0.5 * k * (zb[:, 2:] - tgt[:, 2:]) ** 2).sum()
    return xy + wh


def empty_index() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    e = torch.zeros(0, dtype=torch.int64)
    return e, e, e, e


def index_tensors(rows: list[tuple[int, int, int, int]]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    if not rows:
        return empty_index()
    t = torch.tensor(rows, dtype=torch.int64)
    return t[:, 0], t[:, 1], t[:, 2], t[:, 3]


def check_cell(i: int, j: int, lw: int, lh: int, truth: Tensor) -> tuple[int, int]:
    """Darknet indexes ``j*l.w + i`` unchecked; outside the grid it writes another anchor's memory."""
    loc = j * lw + i
    if not 0 <= loc < lw * lh:
        raise DarknetError(f"truth box {truth.tolist()} has its centre outside the image (x, y must be in [0, 1))")
    return loc // lw, loc % lw


class YoloLossBase(HeadLoss):
    """What both forks' yolo losses share: options, anchors, the call sequence."""

    def __init__(self, layer, model) -> None:
        super().__init__(layer, model)
        o = layer.options
        self.options = o
        self.mask = tuple(o.mask)
        self.n = len(self.mask)
        self.classes = o.classes
        self.total = o.total
        all_anchors = torch.tensor(o.anchors, dtype=_F32).view(-1, 2)
        self.anchors_all = all_anchors[: o.total]
        self.anchors_mask = all_anchors[list(self.mask)]

    def targets(self, z: Tensor, truths: Truths, seen: int = 0) -> tuple[YoloTargets, dict, str, float]:
        raise NotImplementedError

    def loss_from_targets(self, z: Tensor, t: YoloTargets) -> Tensor:
        return yolo_loss_from_targets(z, t, lambda zb, box: mse_box_loss(zb, box, t.scale_x_y, t.probabilities))

    def __call__(self, z: Tensor, truths: Truths, seen: int = 0) -> HeadLossResult:
        if z.dim() != 4 or z.shape[1] != self.n * (self.classes + 5):
            raise DarknetError(f"layer {self.layer.index}: head input of shape {tuple(z.shape)}, expected (B, {self.n * (self.classes + 5)}, H, W)")
        if len(truths) != z.shape[0]:
            raise DarknetError(f"{len(truths)} truth lists for a batch of {z.shape[0]}")
        with torch.no_grad():
            t, stats, line, cost = self.targets(z.detach().cpu(), truths, seen)
        if z.device.type != "cpu":
            t = t.to(z.device)
        self.last_targets = t  # the targets of the last call (subclasses and tests reuse them)
        loss = self.loss_from_targets(z, t)
        return HeadLossResult(loss, t.delta, cost, stats, line)


# ----------------------------------------------------------------------------------------------
# pjreddie


@register_loss("darknet", "yolo", "pjreddie")
class PjreddieYoloLoss(YoloLossBase):
    """pjreddie's ``forward_yolo_layer`` loss (darknet-reference.md §4.1)."""

    def targets(self, z: Tensor, truths: Truths, seen: int = 0) -> tuple[YoloTargets, dict, str, float]:
        o = self.options
        bsz, _, lh, lw = z.shape
        n, classes = self.n, self.classes
        out = darknet_logistic(z, True).view(bsz, n, classes + 5, lh, lw)
        raw = z.detach().to(_F32).view(bsz, n, classes + 5, lh, lw)
        out[:, :, 2:4] = raw[:, :, 2:4]
        tb = pad_truths(truths, min(o.max_boxes, PJ_TRUTH_SLOTS))
        for b in range(bsz):
            cls = tb[b, : _first_zero(tb[b]), 0]
            if ((cls < 0) | (cls >= classes)).any():
                bad = int(cls[(cls < 0) | (cls >= classes)][0])
                raise DarknetError(f"layer {self.layer.index}: truth class {bad} is not in 0..{classes - 1} (pjreddie would write outside the anchor's entries)")
        p_obj = out[:, :, 4]
        delta = torch.zeros_like(out)

        # 1. noobj pass: best IoU of each prediction with any truth of its image
        pred = yolo_pred_boxes(out, self.anchors_mask, self.net_w, self.net_h, False)
        best_iou, best_t = self._best_truth(pred, tb)
        obj_d = 0 - p_obj
        obj_w = torch.ones_like(p_obj)
        obj_y = torch.zeros_like(p_obj)
        ignore = best_iou > f32(o.ignore_thresh)
        obj_d, obj_w = torch.where(ignore, 0.0, obj_d), torch.where(ignore, 0.0, obj_w)
        over = best_iou > f32(o.truth_thresh)
        obj_d = torch.where(over, 1 - p_obj, obj_d)
        obj_w, obj_y = torch.where(over, 1.0, obj_w), torch.where(over, 1.0, obj_y)
        delta[:, :, 4] = obj_d
        avg_anyobj = f32_sum(p_obj.permute(0, 2, 3, 1).reshape(-1).numpy())

        # assignments in Darknet's order: the truth_thresh ones of the noobj pass, then the truths
        assign = []  # (b, slot, j, i, truth row, anchor, counted)
        for b, s, j, i in zip(*[v.tolist() for v in torch.nonzero(over, as_tuple=True)]):
            assign.append((b, s, j, i, tb[b, int(best_t[b, s, j, i])], self.mask[s], False))
        for b in range(bsz):
            rows = tb[b][: _first_zero(tb[b])]
            bests = best_anchor(rows[:, 3:5], self.anchors_all, self.net_w, self.net_h, guard=False)
            ii, jj = truth_cells(rows, lw, lh)
            for r, bn, i, j in zip(rows, bests.tolist(), ii.tolist(), jj.tolist()):
                s = mask_slot(self.mask, bn)
                if s >= 0:
                    j, i = check_cell(i, j, lw, lh, r)
                    assign.append((b, s, j, i, r, bn, True))
        return self._finish(out, delta, obj_w, obj_y, assign, avg_anyobj)

    def _best_truth(self, pred: Tensor, tb: Tensor) -> tuple[Tensor, Tensor]:
        bsz, n, lh, lw, _ = pred.shape
        if tb.shape[1] == 0:
            zero = torch.zeros(bsz, n, lh, lw)
            return zero, zero.long()
        truth = tb[:, None, None, None, :, 1:5]  # (B, 1, 1, 1, T, 4)
        iou = box_iou(pred[:, :, :, :, None, :], truth, guard=False)
        live = torch.arange(tb.shape[1])[None, :] < torch.tensor([_first_zero(t) for t in tb])[:, None]
        iou = torch.where(live[:, None, None, None, :] & ~torch.isnan(iou), iou, torch.zeros_like(iou))
        return iou.max(dim=-1).values, first_argmax(iou)

    def _finish(self, out, delta, obj_w, obj_y, assign, avg_anyobj):
        bsz, n, a, lh, lw = out.shape
        classes = self.classes
        keys = [(b, s, j, i) for b, s, j, i, *_ in assign]
        index = index_tensors(keys)
        counted = torch.tensor([q[-1] for q in assign], dtype=torch.bool)
        rows = torch.stack([q[4] for q in assign]) if assign else torch.zeros(0, 5)
        anchors = self.anchors_all[[q[5] for q in assign]]
        slots = gather_slots(out, index)
        tgt, scale = mse_targets(rows, index, lw, lh, anchors, self.net_w, self.net_h, new_coords=False)
        pred = slot_boxes(slots, index, lw, lh, anchors, self.net_w, self.net_h, new_coords=False)
        ious = box_iou(pred, rows[:, 1:5], guard=False)[counted].tolist()
        # box: pjreddie's delta_yolo_box assigns, so the last call for an anchor wins
        last = {q: k for k, q in enumerate(keys)}
        keep = sorted(last.values())
        box_d = scale[:, None] * (tgt - slots[:, :4])
        kept = index_tensors([keys[k] for k in keep])
        delta[kept[0], kept[1], :4, kept[2], kept[3]] = box_d[keep]
        # objectness and classes, sequentially (delta_yolo_class reads what earlier truths wrote)
        uniq = sorted(set(keys))
        row_of = {q: u for u, q in enumerate(uniq)}
        uindex = index_tensors(uniq)
        p = gather_slots(out, uindex).numpy().copy()
        d = gather_slots(delta, uindex).numpy().copy()
        cw = np.zeros((len(uniq), classes), np.float32)
        cy = np.zeros((len(uniq), classes), np.float32)
        ow, oy = obj_w.clone(), obj_y.clone()
        avg_cat, avg_obj = [], []
        for (b, s, j, i, r, _, is_counted) in assign:
            u = row_of[(b, s, j, i)]
            c = int(r[0])
            pc, dc = p[u, 5:], d[u, 5:]
            if is_counted:
                avg_obj.append(p[u, 4])
                d[u, 4] = np.float32(1) - p[u, 4]
                ow[b, s, j, i], oy[b, s, j, i] = 1.0, 1.0
            if dc[0] != 0:  # pjreddie tests delta[index], the first class
                dc[c] = np.float32(1) - pc[c]
                cw[u, c], cy[u, c] = 1, 1
            else:
                onehot = np.zeros(classes, np.float32)
                onehot[c] = 1
                dc[:] = onehot - pc
                cw[u], cy[u] = 1, onehot
            if is_counted:
                avg_cat.append(pc[c])
        if uniq:
            delta[uindex[0], uindex[1], 4:, uindex[2], uindex[3]] = torch.from_numpy(d[:, 4:])
        delta_flat = delta.view(bsz, n * a, lh, lw)
        cost = np.float32(mag_squared(delta_flat))
        count = len(ious)
        values = {
            "avg_iou": c_div(f32_sum(ious), count),
            "class": c_div(f32_sum(avg_cat), count),
            "obj": c_div(f32_sum(avg_obj), count),
            "no_obj": c_div(avg_anyobj, lw * lh * n * bsz),
            "recall": c_div(sum(1 for v in ious if v > 0.5), count),
            "recall75": c_div(sum(1 for v in ious if v > 0.75), count),
        }
        line = (
            f"Region {self.layer.index} Avg IOU: {c_float(values['avg_iou'])}, Class: {c_float(values['class'])}, "
            f"Obj: {c_float(values['obj'])}, No Obj: {c_float(values['no_obj'])}, .5R: {c_float(values['recall'])}, "
            f".75R: {c_float(values['recall75'])},  count: {count}"
        )
        stats = {k: float(v) for k, v in values.items()}
        stats["count"] = count
        box = BoxTargets(kept, "mse", tgt[keep], scale[keep], torch.ones(len(keep)))
        targets = YoloTargets(delta_flat, ow, oy, uindex, torch.from_numpy(cw), torch.from_numpy(cy), box)
        return targets, stats, line, float(cost)


def _first_zero(t: Tensor) -> int:
    """Rows before the first with ``x == 0`` (``if (!truth.x) break;``)."""
    stop = torch.nonzero(t[:, 1] == 0)
    return int(stop[0]) if len(stop) else len(t)


def mse_targets(rows: Tensor, index, lw: int, lh: int, anchors: Tensor, net_w: int, net_h: int, new_coords: bool) -> tuple[Tensor, Tensor]:
    """``delta_yolo_box`` mse targets ``(K, 4)`` and ``2 - w·h`` for truths ``rows`` ``(K, 5)``.

    ``tx = truth.x*lw - i`` (float), ``tw = log(truth.w*w / biases[2n])`` (float quotient, log
    in double); AlexeyAB ``new_coords``: ``tw = sqrt(truth.w*w / (4*biases[2n]))``.
    """
    _, _, j, i = index
    tx = rows[:, 1] * lw - i.to(_F32)
    ty = rows[:, 2] * lh - j.to(_F32)
    if new_coords:
        tw = torch.sqrt((rows[:, 3] * net_w / (4 * anchors[:, 0])).double()).to(_F32)
        th = torch.sqrt((rows[:, 4] * net_h / (4 * anchors[:, 1])).double()).to(_F32)
    else:
        tw = torch.log((rows[:, 3] * net_w / anchors[:, 0]).double()).to(_F32)
        th = torch.log((rows[:, 4] * net_h / anchors[:, 1]).double()).to(_F32)
    return torch.stack([tx, ty, tw, th], dim=1), 2 - rows[:, 3] * rows[:, 4]


def slot_boxes(slots: Tensor, index, lw: int, lh: int, anchors: Tensor, net_w: int, net_h: int, new_coords: bool) -> Tensor:
    """``get_yolo_box`` of K anchors: ``slots`` ``(K, >=4)`` from ``l.output``, ``anchors`` ``(K, 2)``."""
    _, _, j, i = index
    bx = (i.to(_F32) + slots[:, 0]) / lw
    by = (j.to(_F32) + slots[:, 1]) / lh
    if new_coords:
        bw = slots[:, 2] * slots[:, 2] * 4 * anchors[:, 0] / net_w
        bh = slots[:, 3] * slots[:, 3] * 4 * anchors[:, 1] / net_h
    else:
        bw = (torch.exp(slots[:, 2].double()) * anchors[:, 0].double() / net_w).to(_F32)
        bh = (torch.exp(slots[:, 3].double()) * anchors[:, 1].double() / net_h).to(_F32)
    return torch.stack([bx, by, bw, bh], dim=1)
