"""AlexeyAB's ``[yolo]`` training loss (``process_batch``), with every key of the layer.

Darknet: AlexeyAB ``src/yolo_layer.c`` at 59596d7: ``forward_yolo_layer``, ``process_batch``,
``delta_yolo_box``, ``delta_yolo_class``, ``compare_yolo_class``, ``averages_yolo_deltas``;
``src/parser.c:get_classes_multipliers``; ``src/box.c`` (see :mod:`darknetpy.loss.iou`);
darknet-reference.md §4.2. Per image, as one ``process_batch`` thread:

1. noobj pass: ``δ_obj = obj_normalizer·(0 - σ)``, zeroed when the best IoU with a truth is above
   ``ignore_thresh`` *and* some class probability of the prediction is above 0.25
   (``compare_yolo_class``); ``objectness_smooth`` keeps ``max(δ, obj_norm·(iou - σ))`` instead;
   above ``truth_thresh`` the anchor is made positive for its best truth (target ``iou²`` with
   ``objectness_smooth``). Truths with ``class >= classes`` are skipped; at most ``max`` truths.
2. truth pass: the best of all anchors by shape IoU, if in this layer's mask, plus every other
   anchor of the mask whose shape IoU (``iou_thresh_kind``) is above ``iou_thresh``: box deltas
   accumulate (``iou_normalizer·cm``, mse or ``dx_box_iou``), ``δ_obj = cm·obj_norm·(1 - σ)``,
   ``delta_yolo_class`` (label smoothing ``y·(1-ε) + ε/2``, ``focal_loss``, and
   ``cm·cls_normalizer`` on the true class only when ``counters_per_class`` is given).
3. ``averages_yolo_deltas`` when ``iou_thresh < 1``.

``σ`` is the stored output: float logistic, then ``S·σ - (S-1)/2`` on x, y (``scale_x_y``); with
``new_coords=1`` the head input already is a probability (the conv applied the logistic), so the
loss is taken on it directly (MSE on probabilities, §4.2) and the conv's logistic supplies σ'.

The differentiable loss (summed, gradient ``-l.delta``): objectness and classes ``w·BCE(z, y)``
with every delta written as ``w·(y - σ)`` (``w`` = obj_normalizer, ``cm``, focal weight...);
mse boxes ``k·S·BCE(z, (t + (S-1)/2)/S)`` for x, y and ``½k(z - t)²`` for w, h with ``k =
(2-wh)·iou_normalizer·cm`` (÷ classes_in_one_box after averaging), one term per assignment so
repeated assignments add up; IoU kinds through :class:`~darknetpy.loss.iou.DarknetIouLoss`.
``seen`` is not used: only the bad-label rejection below depends on the iteration.

``delta_normalizer`` is not applied: it only scales the GPU backward
(``backward_yolo_layer_gpu``: ``loss_scale·delta_normalizer·δ``); the CPU backward, which the
reference dumps come from, adds ``l.delta`` as it is. Not emulated either: the net-level
``badlabels_rejection_percentage``/``num_sigmas_reject_badlabels``/``equidistant_point``
rejection and ``adversarial`` (off by default), ``[yolo] map=``.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .base import Truths, register_loss
from .iou import DarknetIouLoss, box_iou, box_iou_kind
from .yolo_pjreddie import (
    BoxTargets,
    YoloLossBase,
    YoloTargets,
    anchor_shapes,
    best_anchor,
    c_div,
    c_float,
    check_cell,
    darknet_logistic,
    f32,
    f32_sum,
    first_argmax,
    gather_slots,
    index_tensors,
    mag_squared,
    mask_slot,
    mse_box_loss,
    mse_targets,
    pad_truths,
    slot_boxes,
    truth_cells,
    yolo_loss_from_targets,
    yolo_pred_boxes,
)

__all__ = ["AlexeyabYoloLoss", "class_targets", "classes_multipliers"]

_F32 = torch.float32
_FLT_MAX = float(np.finfo(np.float32).max)


def classes_multipliers(counters: tuple[int, ...] | None, max_delta: float) -> np.ndarray | None:
    """``get_classes_multipliers``: ``max_count/count_c`` (counts below 1 taken as 1), capped at ``max_delta``."""
    if counters is None:
        return None
    counts = [max(int(c), 1) for c in counters]
    top = np.float32(max(counts))
    out = np.array([top / np.float32(c) for c in counts], dtype=np.float32)
    return np.where(out > np.float32(min(max_delta, _FLT_MAX)), np.float32(min(max_delta, _FLT_MAX)), out).astype(np.float32)


def _smooth(y: np.ndarray, eps: float) -> np.ndarray:
    """``y_true * (1 - label_smooth_eps) + 0.5*label_smooth_eps`` (float product, double sum)."""
    if not eps:
        return y.astype(np.float32)
    e = np.float32(eps)
    return (y.astype(np.float32) * (np.float32(1) - e)).astype(np.float64).__add__(0.5 * float(e)).astype(np.float32)


def class_targets(p: np.ndarray, c: int, cm: float, o, cpc: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first ``delta_yolo_class`` on an anchor: ``(δ, w, y)`` rows with ``δ = w·(y - p)``.

    Default: ``δ_k = y_k - p_k`` (NaN/inf results leave δ at 0), the true class times
    ``cm·cls_normalizer`` when ``counters_per_class`` is given. ``focal_loss``: ``δ_k = α·g·([k==c]
    - p_k)`` with ``α = 0.5``, ``p_t = p_c + 1e-15``, ``g = -(1-p_t)(2·p_t·ln p_t + p_t - 1)`` (no
    smoothing, no multiplier there).
    """
    classes = len(p)
    onehot = np.zeros(classes, np.float32)
    onehot[c] = 1
    if o.focal_loss:
        pt = np.float32(p[c] + np.float32(1e-15))
        logf = np.float32(math.log(float(pt))) if pt > 0 else np.float32(-np.inf)
        grad = np.float32(-(np.float32(1) - pt) * (np.float32(2) * pt * logf + pt - np.float32(1)))
        w = np.full(classes, np.float32(0.5) * grad, np.float32)
        return (onehot - p) * w, w, onehot
    y = _smooth(onehot, o.label_smooth_eps)
    d = y - p
    ok = np.isfinite(d)
    d = np.where(ok, d, np.float32(0)).astype(np.float32)
    w = ok.astype(np.float32)
    if cpc:
        k = np.float32(np.float32(cm) * np.float32(o.cls_normalizer))
        d[c] = d[c] * k
        w[c] = w[c] * k
    return d, w, y


@register_loss("darknet", "yolo", "alexeyab")
class AlexeyabYoloLoss(YoloLossBase):
    """AlexeyAB's ``process_batch`` loss (darknet-reference.md §4.2)."""

    def __init__(self, layer, model) -> None:
        super().__init__(layer, model)
        o = self.options
        self.cm = classes_multipliers(o.counters_per_class, o.max_delta)
        self.kind = o.iou_loss
        self.scale = float(np.float32(o.scale_x_y))
        self.new_coords = bool(o.new_coords)

    # -- the stored output and boxes ------------------------------------------------------------

    def _output(self, z: Tensor) -> Tensor:
        b, _, h, w = z.shape
        v = z.detach().to(_F32).view(b, self.n, self.classes + 5, h, w).clone()
        if not self.new_coords:
            v[:, :, :2] = darknet_logistic(v[:, :, :2], False)
            v[:, :, 4:] = darknet_logistic(v[:, :, 4:], False)
        s = np.float32(self.options.scale_x_y)
        # scal_add_cpu(n, S, -0.5*(S-1), x): X[i] = X[i]*ALPHA + BETA, BETA computed in double, passed as float
        v[:, :, :2] = v[:, :, :2] * float(s) + float(np.float32(-0.5 * (float(s) - 1)))
        return v

    def _boxfn(self, index, anchors, lw, lh):
        """Decoded boxes of K assignments from their raw ``z`` (for :class:`DarknetIouLoss`)."""

        def fn(zb: Tensor) -> Tensor:
            v = zb.clone()
            if not self.new_coords:
                v[:, :2] = darknet_logistic(v[:, :2], False)
            s = np.float32(self.options.scale_x_y)
            v[:, :2] = v[:, :2] * float(s) + float(np.float32(-0.5 * (float(s) - 1)))
            return slot_boxes(v, index, lw, lh, anchors, self.net_w, self.net_h, self.new_coords)

        return fn

    # -- targets ---------------------------------------------------------------------------------

    def targets(self, z: Tensor, truths: Truths, seen: int = 0):
        o = self.options
        bsz, _, lh, lw = z.shape
        n, classes = self.n, self.classes
        out = self._output(z)
        tb = pad_truths(truths, o.max_boxes)
        cls_id = tb[..., 0].to(torch.int64)
        live = _live(tb)
        usable = live & (cls_id >= 0) & (cls_id < classes)
        # process_batch: a NaN/inf objectness is set to 0 once a truth of a valid class is seen
        has_truth = usable.any(dim=1).view(bsz, 1, 1, 1)
        p_obj = out[:, :, 4]
        out[:, :, 4] = torch.where(has_truth & ~torch.isfinite(p_obj), torch.zeros_like(p_obj), p_obj)
        p_obj = out[:, :, 4]
        delta = torch.zeros_like(out)

        # 1. noobj pass
        pred = yolo_pred_boxes(out, self.anchors_mask, self.net_w, self.net_h, self.new_coords)
        best_iou, best_t = _best_truth(pred, tb, usable)
        matched = (out[:, :, 5:] > 0.25).any(dim=2)  # compare_yolo_class(..., 0.25f)
        best_match = torch.where(matched, best_iou, torch.zeros_like(best_iou))
        norm = float(np.float32(o.obj_normalizer))
        obj_d = norm * (0 - p_obj)
        obj_w = torch.full_like(p_obj, norm)
        obj_y = torch.zeros_like(p_obj)
        ignore = best_match > f32(o.ignore_thresh)
        if o.objectness_smooth:
            d2 = norm * (best_match - p_obj)
            up = ignore & (d2 > obj_d)
            obj_d = torch.where(up, d2, obj_d)
            obj_y = torch.where(up, best_match, obj_y)
        else:
            obj_d = torch.where(ignore, torch.zeros_like(obj_d), obj_d)
            obj_w = torch.where(ignore, torch.zeros_like(obj_w), obj_w)
        over = best_iou > f32(o.truth_thresh)
        iou2 = best_iou * best_iou
        target_over = iou2 if o.objectness_smooth else torch.ones_like(iou2)
        obj_d = torch.where(over, norm * (target_over - p_obj), obj_d)
        obj_w = torch.where(over, torch.full_like(obj_w, norm), obj_w)
        obj_y = torch.where(over, target_over, obj_y)
        delta[:, :, 4] = obj_d

        # assignments in process_batch's order: truth_thresh anchors, then per truth best + extras
        assign = []  # (b, slot, j, i, truth row, anchor, counted, iou² or None)
        for b, s, j, i in zip(*[v.tolist() for v in torch.nonzero(over, as_tuple=True)]):
            t = int(best_t[b, s, j, i])
            assign.append((b, s, j, i, tb[b, t], self.mask[s], False, float(iou2[b, s, j, i])))
        shapes = anchor_shapes(self.anchors_all, self.net_w, self.net_h)
        for b in range(bsz):
            rows = tb[b][usable[b]]
            if not len(rows):
                continue
            bests = best_anchor(rows[:, 3:5], self.anchors_all, self.net_w, self.net_h, guard=True).tolist()
            ii, jj = truth_cells(rows, lw, lh)
            extra = None
            if o.iou_thresh < 1:
                wh = torch.cat([torch.zeros_like(rows[:, 3:5]), rows[:, 3:5]], dim=1)
                extra = (box_iou_kind(shapes[None], wh[:, None], o.iou_thresh_kind) > f32(o.iou_thresh)).tolist()
            for k, (r, bn, i, j) in enumerate(zip(rows, bests, ii.tolist(), jj.tolist())):
                slots = [(mask_slot(self.mask, bn), bn)]
                if extra is not None:
                    slots += [(mask_slot(self.mask, a), a) for a in range(self.total) if a != bn and extra[k][a]]
                for s, a in slots:
                    if s >= 0:
                        j2, i2 = check_cell(i, j, lw, lh, r)
                        assign.append((b, s, j2, i2, r, a, True, None))
        raw = z.detach().to(_F32).view(bsz, n, classes + 5, lh, lw)
        return self._finish(raw, out, delta, obj_w, obj_y, assign)

    def _finish(self, raw, out, delta, obj_w, obj_y, assign):
        o = self.options
        bsz, n, a, lh, lw = out.shape
        classes = self.classes
        keys = [(q[0], q[1], q[2], q[3]) for q in assign]
        index = index_tensors(keys)
        rows = torch.stack([q[4] for q in assign]) if assign else torch.zeros(0, 5)
        anchors = self.anchors_all[[q[5] for q in assign]]
        counted = [q[6] for q in assign]
        cls = rows[:, 0].to(torch.int64)
        cm = torch.from_numpy(self.cm)[cls] if self.cm is not None else torch.ones(len(assign))
        slots = gather_slots(out, index)
        pred = slot_boxes(slots, index, lw, lh, anchors, self.net_w, self.net_h, self.new_coords)
        ious = box_iou(pred, rows[:, 1:5])
        weight = np.float32(o.iou_normalizer) * cm.to(_F32)  # l.iou_normalizer * class_multiplier

        # objectness and classes, sequentially
        uniq = sorted(set(keys))
        row_of = {q: u for u, q in enumerate(uniq)}
        uindex = index_tensors(uniq)
        p = gather_slots(out, uindex).numpy().copy()
        d = gather_slots(delta, uindex).numpy().copy()
        cw = np.zeros((len(uniq), classes), np.float32)
        cy = np.zeros((len(uniq), classes), np.float32)
        ow, oy = obj_w.clone(), obj_y.clone()
        onorm = np.float32(o.obj_normalizer)
        cpc = self.cm is not None
        for k, (b, s, j, i, r, _, is_counted, iou2) in enumerate(assign):
            u = row_of[(b, s, j, i)]
            c = int(r[0])
            m = np.float32(cm[k])
            pc, dc = p[u, 5:], d[u, 5:]
            if is_counted:
                w_obj = np.float32(m * onorm)
                if not o.objectness_smooth or d[u, 4] == 0:
                    d[u, 4] = w_obj * (np.float32(1) - p[u, 4])
                    ow[b, s, j, i], oy[b, s, j, i] = float(w_obj), 1.0
            if dc[c] != 0:  # already assigned: only the true class, y - p then ·cm
                y = _smooth(np.ones(1, np.float32), o.label_smooth_eps)[0]
                r_d = np.float32(y - pc[c])
                if np.isfinite(r_d):
                    dc[c], cw[u, c], cy[u, c] = r_d, 1, y
                if cpc:
                    dc[c], cw[u, c] = dc[c] * m, cw[u, c] * m
            else:
                dc[:], cw[u], cy[u] = class_targets(pc, c, m, o, cpc)
                if iou2 is not None and o.objectness_smooth:  # truth_thresh path: class target iou²
                    t2 = np.float32(iou2)
                    dc[c], cw[u, c], cy[u, c] = m * (t2 - pc[c]), m, t2
        if uniq:
            delta[uindex[0], uindex[1], 4:, uindex[2], uindex[3]] = torch.from_numpy(d[:, 4:])

        # box deltas accumulate (delta_yolo_box(..., accumulate=1))
        box, box_d = self._box_targets(index, rows, anchors, slots, gather_slots(raw, index)[:, :4], weight, lw, lh)
        if len(assign):
            flat = delta.view(bsz, n, a, lh, lw)
            for c4 in range(4):
                flat[:, :, c4].index_put_((index[0], index[1], index[2], index[3]), box_d[:, c4], accumulate=True)
        post = torch.ones(len(assign))
        if o.iou_thresh < 1:  # averages_yolo_deltas
            npos = (delta[:, :, 5:] > 0).sum(dim=2)
            avg = (delta[:, :, 4] != 0) & (npos > 0)
            div = torch.where(avg, npos, 1).to(_F32)
            delta[:, :, :4] = torch.where(avg[:, :, None], delta[:, :, :4] / div[:, :, None], delta[:, :, :4])
            post = 1 / div[index[0], index[1], index[2], index[3]]
        box.post = post
        delta_flat = delta.view(bsz, n * a, lh, lw)
        stats, line, cost = self._report(delta, ious, rows, pred, counted, index, bsz)
        targets = YoloTargets(delta_flat, ow, oy, uindex, torch.from_numpy(cw), torch.from_numpy(cy), box, self.new_coords, self.scale)
        return targets, stats, line, cost

    def _box_targets(self, index, rows, anchors, slots, raw_box, weight, lw, lh) -> tuple[BoxTargets, Tensor]:
        """The box terms of the assignments and the ``(K, 4)`` amounts ``delta_yolo_box`` adds."""
        o = self.options
        if self.kind == "mse":
            tgt, scale = mse_targets(rows, index, lw, lh, anchors, self.net_w, self.net_h, self.new_coords)
            d = (scale[:, None] * (tgt - slots[:, :4])) * weight[:, None]  # scale * (tx - x) * iou_normalizer
            return BoxTargets(index, "mse", tgt, scale * weight, torch.ones(len(rows))), d
        extra = {"boxfn": self._boxfn(index, anchors, lw, lh), "max_delta": float(o.max_delta)}
        box = BoxTargets(index, self.kind, rows[:, 1:5].clone(), weight, torch.ones(len(rows)), extra)
        if not len(rows):
            return box, torch.zeros(0, 4)
        _, d = DarknetIouLoss.apply(raw_box, extra["boxfn"], box.target, self.kind, weight, box.post, extra["max_delta"], self.new_coords)
        return box, d

    def loss_from_targets(self, z: Tensor, t: YoloTargets) -> Tensor:
        if t.box.kind == "mse":
            return yolo_loss_from_targets(z, t, lambda zb, box: mse_box_loss(zb, box, t.scale_x_y, t.probabilities))

        def iou_loss(zb: Tensor, box: BoxTargets) -> Tensor:
            loss, _ = DarknetIouLoss.apply(zb, box.extra["boxfn"], box.target, box.kind, box.weight, box.post, box.extra["max_delta"], self.new_coords)
            return loss.sum()

        return yolo_loss_from_targets(z, t, iou_loss)

    # -- cost and log line -------------------------------------------------------------------------

    def _report(self, delta, ious, rows, pred, counted, index, bsz):
        o = self.options
        sel = torch.tensor(counted, dtype=torch.bool)
        b_of = index[0][sel].tolist()
        iou_c = ious[sel].numpy()
        giou_c = box_iou_kind(pred[sel], rows[sel][:, 1:5], "giou").numpy() if sel.any() else np.zeros(0, np.float32)
        # per-image float sums (args->tot_iou ...), then summed over the images in order
        tot_iou = tot_iou_loss = tot_giou_loss = np.float32(0)
        for b in range(bsz):
            m = np.array([x == b for x in b_of], dtype=bool)
            tot_iou = np.float32(tot_iou + f32_sum(iou_c[m]))
            tot_iou_loss = np.float32(tot_iou_loss + f32_sum(np.float32(1) - iou_c[m]))
            tot_giou_loss = np.float32(tot_giou_loss + f32_sum(np.float32(1) - giou_c[m]))
        count = int(sel.sum())
        shown = max(count, 1)  # if (count == 0) count = 1;
        loss = np.float32(mag_squared(delta))
        name = "mse" if self.kind == "mse" else ("giou" if self.kind == "giou" else "iou")
        head = (
            f"v3 ({name} loss, Normalizer: (iou: {float(np.float32(o.iou_normalizer)):.2f}, obj: {float(np.float32(o.obj_normalizer)):.2f}, "
            f"cls: {float(np.float32(o.cls_normalizer)):.2f}) Region {self.layer.index} Avg (IOU: {c_float(c_div(tot_iou, shown))}), count: {shown}, "
        )
        stats = {"avg_iou": float(c_div(tot_iou, shown)), "count": count}
        if not o.show_details:
            cost = loss
            line = head + f"total_loss = {c_float(c_div(loss, bsz))} "
            stats["total_loss"] = float(c_div(loss, bsz))
            return stats, line, float(cost)
        nonbox = delta.clone()
        nonbox[:, :, :4] = 0
        cls_loss = np.float32(float(np.float32(o.obj_normalizer)) * mag_squared(nonbox))
        iou_loss = np.float32(loss - cls_loss)
        if self.kind == "mse":
            cost = loss
        else:
            tot = tot_giou_loss if self.kind == "giou" else tot_iou_loss
            avg_iou_loss = np.float32(np.float32(o.iou_normalizer) * c_div(tot, shown))
            cost = np.float32(avg_iou_loss + cls_loss)
        line = head + (
            f"class_loss = {c_float(c_div(cls_loss, bsz))}, iou_loss = {c_float(c_div(iou_loss, bsz))}, total_loss = {c_float(c_div(loss, bsz))} "
        )
        stats.update(class_loss=float(c_div(cls_loss, bsz)), iou_loss=float(c_div(iou_loss, bsz)), total_loss=float(c_div(loss, bsz)))
        return stats, line, float(cost)


def _live(tb: Tensor) -> Tensor:
    """``(B, T)``: rows before the first with ``x == 0``."""
    zero = tb[..., 1] == 0
    return torch.cumsum(zero.to(torch.int64), dim=1) == 0


def _best_truth(pred: Tensor, tb: Tensor, usable: Tensor) -> tuple[Tensor, Tensor]:
    """Best IoU (and its truth) of every prediction over the usable truths of its image."""
    bsz, n, lh, lw, _ = pred.shape
    if tb.shape[1] == 0:
        zero = torch.zeros(bsz, n, lh, lw)
        return zero, zero.long()
    iou = box_iou(pred[:, :, :, :, None, :], tb[:, None, None, None, :, 1:5])
    iou = torch.where(usable[:, None, None, None, :] & ~torch.isnan(iou), iou, torch.zeros_like(iou))
    return iou.max(dim=-1).values, first_argmax(iou)
