"""AlexeyAB's loss of the ``[Gaussian_yolo]`` head (Gaussian YOLOv3, Choi et al., ICCV 2019).

Darknet (AlexeyAB): ``src/gaussian_yolo_layer.c:forward_gaussian_yolo_layer`` (training part),
``delta_gaussian_yolo_box``, ``delta_gaussian_yolo_class``, ``compare_gaussian_yolo_class``,
``averages_gaussian_yolo_deltas``, ``backward_gaussian_yolo_layer`` (CPU: ``l.delta`` added as is);
``src/parser.c:get_classes_multipliers``; ``src/box.c:dx_box_iou/box_iou_kind`` (through
:mod:`darknetpy.loss.iou`). Followed as stored in the search index: the version with
``uc_normalizer``, ``yolo_point``, ``iou_thresh``/``iou_thresh_kind``, ``max_delta``,
``label_smooth_eps``, ``counters_per_class`` and ``check_mistakes``.

Entries per anchor: ``0 μx, 1 σx, 2 μy, 3 σy, 4 μw, 5 σw, 6 μh, 7 σh, 8 objectness, 9.. classes``
(μx, μy after ``scale_x_y``; μw, μh raw; σ and the rest through the logistic).

Per image:

1. every anchor: ``best_match_iou``: the best IoU of its decoded box with a truth, counted only when
   some class probability of the anchor is ``> 0.25``; ``δ_o = cls_normalizer·(0 − o)``, 0 when
   ``best_match_iou > ignore_thresh``; when the plain best IoU ``> truth_thresh``: ``δ_o =
   cls_normalizer·(1 − o)``, the class and the box of that truth (scale ``2 − w·h``). (Objectness uses
   ``cls_normalizer``; ``obj_normalizer`` is read but unused.)
2. each truth (label order, ``max`` of them): the best of all ``num`` anchors by shape IoU; if it is in
   ``mask``: the box (scale ``2 − w·h``, ``iou_normalizer·cm``), ``δ_o = cm·cls_normalizer·(1 − o)``, the
   class; with ``iou_thresh < 1`` the same for every other anchor of the mask whose shape
   ``box_iou_kind(·, iou_thresh_kind)`` with the truth exceeds ``iou_thresh``. ``cm`` is the class
   multiplier ``max_count/count_c`` (capped at ``max_delta``) from ``counters_per_class``, else 1.
3. box deltas *accumulate*; at the end each anchor's 8 box deltas are divided by the number of its
   classes with ``δ_c > 0`` (``averages_gaussian_yolo_deltas``, always, not only with ``iou_thresh``).

``delta_gaussian_yolo_box`` for one coordinate (``d = t − μ``; ``t_x = x·lw − i``,
``t_w = log(w·net_w/a_w)``; ``yolo_point`` moves ``t_x, t_y`` and the decoded box to a corner)::

    N     = exp(−(d/σ)²/2) / (√(2π)·(σ + 0.3))
    temp  = ½·N/(N + 1e-9)·scale                         (scale = 2 − w·h)
    δ_μ   = iou_normalizer·cm·temp·d/σ²                  (= −iou_norm·temp·∂NLL/∂μ)
    δ_σ   = uc_normalizer·temp·(d²/σ³ − 1/(σ + 0.3))     (= −uc_norm·temp·∂NLL/∂σ)

with ``NLL = d²/(2σ²) + log(σ + 0.3)`` (``−log N`` up to a constant). With ``iou_loss`` giou/diou/ciou
the four ``δ_μ`` are Darknet's ``dx_box_iou`` values instead (``dw, dh`` times ``exp(z_w), exp(z_h)``),
times ``iou_normalizer·cm``; the ``δ_σ`` keep the formula above. NaN/inf become 0, then ``±max_delta``.
Classes (``delta_gaussian_yolo_class``): ``δ_k = y_k − p_k`` with ``y = onehot·(1−ε) + ε/2``, the true
class times ``cm``; when the anchor's class 0 delta is already non-zero only the new class is written.
``cost = Σδ²``; the log line is Darknet's (``class_loss``: Σδ² off the 8 box entries, ``uc_loss``: Σδ²
of entries 4..7 as the C computes it, ``iou_loss`` the rest, all divided by the batch).

**Gradient.** Darknet adds ``δ`` to the gradient of the conv output *as is*: the box deltas are
derivatives with respect to the activated μ and σ (no σ′, no ``scale_x_y``), and the two normalizers
scale the μ and σ halves differently, so no function of ``z`` has them as its gradient. Two modes
(attribute ``gradient``):

- ``"darknet"`` (default): the gradient with respect to ``z`` is exactly ``−δ`` (a custom autograd
  function; for objectness and classes that is also the gradient of their ``BCEWithLogits``);
- ``"exact"``: the gradient of the loss value below (for gradcheck and for users who want a proper
  gradient): its derivative with respect to (μ, σ) equals Darknet's δ when ``iou_normalizer·cm ==
  uc_normalizer`` and ``max_delta`` does not clip; with respect to ``z`` the logistic (and
  ``scale_x_y``) derivatives multiply it.

Loss value (both modes), per box assignment and coordinate, with the fixed weights ``temp`` and the
averaging factor ``1/k``: ``temp·(iou_norm·cm·d²/(2σ²) + uc_norm·log(σ + 0.3))`` (giou/diou/ciou: the
first term replaced by ``iou_norm·cm·(1 − IoU_kind)/4`` per coordinate, i.e. ``iou_norm·cm·(1 −
IoU_kind)`` per box); objectness ``s·BCEWithLogits(z_o, t)``; classes ``w_k·BCEWithLogits(z_k, y_k)``.

Not followed: ``net.adversarial`` (an attack mode, not training); a truth class ``>= classes`` is
skipped in both passes (Darknet skips it in the first and writes past the anchor in the second); a
truth centre at exactly 1.0 goes to the last cell.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..boxes import box_iou as _box_iou_plain
from ..errors import DarknetError
from .base import HeadLoss, HeadLossResult, Truths, register_loss
from .region import c_float, darknet_sq_norm

__all__ = ["GaussianTargets", "GaussianYoloLoss", "classes_multipliers"]

SIGMA_CONST = float(np.float32(0.3))  # float sigma_const = 0.3 (the float nearest 0.3)
EPSI = float(np.float32(1e-9))  # float epsi = pow(10,-9)
SQRT_2PI = math.sqrt(math.pi * 2.0)  # glibc M_PI


def classes_multipliers(counters: tuple[int, ...] | None, max_delta: float) -> list[float] | None:
    """``get_classes_multipliers``: ``max_count / count_c`` (counts below 1 taken as 1), capped at ``max_delta``."""
    if counters is None:
        return None
    c = [max(1, int(v)) for v in counters]
    top = float(max(c))
    return [float(np.float32(min(top / v, max_delta))) for v in c]


def _iou_ab(a: Tensor, b: Tensor) -> Tensor:
    """AlexeyAB ``box_iou``: 0 when the intersection or the union is 0."""
    return torch.nan_to_num(_box_iou_plain(a, b), nan=0.0)


@dataclass
class GaussianTargets:
    """Fixed targets of one call: objectness/classes, Darknet's box deltas and the box assignments."""

    obj_t: Tensor  # (B, n, H, W)
    obj_s: Tensor  # (B, n, H, W)
    cls_y: Tensor  # (B, n, C, H, W)
    cls_w: Tensor  # (B, n, C, H, W) the BCE weights (cm on a true class)
    cls_m: Tensor  # (B, n, C, H, W) bool
    box_delta: Tensor  # (B, n, 8, H, W) Darknet's accumulated, averaged box deltas
    assign: dict  # per box assignment: b, a, j, i, anchor (K, 2), truth (K, 4), iou_w, temp (K, 4), post
    stats: dict = field(default_factory=dict)


class _Delta(torch.autograd.Function):
    """Value ``value``, gradient ``−delta`` with respect to ``z`` (Darknet's update, not a derivative)."""

    @staticmethod
    def forward(ctx, z, value, delta):  # type: ignore[override]
        ctx.save_for_backward(delta)
        return value.detach().clone()

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (delta,) = ctx.saved_tensors
        return -grad * delta, None, None


@register_loss("darknet", "Gaussian_yolo", "alexeyab")
class GaussianYoloLoss(HeadLoss):
    """AlexeyAB's ``forward_gaussian_yolo_layer`` loss (see the module text)."""

    gradient = "darknet"  # or "exact"
    delta_is_gradient = True  # in the "darknet" mode

    def __init__(self, layer, model) -> None:
        super().__init__(layer, model)
        self.options = layer.options
        self.n = layer.n
        self.per = layer.classes + 9
        self.multipliers = classes_multipliers(self.options.counters_per_class, self.options.max_delta)

    # ---- helpers --------------------------------------------------------------------------------
    def _anchor(self, k: int) -> tuple[float, float]:
        return self.options.anchors[2 * k], self.options.anchors[2 * k + 1]

    def _cm(self, cls: int) -> float:
        return self.multipliers[cls] if self.multipliers is not None else 1.0

    def _shape_ious(self, w: float, h: float, kind: str) -> list[float]:
        """``box_iou_kind`` of every anchor's shape ``(0, 0, a_w/net_w, a_h/net_h)`` with the truth's."""
        from .iou import box_iou_kind  # AlexeyAB src/box.c, in the shared iou module

        o = self.options
        a = torch.tensor(
            [[0.0, 0.0, o.anchors[2 * k] / self.net_w, o.anchors[2 * k + 1] / self.net_h] for k in range(o.total)], dtype=torch.float32
        )
        t = torch.tensor([[0.0, 0.0, w, h]], dtype=torch.float32)
        return box_iou_kind(a, t, kind).tolist()

    def _truth_rows(self, rows: Tensor) -> list[tuple[float, float, float, float, int]]:
        o = self.options
        out = []
        for c, x, y, w, h in rows[: o.max_boxes].tolist():
            cls = int(c)
            if cls < 0:
                raise DarknetError(f"truth class {cls} is negative")
            if cls >= o.classes:
                continue  # "Warning: in txt-labels class_id=%d >= classes=%d", then continue
            out.append((x, y, w, h, cls))
        return out

    def _cell(self, x: float, y: float, w: float, h: float, lw: int, lh: int) -> tuple[int, int]:
        point = self.options.yolo_point
        if point == "left_top":
            x, y = x - w / 2, y - h / 2
        elif point == "right_bottom":
            x, y = x + w / 2, y + h / 2
        if point == "center" and not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise DarknetError(f"truth centre ({x}, {y}) is outside the image (0..1)")
        i = int(np.float32(x) * np.float32(lw))
        j = int(np.float32(y) * np.float32(lh))
        return min(max(i, 0), lw - 1), min(max(j, 0), lh - 1)

    def _pred_boxes(self, mu: Tensor, zwh: Tensor, lw: int, lh: int) -> Tensor:
        """``get_gaussian_yolo_box`` for ``(B, n, ..., H, W)`` means: ``(B, n, H, W, 4)``."""
        o = self.options
        dt = mu.dtype
        n = self.n
        aw = torch.tensor([o.anchors[2 * m] for m in o.mask], dtype=torch.float64).view(n, 1, 1)
        ah = torch.tensor([o.anchors[2 * m + 1] for m in o.mask], dtype=torch.float64).view(n, 1, 1)
        cols = torch.arange(lw, dtype=dt).view(1, 1, lw)
        rows = torch.arange(lh, dtype=dt).view(1, lh, 1)
        bw = (torch.exp(zwh[:, :, 0].double()) * aw / self.net_w).to(dt)
        bh = (torch.exp(zwh[:, :, 1].double()) * ah / self.net_h).to(dt)
        bx = (cols + mu[:, :, 0]) / lw
        by = (rows + mu[:, :, 1]) / lh
        if o.yolo_point == "left_top":
            bx, by = bx + bw / 2, by + bh / 2
        elif o.yolo_point == "right_bottom":
            bx, by = bx - bw / 2, by - bh / 2
        return torch.stack([bx, by, bw, bh], dim=-1)

    # ---- targets -------------------------------------------------------------------------------
    @torch.no_grad()
    def build_targets(self, z: Tensor, truths: Truths, seen: int = 0) -> GaussianTargets:
        o = self.options
        b_, n, per, c_ = z.shape[0], self.n, self.per, o.classes
        lh, lw = z.shape[2], z.shape[3]
        dt = z.dtype
        out = self.layer.forward(z, []).view(b_, n, per, lh, lw)
        zr = z.view(b_, n, per, lh, lw)
        mu = out[:, :, [0, 2]]
        pred = self._pred_boxes(mu, zr[:, :, [4, 6]], lw, lh)  # (B, n, H, W, 4)
        so = out[:, :, 8]
        probs = out[:, :, 9:]

        obj_t = torch.zeros(b_, n, lh, lw, dtype=dt)
        obj_s = torch.zeros_like(obj_t)
        cls_y = torch.zeros(b_, n, c_, lh, lw, dtype=dt)
        cls_w = torch.zeros_like(cls_y)
        cls_m = torch.zeros(b_, n, c_, lh, lw, dtype=torch.bool)
        box_delta = torch.zeros(b_, n, 8, lh, lw, dtype=dt)
        st = {"avg_iou": 0.0, "recall": 0.0, "recall75": 0.0, "avg_cat": 0.0, "avg_obj": 0.0, "avg_anyobj": 0.0, "count": 0, "class_count": 0}
        recs: list[tuple] = []  # (b, slot, j, i, global anchor, truth x,y,w,h, iou_w, counts_in_stats)
        temps: list[Tensor] = []
        eps = o.label_smooth_eps

        def write_class(b: int, a: int, j: int, i: int, cls: int, avg: bool) -> None:
            """``delta_gaussian_yolo_class``."""
            p = probs[b, a, :, j, i]
            cm = self._cm(cls)
            y_true = 1.0 * (1 - eps) + 0.5 * eps if eps else 1.0
            d0 = cls_w[b, a, 0, j, i] * (cls_y[b, a, 0, j, i] - p[0]) if bool(cls_m[b, a, 0, j, i]) else 0.0
            if float(d0) != 0.0:  # if (delta[index]): only this class
                cls_y[b, a, cls, j, i] = y_true
                cls_w[b, a, cls, j, i] = cm
                cls_m[b, a, cls, j, i] = True
            else:
                y_other = 0.5 * eps if eps else 0.0
                cls_y[b, a, :, j, i] = y_other
                cls_y[b, a, cls, j, i] = y_true
                cls_w[b, a, :, j, i] = 1.0
                cls_w[b, a, cls, j, i] = cm
                cls_m[b, a, :, j, i] = True
            if avg:
                st["avg_cat"] += float(p[cls])

        for b in range(b_):
            rows_b = self._truth_rows(truths[b])
            mapped = [o.extra.get("map")[c] if o.extra.get("map") is not None else c for *_, c in rows_b]
            first = len(recs)
            # -- every anchor -----------------------------------------------------------------------
            if rows_b:
                truth = torch.tensor([r[:4] for r in rows_b], dtype=dt)
                ious = _iou_ab(pred[b].unsqueeze(-2), truth.view(1, 1, 1, -1, 4))  # (n, H, W, T)
                best_iou, best_t = ious.max(dim=-1)
                best_iou = best_iou.clamp(min=0)
                match = (probs[b] > 0.25).any(dim=1)  # compare_gaussian_yolo_class (objectness unused)
                best_match = torch.where(match, best_iou, torch.zeros_like(best_iou))
            else:
                best_iou = best_match = torch.zeros(n, lh, lw, dtype=dt)
                best_t = torch.zeros(n, lh, lw, dtype=torch.long)
            st["avg_anyobj"] += float(so[b].sum())
            obj_t[b] = 0
            obj_s[b] = torch.where(best_match > o.ignore_thresh, torch.zeros_like(best_match), torch.full_like(best_match, o.cls_normalizer))
            if rows_b:  # best_iou > truth_thresh, in Darknet's j, i, n loop order
                for j, i, a in torch.nonzero((best_iou > o.truth_thresh).permute(1, 2, 0)).tolist():
                    t = int(best_t[a, j, i])
                    cls = mapped[t]
                    obj_t[b, a, j, i] = 1
                    obj_s[b, a, j, i] = o.cls_normalizer
                    write_class(b, a, j, i, cls, avg=False)
                    iou_w = float(np.float32(o.iou_normalizer) * np.float32(self._cm(cls)))
                    recs.append((b, a, j, i, o.mask[a], rows_b[t][:4], iou_w, False))
            # -- each truth ---------------------------------------------------------------------------
            for (x, y, w, h, _), cls in zip(rows_b, mapped):
                i, j = self._cell(x, y, w, h, lw, lh)
                best, best_n = 0.0, 0
                for k, iou in enumerate(self._shape_ious(w, h, "iou")):
                    if iou > best:
                        best, best_n = iou, k
                iou_w = float(np.float32(o.iou_normalizer) * np.float32(self._cm(cls)))
                targets = []
                if best_n in o.mask:
                    targets.append(o.mask.index(best_n))
                if o.iou_thresh < 1.0:
                    for k, iou in enumerate(self._shape_ious(w, h, o.iou_thresh_kind)):
                        if k in o.mask and k != best_n and iou > o.iou_thresh:
                            targets.append(o.mask.index(k))
                for a in targets:
                    recs.append((b, a, j, i, o.mask[a], (x, y, w, h), iou_w, True))
                    st["avg_obj"] += float(so[b, a, j, i])
                    obj_t[b, a, j, i] = 1
                    obj_s[b, a, j, i] = float(np.float32(self._cm(cls)) * np.float32(o.cls_normalizer))
                    write_class(b, a, j, i, cls, avg=True)
                    st["count"] += 1
                    st["class_count"] += 1
            # -- the box deltas of this image, accumulated, then averaged -----------------------------
            img = recs[first:]
            if img:
                d, ious, temp = self._box_deltas(img, out, zr, pred)
                temps.append(temp)
                for (bb, a, j, i, *_), dd in zip(img, d):
                    box_delta[bb, a, :, j, i] += dd.to(dt)
                for rec, iou in zip(img, ious.tolist()):
                    if rec[7]:
                        st["avg_iou"] += iou
                        st["recall"] += iou > 0.5
                        st["recall75"] += iou > 0.75
            p_b = probs[b]
            dcls = torch.where(cls_m[b], cls_w[b] * (cls_y[b] - p_b), torch.zeros_like(p_b))
            k = (dcls > 0).sum(dim=1)  # (n, H, W)
            box_delta[b] = torch.where(k[:, None] > 0, box_delta[b] / k[:, None].clamp(min=1).to(dt), box_delta[b])

        assign = self._assign_tensors(recs, temps, cls_m, cls_w, cls_y, probs, dt)
        return GaussianTargets(obj_t, obj_s, cls_y, cls_w, cls_m, box_delta, assign, st)

    def _box_deltas(self, recs: list, out: Tensor, zr: Tensor, pred: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``delta_gaussian_yolo_box`` for each record: the 8 amounts added, the IoU it returns, ``temp``."""
        o = self.options
        dt = out.dtype
        r32 = (lambda t: t.to(torch.float32).to(torch.float64)) if dt == torch.float32 else (lambda t: t)
        lh, lw = out.shape[3], out.shape[4]
        b = torch.tensor([r[0] for r in recs])
        a = torch.tensor([r[1] for r in recs])
        j = torch.tensor([r[2] for r in recs])
        i = torch.tensor([r[3] for r in recs])
        anchor = torch.tensor([self._anchor(r[4]) for r in recs], dtype=torch.float64)
        truth = torch.tensor([r[5] for r in recs], dtype=dt)
        scale = r32(2 - truth[:, 2] * truth[:, 3]).double()
        iou_w = torch.tensor([r[6] for r in recs], dtype=torch.float64)
        v = out[b, a, :, j, i].double()  # (K, per)
        zwh = zr[b, a, :, j, i][:, [4, 6]].double()
        pb = pred[b, a, j, i]  # (K, 4)
        iou_plain = _iou_ab(pb, truth)
        tx_src, ty_src = truth[:, 0], truth[:, 1]
        if o.yolo_point == "left_top":
            tx_src, ty_src = truth[:, 0] - truth[:, 2] / 2, truth[:, 1] - truth[:, 3] / 2
        elif o.yolo_point == "right_bottom":
            tx_src, ty_src = truth[:, 0] + truth[:, 2] / 2, truth[:, 1] + truth[:, 3] / 2
        tx = (tx_src * lw - i.to(dt)).double()
        ty = (ty_src * lh - j.to(dt)).double()
        tw = r32(torch.log(r32((truth[:, 2] * self.net_w).double() / anchor[:, 0].to(dt).double())))
        th = r32(torch.log(r32((truth[:, 3] * self.net_h).double() / anchor[:, 1].to(dt).double())))
        t = torch.stack([tx, ty, tw, th], dim=1)
        mu = v[:, [0, 2, 4, 6]]
        sig = v[:, [1, 3, 5, 7]]
        d = r32(t - mu)
        in_exp = r32(d / sig)
        in_exp2 = r32(in_exp**2)
        sig_c = r32(sig + SIGMA_CONST)
        normal = r32(torch.exp(in_exp2 * (-1.0 / 2.0)) / (SQRT_2PI * sig_c))
        temp = r32(0.5 * 1.0 / r32(normal + EPSI) * normal * scale[:, None])
        d_mu = r32(r32(temp * in_exp) * (1.0 / sig))
        d_sig = r32(temp * (r32(in_exp2 / sig) - 1.0 / sig_c))
        if o.iou_loss != "mse":
            from .iou import box_iou_kind, dx_box_iou  # AlexeyAB src/box.c

            fixed = pb.to(torch.float32).clone()
            fixed[:, 2] = torch.where(fixed[:, 2] == 0, torch.ones_like(fixed[:, 2]), fixed[:, 2])
            fixed[:, 3] = torch.where(fixed[:, 3] == 0, torch.ones_like(fixed[:, 3]), fixed[:, 3])
            g = dx_box_iou(fixed, truth.to(torch.float32), o.iou_loss).double()
            gx, gy, gw, gh = g.unbind(1)
            if o.yolo_point == "left_top":
                gx, gy = r32(gx - gw / 2), r32(gy - gh / 2)
            elif o.yolo_point == "right_bottom":
                gx, gy = r32(gx + gw / 2), r32(gy + gh / 2)
            gw = r32(gw * torch.exp(zwh[:, 0]))
            gh = r32(gh * torch.exp(zwh[:, 1]))
            d_mu = torch.stack([gx, gy, gw, gh], dim=1)
            iou_ret = box_iou_kind(pb.to(torch.float32), truth.to(torch.float32), "giou").double()
        else:
            iou_ret = iou_plain.double()
        d_mu = r32(d_mu * iou_w[:, None])
        d_sig = r32(d_sig * float(np.float32(o.uc_normalizer)))
        d_mu = torch.where(torch.isfinite(d_mu), d_mu, torch.zeros_like(d_mu))
        d_sig = torch.where(torch.isfinite(d_sig), d_sig, torch.zeros_like(d_sig))
        if math.isfinite(o.max_delta) and o.max_delta < float(np.finfo(np.float32).max):
            d_mu = d_mu.clamp(-o.max_delta, o.max_delta)
            d_sig = d_sig.clamp(-o.max_delta, o.max_delta)
        delta8 = torch.stack([d_mu[:, 0], d_sig[:, 0], d_mu[:, 1], d_sig[:, 1], d_mu[:, 2], d_sig[:, 2], d_mu[:, 3], d_sig[:, 3]], dim=1)
        return delta8, iou_ret, temp

    def _assign_tensors(self, recs, temps, cls_m, cls_w, cls_y, probs, dt) -> dict:
        if not recs:
            e = torch.zeros(0, dtype=torch.long)
            return {
                "b": e,
                "a": e,
                "j": e,
                "i": e,
                "anchor": torch.zeros(0, 2, dtype=dt),
                "truth": torch.zeros(0, 4, dtype=dt),
                "iou_w": torch.zeros(0, dtype=dt),
                "temp": torch.zeros(0, 4, dtype=dt),
                "post": torch.zeros(0, dtype=dt),
            }
        temp = torch.cat(temps)
        b = torch.tensor([r[0] for r in recs])
        a = torch.tensor([r[1] for r in recs])
        j = torch.tensor([r[2] for r in recs])
        i = torch.tensor([r[3] for r in recs])
        dcls = torch.where(cls_m, cls_w * (cls_y - probs), torch.zeros_like(probs))
        k = (dcls > 0).sum(dim=2)[b, a, j, i]
        post = torch.where(k > 0, 1.0 / k.clamp(min=1).to(dt), torch.ones(len(recs), dtype=dt))
        return {
            "b": b,
            "a": a,
            "j": j,
            "i": i,
            "anchor": torch.tensor([self._anchor(r[4]) for r in recs], dtype=dt),
            "truth": torch.tensor([r[5] for r in recs], dtype=dt),
            "iou_w": torch.tensor([r[6] for r in recs], dtype=dt),
            "temp": temp.to(dt),
            "post": post,
        }

    # ---- loss from fixed targets ---------------------------------------------------------------
    def box_value(self, z: Tensor, tg: GaussianTargets) -> Tensor:
        """The box part of the loss value (differentiable in ``z`` through μ, σ and the decoded box)."""
        o = self.options
        s = tg.assign
        if not len(s["b"]):
            return z.sum() * 0
        b_, n, per = z.shape[0], self.n, self.per
        lh, lw = z.shape[2], z.shape[3]
        out = self.layer.forward(z, []).view(b_, n, per, lh, lw)
        zr = z.view(b_, n, per, lh, lw)
        v = out[s["b"], s["a"], :, s["j"], s["i"]]  # (K, per)
        zv = zr[s["b"], s["a"], :, s["j"], s["i"]]
        mu = torch.stack([v[:, 0], v[:, 2], zv[:, 4], zv[:, 6]], dim=1)
        sig = v[:, [1, 3, 5, 7]]
        truth = s["truth"]
        tx_src, ty_src = truth[:, 0], truth[:, 1]
        if o.yolo_point == "left_top":
            tx_src, ty_src = truth[:, 0] - truth[:, 2] / 2, truth[:, 1] - truth[:, 3] / 2
        elif o.yolo_point == "right_bottom":
            tx_src, ty_src = truth[:, 0] + truth[:, 2] / 2, truth[:, 1] + truth[:, 3] / 2
        t = torch.stack([
            tx_src * lw - s["i"].to(z.dtype),
            ty_src * lh - s["j"].to(z.dtype),
            torch.log(truth[:, 2] * self.net_w / s["anchor"][:, 0]),
            torch.log(truth[:, 3] * self.net_h / s["anchor"][:, 1]),
        ], dim=1)
        d = t - mu
        temp = s["temp"]
        uc = s["temp"] * o.uc_normalizer * torch.log(sig + SIGMA_CONST)
        if o.iou_loss == "mse":
            first = s["iou_w"][:, None] * temp * d * d / (2 * sig * sig)
            per_box = (first + uc).sum(dim=1)
        else:
            from .iou import box_iou_kind

            bw = torch.exp(zv[:, 4]) * s["anchor"][:, 0] / self.net_w
            bh = torch.exp(zv[:, 6]) * s["anchor"][:, 1] / self.net_h
            bx = (s["i"].to(z.dtype) + v[:, 0]) / lw
            by = (s["j"].to(z.dtype) + v[:, 2]) / lh
            if o.yolo_point == "left_top":
                bx, by = bx + bw / 2, by + bh / 2
            elif o.yolo_point == "right_bottom":
                bx, by = bx - bw / 2, by - bh / 2
            pb = torch.stack([bx, by, bw, bh], dim=1)
            per_box = s["iou_w"] * (1 - box_iou_kind(pb, truth, o.iou_loss)) + uc.sum(dim=1)
        return (s["post"] * per_box).sum()

    @torch.no_grad()
    def darknet_delta(self, z: Tensor, tg: GaussianTargets) -> Tensor:
        """Darknet's ``l.delta`` (the shape of ``z``) for fixed targets."""
        b_, n, per = z.shape[0], self.n, self.per
        lh, lw = z.shape[2], z.shape[3]
        out = self.layer.forward(z.detach(), []).view(b_, n, per, lh, lw)
        delta = torch.zeros(b_, n, per, lh, lw, dtype=z.dtype)
        delta[:, :, 0:8] = tg.box_delta
        delta[:, :, 8] = tg.obj_s * (tg.obj_t - out[:, :, 8])
        p = out[:, :, 9:]
        delta[:, :, 9:] = torch.where(tg.cls_m, tg.cls_w * (tg.cls_y - p), torch.zeros_like(p))
        return delta.view_as(z)

    def loss_from_targets(self, z: Tensor, tg: GaussianTargets, gradient: str | None = None) -> Tensor:
        """The loss for fixed targets. ``gradient="darknet"``: its gradient is exactly minus
        :meth:`darknet_delta`; ``"exact"``: the true gradient of the value."""
        gradient = gradient or self.gradient
        if gradient not in ("darknet", "exact"):
            raise DarknetError(f"gradient must be 'darknet' or 'exact', not {gradient!r}")
        b_, n, per = z.shape[0], self.n, self.per
        lh, lw = z.shape[2], z.shape[3]
        if gradient == "darknet":
            with torch.no_grad():
                value = self.loss_from_targets(z.detach(), tg, "exact")
            return _Delta.apply(z, value, self.darknet_delta(z, tg))
        zr = z.view(b_, n, per, lh, lw)
        loss = (tg.obj_s * F.binary_cross_entropy_with_logits(zr[:, :, 8], tg.obj_t, reduction="none")).sum()
        m = tg.cls_m.to(z.dtype)
        loss = loss + (m * tg.cls_w * F.binary_cross_entropy_with_logits(zr[:, :, 9:], tg.cls_y, reduction="none")).sum()
        return loss + self.box_value(z, tg)

    def __call__(self, z: Tensor, truths: Truths, seen: int = 0) -> HeadLossResult:
        tg = self.build_targets(z, truths, seen)
        loss = self.loss_from_targets(z, tg)
        b_, n, per = z.shape[0], self.n, self.per
        lh, lw = z.shape[2], z.shape[3]
        delta = self.darknet_delta(z, tg).view(b_, n, per, lh, lw)
        cost = darknet_sq_norm(delta)
        no_box = delta.clone()
        no_box[:, :, 0:8] = 0
        no_uc = delta.clone()
        no_uc[:, :, 4:8] = 0
        class_loss = darknet_sq_norm(no_box)
        except_uc = darknet_sq_norm(no_uc)
        f32 = np.float32  # float loss, uc_loss, iou_loss; each divided by l.batch
        total = f32(cost)
        uc_loss, iou_loss = f32(total - f32(except_uc)), f32(f32(except_uc) - f32(class_loss))
        total, uc_loss, iou_loss, class_loss = (float(f32(v) / f32(b_)) for v in (total, uc_loss, iou_loss, class_loss))
        st = tg.stats
        count, class_count = st["count"], st["class_count"]
        div = lambda a, c: a / c if c else float("nan")
        stats = {
            "avg_iou": div(st["avg_iou"], count),
            "avg_cat": div(st["avg_cat"], class_count),
            "avg_obj": div(st["avg_obj"], count),
            "avg_anyobj": st["avg_anyobj"] / (lw * lh * n * b_),
            "recall": div(st["recall"], count),
            "recall75": div(st["recall75"], count),
            "count": count,
            "class_count": class_count,
            "class_loss": class_loss,
            "iou_loss": iou_loss,
            "uc_loss": uc_loss,
            "total_loss": total,
        }
        line = (
            f"Region {self.layer.index} Avg IOU: {c_float(stats['avg_iou'])}, Class: {c_float(stats['avg_cat'])}, "
            f"Obj: {c_float(stats['avg_obj'])}, No Obj: {c_float(stats['avg_anyobj'])}, .5R: {c_float(stats['recall'])}, "
            f".75R: {c_float(stats['recall75'])},  count: {count}, class_loss = {c_float(stats['class_loss'], 2)}, "
            f"iou_loss = {c_float(stats['iou_loss'], 2)}, uc_loss = {c_float(stats['uc_loss'], 2)}, "
            f"total_loss = {c_float(stats['total_loss'], 2)} "
        )
        return HeadLossResult(loss, delta.view_as(z), cost, stats, line)
