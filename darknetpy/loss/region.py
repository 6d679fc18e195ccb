"""Darknet's own loss of the ``[region]`` head (YOLOv2), both forks.

Darknet: ``src/region_layer.c:forward_region_layer`` (the training part), ``delta_region_box``,
``delta_region_class``, ``get_region_box``, ``backward_region_layer(_gpu)`` (darknet-reference.md §4,
§4.3). Followed here (copies read in the search index; no stored copy is pinned to the golden commits):

- **pjreddie**: the last pjreddie ``forward_region_layer(const layer l, network net)`` (planar
  ``entry_index`` layout, truths ``30·(coords+1)`` floats and loops ``t < 30``,
  ``delta_region_class(..., tag = !l.softmax)``, ``l.background``, ``delta_region_mask`` for
  ``coords > 4``), as several stored derivatives agree on it; an older pjreddie copy without ``tag``
  was also read.
- **alexeyab**: AlexeyAB's ``forward_region_layer(const region_layer l, network_state state)`` (the output
  flattened to ``[cell][anchor][x,y,w,h,obj,classes]``, ``max_boxes`` truths of 5 floats, logistic
  gradients folded into the deltas, ``classfix``, ``focal_loss``, the deltas un-flattened back to the input
  layout at the end, and a CPU backward that adds them).

``seen`` is Darknet's ``*net.seen`` at the forward (``train_network`` has already added this batch).

What each pass writes (``=`` everywhere, the last write wins; σ is the logistic, ``t`` a target):

1. *noobj*, every anchor: ``δ_o = noobject_scale·(0 − σ_o)`` (AB ``·σ′``), set to 0 when the decoded box's
   best IoU with a truth of the image exceeds ``thresh``. AB ``classfix=-1``: target ``best_iou``, never
   zeroed; ``classfix>0``: above ``thresh`` the class of the best truth is also written (scale
   ``class_scale``, times ``σ_o`` for ``classfix=2``).
2. *warm-up* while ``seen < 12800``: every anchor's box is pulled to the anchor at the cell centre,
   ``t_x = t_y = .5``, ``t_w = t_h = 0``, scale ``.01`` (``delta_region_box``).
3. *truths* (label order, at most 30 for pjreddie and ``max`` for AlexeyAB, stopping at ``x == 0``): the
   anchor of the truth's cell whose box shape (the predicted ``w, h``, or the anchor with
   ``bias_match=1``) has the best IoU with the truth's shape (first of equals) gets
   ``δ_box = s·(t − x)`` with ``t_x = x·W − i``, ``t_w = log(w·W/a_w)`` (x, y against σ; AB ``·σ′``),
   ``s = coord_scale·(2 − w·h)`` (pjreddie) or ``coord_scale`` (AlexeyAB);
   ``δ_o = object_scale·(1 − σ_o)``, ``(iou − σ_o)`` with ``rescore`` (AB ``·σ′``); classes
   ``class_scale·(onehot − p)``: the softmax (or tree group) output, pjreddie's logistic classes
   (``softmax=0``; a later truth on the same anchor only adds its class), AlexeyAB's raw classes
   (``softmax=0``), AlexeyAB's focal loss (every class delta times ``0.5·g(p_t)``).
   A tree (``tree=``) writes every group on the class's path; a truth at ``x, y > 100000`` is a
   classification-only label (the most confident anchor of the image gets the class, nothing else).
4. ``cost = Σδ²`` (``pow(mag_array(l.delta), 2)``, float32 summed in memory order) and the line
   ``Region Avg IOU: %f, Class: %f, Obj: %f, No Obj: %f, Avg Recall: %f,  count: %d``.

**Gradient.** pjreddie's CPU ``backward_region_layer`` sends nothing (its body is commented out);
its ``backward_region_layer_gpu`` multiplies x, y and objectness by σ′ and adds the rest as is. Here
``loss`` is the sum of the equivalent losses of darknet-reference.md §4.3 with the targets held fixed:
``½s(σ(z)−t)²`` for x, y and objectness, ``½s(z−t)²`` for w, h, ``s·CE(softmax(z), y)`` for softmax
classes (per tree group with a tree), ``s·BCEWithLogits(z, y)`` for pjreddie's logistic classes and
``½s(z−y)²`` for AlexeyAB's raw ones. Its gradient is pjreddie's GPU update (``δ·σ′`` on x, y,
objectness) and exactly AlexeyAB's ``l.delta`` (which has σ′ inside). ``delta`` is Darknet's
``l.delta`` in both forks, so ``cost = Σδ²`` is Darknet's: **for pjreddie ``delta`` is therefore not
minus the gradient** on x, y and objectness (it lacks σ′), unlike the other heads.

Not supported (:class:`~darknetpy.errors.DarknetError`): ``coords != 4`` (the mask truths of
``coords > 4`` are not in a 5-column truth), pjreddie ``background=1`` (its deltas are no gradient of
any loss), pjreddie truths with a class ``>= classes`` (Darknet writes outside the anchor; AlexeyAB
skips them, as here). A truth centre at exactly 1.0 is put in the last cell (Darknet indexes one past
it). pjreddie's onlyclass branch (tree, ``x, y > 100000``) is followed as written, including its
noobject deltas on every anchor of that image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..boxes import box_iou
from ..errors import DarknetError
from .base import HeadLoss, HeadLossResult, Truths, register_loss

__all__ = ["RegionLoss", "RegionLossAlexeyAB", "RegionTargets", "c_float", "darknet_sq_norm"]

WARMUP_SEEN = 12800  # forward_region_layer: *(net.seen) < 12800
ONLYCLASS = 100000.0  # truth.x > 100000 && truth.y > 100000: a classification-only label


def darknet_sq_norm(delta: Tensor) -> float:
    """``pow(mag_array(delta, n), 2)``: float32 squares summed one after the other, ``sqrt`` to float, squared."""
    a = delta.detach().reshape(-1).to(torch.float32).cpu().numpy()
    total = np.cumsum(a * a, dtype=np.float32)[-1] if a.size else np.float32(0.0)
    mag = np.float32(math.sqrt(float(total)))
    return float(np.float32(float(mag) ** 2))


def c_float(v: float, digits: int = 6) -> str:
    """printf ``%f``: a 0/0 average prints as glibc's ``-nan`` (the x86 default NaN has its sign bit set)."""
    if isinstance(v, float) and math.isnan(v):
        return "-nan"
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{digits}f}"


def _div(a: float, b: float) -> float:
    return a / b if b else float("nan")


@dataclass
class RegionTargets:
    """Everything the region deltas are built from, fixed for one call (shapes ``(B, n, ..., H, W)``)."""

    box_t: Tensor  # (B, n, 4, H, W) targets of x, y (against σ) and w, h (against z)
    box_s: Tensor  # (B, n, 4, H, W) scales (0: no delta)
    obj_t: Tensor  # (B, n, H, W)
    obj_s: Tensor  # (B, n, H, W)
    cls_y: Tensor  # (B, n, C, H, W) class targets
    cls_s: Tensor  # (B, n, C, H, W) class scales (focal and classfix=2 factors included)
    cls_m: Tensor  # (B, n, C, H, W) bool: written
    stats: dict = field(default_factory=dict)


class _RegionLossBase(HeadLoss):
    alexeyab = False
    delta_is_gradient = True  # whether minus the gradient of ``loss`` equals ``delta`` (up to rounding)

    def __init__(self, layer, model) -> None:
        super().__init__(layer, model)
        o = layer.options
        if o.coords != 4:
            raise DarknetError(f"[region] layer {layer.index}: the loss needs coords=4 (got {o.coords})")
        if o.background:
            raise DarknetError(f"[region] layer {layer.index}: background=1 has no loss here (its deltas are no gradient)")
        self.options = o

    # ---- targets ----------------------------------------------------------------------------
    def _truth_rows(self, rows: Tensor) -> list[tuple[float, float, float, float, int]]:
        """The truths Darknet's loops visit: label order, up to the fork's limit (rows stop at x == 0)."""
        o = self.options
        limit = o.max_boxes if self.alexeyab else min(30, o.max_boxes)
        out = []
        for r in rows[:limit].tolist():
            c, x, y, w, h = r
            cls = int(c)
            if cls < 0:
                raise DarknetError(f"truth class {cls} is negative")
            if cls >= o.classes:
                if self.alexeyab:
                    continue  # "Warning: in txt-labels class_id=%d >= classes=%d", then continue
                raise DarknetError(f"truth class {cls} >= classes={o.classes} of [region] layer {self.layer.index}")
            out.append((x, y, w, h, cls))
        return out

    @torch.no_grad()
    def build_targets(self, z: Tensor, truths: Truths, seen: int = 0) -> RegionTargets:
        """Darknet's three passes, recorded as targets and scales (see the module text)."""
        o = self.options
        ab = self.alexeyab
        b_, n, size, hh, ww = z.shape[0], o.num, o.size, self.layer.out_shape[1], self.layer.out_shape[2]
        dt = z.dtype
        out = self.layer.entries(self.layer.forward(z, []))
        zr = z.reshape(b_, n, size, hh, ww)
        sx = torch.sigmoid(zr[:, :, 0:2]) if ab else out[:, :, 0:2]
        so = out[:, :, 4]
        probs = out[:, :, 5 : 5 + o.classes]
        aw = torch.tensor(o.anchors[0::2][:n], dtype=dt).view(n, 1, 1)
        ah = torch.tensor(o.anchors[1::2][:n], dtype=dt).view(n, 1, 1)
        cols = torch.arange(ww, dtype=dt).view(1, 1, ww)
        rows = torch.arange(hh, dtype=dt).view(1, hh, 1)
        # get_region_box: x = (i + σx)/w, w = exp(tw)·anchor/w
        px = (cols + sx[:, :, 0]) / ww
        py = (rows + sx[:, :, 1]) / hh
        pw = (torch.exp(zr[:, :, 2].double()) * aw.double() / ww).to(dt)  # exp() in double, then stored as float
        ph = (torch.exp(zr[:, :, 3].double()) * ah.double() / hh).to(dt)
        pred = torch.stack([px, py, pw, ph], dim=-1)  # (B, n, H, W, 4)

        box_t = torch.zeros(b_, n, 4, hh, ww, dtype=dt)
        box_s = torch.zeros_like(box_t)
        obj_t = torch.zeros(b_, n, hh, ww, dtype=dt)
        obj_s = torch.zeros_like(obj_t)
        cls_y = torch.zeros(b_, n, o.classes, hh, ww, dtype=dt)
        cls_s = torch.zeros_like(cls_y)
        cls_m = torch.zeros(b_, n, o.classes, hh, ww, dtype=torch.bool)
        st = {"avg_iou": 0.0, "recall": 0.0, "avg_cat": 0.0, "avg_obj": 0.0, "avg_anyobj": 0.0, "count": 0, "class_count": 0}

        def write_class(b: int, a: int, j: int, i: int, cls: int, scale: float, tag: bool, avg: bool = True) -> None:
            """``delta_region_class`` at anchor a of cell (j, i)."""
            p = probs[b, a, :, j, i]
            if o.tree is not None:
                pred_p, c = 1.0, cls
                while c >= 0:
                    pred_p *= float(p[c])
                    g = o.tree.group[c]
                    off, gs = o.tree.group_offset[g], o.tree.group_size[g]
                    cls_y[b, a, off : off + gs, j, i] = 0
                    cls_y[b, a, c, j, i] = 1
                    cls_s[b, a, off : off + gs, j, i] = scale
                    cls_m[b, a, off : off + gs, j, i] = True
                    c = o.tree.parent[c]
                if avg:
                    st["avg_cat"] += pred_p
                return
            if tag and bool(cls_m[b, a, 0, j, i]):
                d0 = cls_s[b, a, 0, j, i] * (cls_y[b, a, 0, j, i] - p[0])
                if float(d0) != 0.0:  # if (delta[index] && tag): only this class
                    cls_y[b, a, cls, j, i] = 1
                    cls_s[b, a, cls, j, i] = scale
                    cls_m[b, a, cls, j, i] = True
                    return
            if ab and o.focal_loss:
                pt = float(p[cls]) + 1e-15
                grad = -(1 - pt) * (2 * pt * math.log(pt) + pt - 1)
                scale = scale * 0.5 * grad  # delta *= alpha·grad, alpha = 0.5
            cls_y[b, a, :, j, i] = 0
            cls_y[b, a, cls, j, i] = 1
            cls_s[b, a, :, j, i] = scale
            cls_m[b, a, :, j, i] = True
            if avg:
                st["avg_cat"] += float(p[cls])

        def hier_prob(b: int, a: int, j: int, i: int, cls: int) -> float:
            p, c = 1.0, cls
            while c >= 0:
                p *= float(probs[b, a, c, j, i])
                c = o.tree.parent[c]
            return p

        tag = not ab and not o.softmax  # pjreddie: delta_region_class(..., !l.softmax)
        for b in range(b_):
            rows_b = self._truth_rows(truths[b])
            # -- the classification-only label (a tree and x, y > 100000) --------------------------
            if o.tree is not None:
                only = next(((x, y, w, h, c) for x, y, w, h, c in rows_b if x > ONLYCLASS and y > ONLYCLASS), None)
                if only is not None:
                    cls = only[4]
                    best, where = 0.0, (0, 0, 0)
                    order = [(a, j, i) for j in range(hh) for i in range(ww) for a in range(n)] if ab else [
                        (a, j, i) for a in range(n) for j in range(hh) for i in range(ww)
                    ]
                    for a, j, i in order:
                        if not ab:  # pjreddie: every anchor's noobject delta
                            obj_t[b, a, j, i] = 0
                            obj_s[b, a, j, i] = o.noobject_scale
                        pp = float(so[b, a, j, i]) * hier_prob(b, a, j, i, cls)
                        if pp > best:
                            best, where = pp, (a, j, i)
                    a, j, i = where
                    write_class(b, a, j, i, cls, o.class_scale, tag)
                    if not ab:
                        obj_s[b, a, j, i] = 0  # l.delta[obj_index] = 0
                    st["class_count"] += 1
                    continue
            truth = torch.tensor([[x, y, w, h] for x, y, w, h, _ in rows_b], dtype=dt).view(-1, 4)
            # -- noobject (and the warm-up) -------------------------------------------------------
            if len(truth):
                ious = box_iou(pred[b].unsqueeze(-2), truth.view(1, 1, 1, -1, 4))  # (n, H, W, T)
                if ab:  # AlexeyAB's box_iou returns 0 when I or U is 0
                    ious = torch.nan_to_num(ious, nan=0.0)
                best_iou, best_t = ious.max(dim=-1)
                best_iou = best_iou.clamp(min=0)
            else:
                best_iou = torch.zeros(n, hh, ww, dtype=dt)
                best_t = torch.zeros(n, hh, ww, dtype=torch.long)
            st["avg_anyobj"] += float(so[b].sum())
            if ab and o.classfix == -1:
                obj_t[b] = best_iou
                obj_s[b] = o.noobject_scale
            else:
                above = best_iou > o.thresh
                obj_t[b] = 0
                obj_s[b] = torch.where(above, torch.zeros_like(best_iou), torch.full_like(best_iou, o.noobject_scale))
                if ab and o.classfix > 0:
                    for a, j, i in torch.nonzero(above).tolist():
                        scale = o.class_scale * (float(so[b, a, j, i]) if o.classfix == 2 else 1.0)
                        write_class(b, a, j, i, rows_b[int(best_t[a, j, i])][4], scale, tag)
                        st["class_count"] += 1
            if seen < WARMUP_SEEN:
                f = np.float32 if dt == torch.float32 else np.float64
                for a in range(n):
                    # truth.w = biases[2n]/l.w; tw = log(truth.w*w / biases[2n]) (float steps, log in double)
                    tw = math.log(float(f(f(f(o.anchors[2 * a]) / f(ww)) * f(ww)) / f(o.anchors[2 * a])))
                    th = math.log(float(f(f(f(o.anchors[2 * a + 1]) / f(hh)) * f(hh)) / f(o.anchors[2 * a + 1])))
                    box_t[b, a, 0] = (((cols + 0.5) / ww) * ww - cols).view(1, ww).expand(hh, ww)
                    box_t[b, a, 1] = (((rows + 0.5) / hh) * hh - rows).view(hh, 1).expand(hh, ww)
                    box_t[b, a, 2] = tw
                    box_t[b, a, 3] = th
                box_s[b] = 0.01
            # -- truths ---------------------------------------------------------------------------
            for x, y, w, h, cls in rows_b:
                i, j = _cell(x, ww, dt), _cell(y, hh, dt)
                tshape = torch.tensor([0.0, 0.0, w, h], dtype=dt)
                best, best_n = 0.0, 0
                for a in range(n):
                    if o.bias_match:
                        shape = torch.stack([torch.zeros((), dtype=dt), torch.zeros((), dtype=dt), aw[a, 0, 0] / ww, ah[a, 0, 0] / hh])
                    else:
                        shape = torch.stack([torch.zeros((), dtype=dt), torch.zeros((), dtype=dt), pw[b, a, j, i], ph[b, a, j, i]])
                    iou = float(box_iou(shape, tshape))
                    if iou > best:
                        best, best_n = iou, a
                tbox = torch.tensor([x, y, w, h], dtype=dt)
                iou = float(torch.nan_to_num(box_iou(pred[b, best_n, j, i], tbox), nan=0.0) if ab else box_iou(pred[b, best_n, j, i], tbox))
                box_t[b, best_n, 0, j, i] = tbox[0] * ww - i
                box_t[b, best_n, 1, j, i] = tbox[1] * hh - j
                box_t[b, best_n, 2, j, i] = torch.log((tbox[2] * ww / aw[best_n, 0, 0]).double()).to(dt)
                box_t[b, best_n, 3, j, i] = torch.log((tbox[3] * hh / ah[best_n, 0, 0]).double()).to(dt)
                box_s[b, best_n, :, j, i] = o.coord_scale if ab else o.coord_scale * (2 - tbox[2] * tbox[3])
                if iou > 0.5:
                    st["recall"] += 1
                st["avg_iou"] += iou
                st["avg_obj"] += float(so[b, best_n, j, i])
                obj_t[b, best_n, j, i] = iou if o.rescore else 1.0
                obj_s[b, best_n, j, i] = o.object_scale
                mapped = o.map[cls] if o.map is not None else cls
                write_class(b, best_n, j, i, mapped, o.class_scale, tag)
                st["count"] += 1
                st["class_count"] += 1
        return RegionTargets(box_t, box_s, obj_t, obj_s, cls_y, cls_s, cls_m, st)

    # ---- loss and delta from fixed targets -----------------------------------------------------
    def loss_from_targets(self, z: Tensor, tg: RegionTargets) -> tuple[Tensor, Tensor]:
        """The differentiable loss and Darknet's ``l.delta`` (input layout, detached) for fixed targets."""
        o = self.options
        ab = self.alexeyab
        b_, n, size = z.shape[0], o.num, o.size
        hh, ww = self.layer.out_shape[1], self.layer.out_shape[2]
        zr = z.reshape(b_, n, size, hh, ww)
        out = self.layer.entries(self.layer.forward(z, []))
        sxy = torch.sigmoid(zr[:, :, 0:2]) if ab else out[:, :, 0:2]
        so = out[:, :, 4]
        zc = zr[:, :, 5 : 5 + o.classes]
        # x, y, objectness: ½s(σ − t)²; w, h: ½s(z − t)²
        loss = 0.5 * (tg.box_s[:, :, 0:2] * (sxy - tg.box_t[:, :, 0:2]) ** 2).sum()
        loss = loss + 0.5 * (tg.box_s[:, :, 2:4] * (zr[:, :, 2:4] - tg.box_t[:, :, 2:4]) ** 2).sum()
        loss = loss + 0.5 * (tg.obj_s * (so - tg.obj_t) ** 2).sum()
        m = tg.cls_m.to(z.dtype)
        if o.tree is not None:
            logp = _group_log_softmax(zc, o.tree)
            loss = loss - (m * tg.cls_s * tg.cls_y * logp).sum()
        elif o.softmax:
            loss = loss - (m * tg.cls_s * tg.cls_y * torch.log_softmax(zc, dim=2)).sum()
        elif ab:  # AlexeyAB: no activation on the classes without softmax
            loss = loss + 0.5 * (m * tg.cls_s * (zc - tg.cls_y) ** 2).sum()
        else:
            loss = loss + (m * tg.cls_s * F.binary_cross_entropy_with_logits(zc, tg.cls_y, reduction="none")).sum()
        with torch.no_grad():
            sxy_d, so_d = sxy.detach(), so.detach()
            delta = torch.zeros_like(zr)
            dxy = tg.box_s[:, :, 0:2] * (tg.box_t[:, :, 0:2] - sxy_d)
            dob = tg.obj_s * (tg.obj_t - so_d)
            if ab:  # logistic_gradient(σ) = (1 − σ)·σ
                dxy = dxy * ((1 - sxy_d) * sxy_d)
                dob = dob * ((1 - so_d) * so_d)
            delta[:, :, 0:2] = dxy
            delta[:, :, 2:4] = tg.box_s[:, :, 2:4] * (tg.box_t[:, :, 2:4] - zr[:, :, 2:4].detach())
            delta[:, :, 4] = dob
            p = out[:, :, 5 : 5 + o.classes].detach()
            delta[:, :, 5 : 5 + o.classes] = torch.where(tg.cls_m, tg.cls_s * (tg.cls_y - p), torch.zeros_like(p))
        return loss, delta.reshape(z.shape)

    def __call__(self, z: Tensor, truths: Truths, seen: int = 0) -> HeadLossResult:
        tg = self.build_targets(z, truths, seen)
        loss, delta = self.loss_from_targets(z, tg)
        st = tg.stats
        count, class_count = st["count"], st["class_count"]
        o = self.options
        anyobj = st["avg_anyobj"] / (self.layer.out_shape[1] * self.layer.out_shape[2] * o.num * z.shape[0])
        stats = {
            "avg_iou": _div(st["avg_iou"], count),
            "avg_cat": _div(st["avg_cat"], class_count),
            "avg_obj": _div(st["avg_obj"], count),
            "avg_anyobj": anyobj,
            "recall": _div(st["recall"], count),
            "count": count,
            "class_count": class_count,
        }
        line = (
            f"Region Avg IOU: {c_float(stats['avg_iou'])}, Class: {c_float(stats['avg_cat'])}, "
            f"Obj: {c_float(stats['avg_obj'])}, No Obj: {c_float(anyobj)}, Avg Recall: {c_float(stats['recall'])},  count: {count}"
        )
        return HeadLossResult(loss, delta, darknet_sq_norm(delta), stats, line)


def _cell(v: float, size: int, dt: torch.dtype) -> int:
    """``i = (truth.x * l.w)`` (float product, truncated); a centre at exactly 1 goes to the last cell."""
    if not 0.0 <= v <= 1.0:
        raise DarknetError(f"truth centre {v} is outside the image (0..1)")
    prod = np.float32(v) * np.float32(size) if dt == torch.float32 else v * size
    return min(int(prod), size - 1)


def _group_log_softmax(x: Tensor, tree) -> Tensor:
    """``log`` of :func:`~darknetpy.layers.softmax.tree_softmax` along dim 2 of ``(B, n, C, H, W)``."""
    v = x.movedim(2, -1)
    lead = v.shape[:-1]
    flat = v.reshape(-1, tree.n)
    index = torch.tensor(tree.group_index(), dtype=torch.long).expand_as(flat)
    largest = torch.full((flat.shape[0], tree.groups), float("-inf"), dtype=x.dtype)
    largest = largest.scatter_reduce(1, index, flat.detach(), reduce="amax", include_self=True)
    shifted = flat - largest.gather(1, index)
    total = torch.zeros((flat.shape[0], tree.groups), dtype=x.dtype).scatter_add(1, index, torch.exp(shifted))
    out = shifted - torch.log(total).gather(1, index)
    return out.reshape(*lead, tree.n).movedim(-1, 2)


@register_loss("darknet", "region", "pjreddie")
class RegionLoss(_RegionLossBase):
    """pjreddie's ``forward_region_layer`` loss (see the module text); the gradient is its GPU backward's."""

    alexeyab = False
    delta_is_gradient = False  # delta lacks the σ′ the gradient has on x, y and objectness


@register_loss("darknet", "region", "alexeyab")
class RegionLossAlexeyAB(_RegionLossBase):
    """AlexeyAB's ``forward_region_layer`` loss: ``delta`` is minus the gradient (σ′ is inside it)."""

    alexeyab = True
