"""IoU kinds and AlexeyAB's hand-written box "gradient", in Darknet's float32 arithmetic.

Darknet: AlexeyAB ``src/box.c`` (``overlap``, ``box_intersection``, ``box_union``, ``box_iou``,
``box_giou``, ``box_diou``, ``box_ciou``, ``box_iou_kind``, ``dx_box_iou``) and the iou branch of
``src/yolo_layer.c:delta_yolo_box`` (darknet-reference.md §4.2.5). Boxes are ``(..., 4)`` tensors
``x, y, w, h`` (centre and size, relative to the network input), float32. Every operation follows
the C expression and its promotions: ``float`` steps in float32, the ``atan``/``M_PI``/``exp``
chains in float64 rounded once to float32 (``M_PI`` is glibc's, the build is gnu C).

``dx_box_iou`` is *not* the derivative of any of the IoU values: it is Darknet's own formula
(G-Darknet's IoU terms, then DIoU/CIoU distance and aspect terms with power 1, a sign on x that
is not the true one, w/h terms not halved). :class:`DarknetIouLoss` wraps it as an autograd
function whose forward is the IoU-type loss value and whose backward is Darknet's box delta.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "IOU_KINDS",
    "ciou",
    "ciou_alpha",
    "DarknetIouLoss",
    "box_ciou",
    "box_diou",
    "box_giou",
    "box_iou",
    "box_iou_kind",
    "dx_box_iou",
    "yolo_box_delta_iou",
]

IOU_KINDS = ("iou", "giou", "diou", "ciou")
_F32 = torch.float32
_PI2 = math.pi * math.pi  # glibc M_PI (math.h, gnu C); box.c's fallback 3.141592 is not used


def _unbind(b: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return b[..., 0], b[..., 1], b[..., 2], b[..., 3]


def _overlap(x1: Tensor, w1: Tensor, x2: Tensor, w2: Tensor) -> Tensor:
    l1, l2 = x1 - w1 / 2, x2 - w2 / 2
    left = torch.where(l1 > l2, l1, l2)
    r1, r2 = x1 + w1 / 2, x2 + w2 / 2
    right = torch.where(r1 < r2, r1, r2)
    return right - left


def box_intersection(a: Tensor, b: Tensor) -> Tensor:
    """``box_intersection``: 0 when the boxes are apart in x or y."""
    ax, ay, aw, ah = _unbind(a)
    bx, by, bw, bh = _unbind(b)
    w = _overlap(ax, aw, bx, bw)
    h = _overlap(ay, ah, by, bh)
    return torch.where((w < 0) | (h < 0), torch.zeros_like(w), w * h)


def box_iou(a: Tensor, b: Tensor, guard: bool = True) -> Tensor:
    """``box_iou`` of broadcastable boxes.

    ``guard``: AlexeyAB returns 0 when the intersection or the union is 0; pjreddie divides
    (``box_intersection(a, b)/box_union(a, b)``, NaN for two empty boxes).
    """
    inter = box_intersection(a, b)
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    iou = inter / union
    if guard:
        iou = torch.where((inter == 0) | (union == 0), torch.zeros_like(iou), iou)
    return iou


def _enclosing(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """``box_c``: width and height of the smallest box around both."""
    ax, ay, aw, ah = _unbind(a)
    bx, by, bw, bh = _unbind(b)
    top = torch.minimum(ay - ah / 2, by - bh / 2)
    bot = torch.maximum(ay + ah / 2, by + bh / 2)
    left = torch.minimum(ax - aw / 2, bx - bw / 2)
    right = torch.maximum(ax + aw / 2, bx + bw / 2)
    return right - left, bot - top


def box_giou(a: Tensor, b: Tensor) -> Tensor:
    """``box_giou``: ``iou - (c - u)/c`` (``iou`` when ``c == 0``)."""
    w, h = _enclosing(a, b)
    c = w * h
    iou = box_iou(a, b)
    inter = box_intersection(a, b)
    u = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    return torch.where(c == 0, iou, iou - (c - u) / c)


def _centre_distance(a: Tensor, b: Tensor) -> Tensor:
    dx, dy = a[..., 0] - b[..., 0], a[..., 1] - b[..., 1]
    return dx * dx + dy * dy


def box_diou(a: Tensor, b: Tensor) -> Tensor:
    """``box_diou``: ``iou - (d/c)^0.6`` (``pow`` in double; ``iou`` when ``c == 0``)."""
    w, h = _enclosing(a, b)
    c = w * w + h * h
    iou = box_iou(a, b)
    term = torch.pow((_centre_distance(a, b) / c).double(), 0.6).to(_F32)
    return torch.where(c == 0, iou, iou - term)


def _aspect_terms(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """``atan(w_b/h_b) - atan(w_a/h_a)`` in double, and ``ar_loss`` (float)."""
    diff = torch.atan((b[..., 2] / b[..., 3]).double()) - torch.atan((a[..., 2] / a[..., 3]).double())
    return diff, (4 / _PI2 * diff * diff).to(_F32)


def _ciou_alpha(iou: Tensor, ar_loss: Tensor) -> Tensor:
    """``ar_loss / (1 - iou + ar_loss + 0.000001)``: float sum, then the double ``+1e-6`` and division."""
    return (ar_loss.double() / ((1 - iou + ar_loss).double() + 0.000001)).to(_F32)


def box_ciou(a: Tensor, b: Tensor) -> Tensor:
    """``box_ciou``: ``iou - (d/c + alpha·v)`` (``iou`` when ``c == 0``)."""
    w, h = _enclosing(a, b)
    c = w * w + h * h
    iou = box_iou(a, b)
    d = _centre_distance(a, b) / c
    _, ar_loss = _aspect_terms(a, b)
    alpha = _ciou_alpha(iou, ar_loss)
    return torch.where(c == 0, iou, iou - (d + alpha * ar_loss))


def box_iou_kind(a: Tensor, b: Tensor, kind: str) -> Tensor:
    """``box_iou_kind``: IoU, GIoU, DIoU or CIoU (anything else: IoU)."""
    if kind == "giou":
        return box_giou(a, b)
    if kind == "diou":
        return box_diou(a, b)
    if kind == "ciou":
        return box_ciou(a, b)
    return box_iou(a, b)


def _f(v: float | bool | Tensor, like: Tensor) -> Tensor:
    return torch.as_tensor(v, dtype=_F32).expand_as(like) if not isinstance(v, Tensor) else v.to(_F32)


def dx_box_iou(pred: Tensor, truth: Tensor, kind: str) -> Tensor:
    """``dx_box_iou``: Darknet's ``(dx, dy, dw, dh)`` for ``(K, 4)`` boxes, literally.

    The struct fields ``dt, db, dl, dr`` it returns already hold ``dx, dy, dw, dh`` (the comment
    there: "in yolo_layer.c, dt, db, dl, dr are already dx, dy, dw, dh").
    """
    px, py, pw, ph = _unbind(pred)
    tx, ty, tw, th = _unbind(truth)
    zero = torch.zeros_like(px)
    top, bot, left, right = py - ph / 2, py + ph / 2, px - pw / 2, px + pw / 2  # to_tblr
    pred_t, pred_b = torch.minimum(top, bot), torch.maximum(top, bot)
    pred_l, pred_r = torch.minimum(left, right), torch.maximum(left, right)
    t_top, t_bot, t_left, t_right = ty - th / 2, ty + th / 2, tx - tw / 2, tx + tw / 2
    X = (pred_b - pred_t) * (pred_r - pred_l)
    Xhat = (t_bot - t_top) * (t_right - t_left)
    Ih = torch.minimum(pred_b, t_bot) - torch.maximum(pred_t, t_top)
    Iw = torch.minimum(pred_r, t_right) - torch.maximum(pred_l, t_left)
    I = Iw * Ih
    U = X + Xhat - I
    S = (px - tx) * (px - tx) + (py - ty) * (py - ty)
    giou_Cw = torch.maximum(pred_r, t_right) - torch.minimum(pred_l, t_left)
    giou_Ch = torch.maximum(pred_b, t_bot) - torch.minimum(pred_t, t_top)
    giou_C = giou_Cw * giou_Ch
    dX = {"t": -1 * (pred_r - pred_l), "b": pred_r - pred_l, "l": -1 * (pred_b - pred_t), "r": pred_b - pred_t}
    dI = {
        "t": torch.where(pred_t > t_top, -1 * Iw, zero),
        "b": torch.where(pred_b < t_bot, Iw, zero),
        "l": torch.where(pred_l > t_left, -1 * Ih, zero),
        "r": torch.where(pred_r < t_right, Ih, zero),
    }
    dU = {k: dX[k] - dI[k] for k in "tblr"}
    dC = {
        "t": torch.where(pred_t < t_top, -1 * giou_Cw, zero),
        "b": torch.where(pred_b > t_bot, giou_Cw, zero),
        "l": torch.where(pred_l < t_left, -1 * giou_Ch, zero),
        "r": torch.where(pred_r > t_right, giou_Ch, zero),
    }
    p = {k: torch.where(U > 0, ((U * dI[k]) - (I * dU[k])) / (U * U), zero) for k in "tblr"}
    # "apply grad from prediction min/max for correct corner selection" (sequential in C)
    tb, lr = top < bot, left < right
    p["t"] = torch.where(tb, p["t"], p["b"])
    p["b"] = torch.where(tb, p["b"], p["t"])
    p["l"] = torch.where(lr, p["l"], p["r"])
    p["r"] = torch.where(lr, p["r"], p["l"])
    apart = (Iw <= 0) | (Ih <= 0)
    if kind == "giou":
        c_term = {k: ((giou_C * dU[k]) - (U * dC[k])) / (giou_C * giou_C) for k in "tblr"}
        for k in "tblr":
            p[k] = torch.where(giou_C > 0, p[k] + c_term[k], p[k])
            p[k] = torch.where(apart, c_term[k], p[k])
    Cw, Ch = _enclosing(pred, truth)
    C = Cw * Cw + Ch * Ch
    one = torch.ones_like(px)
    dCt_dy = torch.where(pred_t < t_top, one, zero)
    dCt_dh = torch.where(pred_t < t_top, -0.5 * one, zero)
    dCb_dy = torch.where(pred_b > t_bot, one, zero)
    dCb_dh = torch.where(pred_b > t_bot, 0.5 * one, zero)
    dCl_dx = torch.where(pred_l < t_left, one, zero)
    dCl_dw = torch.where(pred_l < t_left, -0.5 * one, zero)
    dCr_dx = torch.where(pred_r > t_right, one, zero)
    dCr_dw = torch.where(pred_r > t_right, 0.5 * one, zero)
    dCw_dx, dCw_dy, dCw_dw, dCw_dh = dCr_dx - dCl_dx, zero - zero, dCr_dw - dCl_dw, zero - zero
    dCh_dx, dCh_dy, dCh_dw, dCh_dh = zero - zero, dCb_dy - dCt_dy, zero - zero, dCb_dh - dCt_dh
    p_dx = p["l"] + p["r"]
    p_dy = p["t"] + p["b"]
    p_dw = p["r"] - p["l"]  # "For dw and dh, we do not divided by 2."
    p_dh = p["b"] - p["t"]
    if kind in ("diou", "ciou"):
        CC = C * C
        ex = (2 * (tx - px) * C - (2 * Cw * dCw_dx + 2 * Ch * dCh_dx) * S) / CC
        ey = (2 * (ty - py) * C - (2 * Cw * dCw_dy + 2 * Ch * dCh_dy) * S) / CC
        ew = (2 * Cw * dCw_dw + 2 * Ch * dCh_dw) * S / CC
        eh = (2 * Cw * dCw_dh + 2 * Ch * dCh_dh) * S / CC
        if kind == "ciou":
            diff, ar_loss = _aspect_terms(pred, truth)
            alpha = _ciou_alpha(I / U, ar_loss)
            ar_dw = (8 / _PI2 * diff * ph.double()).to(_F32)
            ar_dh = (-8 / _PI2 * diff * pw.double()).to(_F32)
            ew = ew + alpha * ar_dw
            eh = eh + alpha * ar_dh
        pos = C > 0
        p_dx = torch.where(pos, p_dx + ex, p_dx)
        p_dy = torch.where(pos, p_dy + ey, p_dy)
        p_dw = torch.where(pos, p_dw + ew, p_dw)
        p_dh = torch.where(pos, p_dh + eh, p_dh)
        p_dx, p_dy = torch.where(apart, ex, p_dx), torch.where(apart, ey, p_dy)
        p_dw, p_dh = torch.where(apart, ew, p_dw), torch.where(apart, eh, p_dh)
    return torch.stack([p_dx, p_dy, p_dw, p_dh], dim=-1)


def yolo_box_delta_iou(
    pred: Tensor, truth: Tensor, raw_wh: Tensor, kind: str, normalizer: Tensor, max_delta: float, new_coords: bool
) -> Tensor:
    """The iou branch of ``delta_yolo_box``: the ``(K, 4)`` amounts added to ``l.delta``.

    ``dx_box_iou`` (with ``pred.w/h == 0`` replaced by 1), ``dw, dh *= exp(z_w), exp(z_h)``
    unless ``new_coords``, ``*= normalizer`` (``iou_normalizer·classes_multiplier``), NaN/inf to
    0, then clipped to ``±max_delta`` when it is finite. No logistic derivative, no ``1/lw``, no
    ``2 - w·h``.
    """
    pred = pred.clone()
    pred[:, 2] = torch.where(pred[:, 2] == 0, torch.ones_like(pred[:, 2]), pred[:, 2])
    pred[:, 3] = torch.where(pred[:, 3] == 0, torch.ones_like(pred[:, 3]), pred[:, 3])
    d = dx_box_iou(pred, truth, kind)
    if not new_coords:
        d = torch.cat([d[:, :2], (d[:, 2:].double() * torch.exp(raw_wh.double())).to(_F32)], dim=1)
    d = d * normalizer.to(_F32)[:, None]
    d = torch.where(torch.isfinite(d), d, torch.zeros_like(d))
    if math.isfinite(max_delta) and max_delta < torch.finfo(_F32).max:
        d = d.clamp(-float(max_delta), float(max_delta))
    return d


class DarknetIouLoss(torch.autograd.Function):
    """IoU-type box loss whose gradient is minus Darknet's box delta.

    ``forward(zb, boxfn, truth, kind, weight, post, max_delta, new_coords)``:

    - ``zb`` ``(K, 4)``: the head inputs ``z_x, z_y, z_w, z_h`` of the K assignments;
    - ``boxfn``: maps ``zb`` (detached) to the decoded predicted boxes ``(K, 4)``;
    - ``weight`` ``(K,)``: ``iou_normalizer·classes_multiplier``; ``post`` ``(K,)``: the
      ``averages_yolo_deltas`` factor (1 or ``1/classes_in_one_box``).

    Returns ``(loss, delta)``: ``loss`` ``(K,)`` is ``post·weight·(1 - IoU_kind)`` (giou: ``1 -
    GIoU``; diou/ciou: ``1 - DIoU``/``1 - CIoU`` as ``box_diou``/``box_ciou`` compute them),
    ``delta`` ``(K, 4)`` the amounts ``delta_yolo_box`` adds (before the averaging), not
    differentiable. The backward ignores the loss formula and returns ``-grad·post·delta``.
    """

    @staticmethod
    def forward(ctx, zb, boxfn, truth, kind, weight, post, max_delta, new_coords):  # type: ignore[override]
        with torch.no_grad():  # Darknet's float32 arithmetic, on the CPU
            cpu = torch.device("cpu")
            z = zb.detach().to(cpu, _F32)
            truth, weight, post = truth.to(cpu, _F32), weight.to(cpu, _F32), post.to(cpu, _F32)
            pred = boxfn(z)
            delta = yolo_box_delta_iou(pred, truth, z[:, 2:4], kind, weight, max_delta, new_coords)
            loss = (post * weight * (1 - box_iou_kind(pred, truth, kind))).to(zb.device, zb.dtype)
            scaled = (post[:, None] * delta).to(zb.device, zb.dtype)
            delta = delta.to(zb.device)
        ctx.save_for_backward(scaled)
        ctx.mark_non_differentiable(delta)
        return loss, delta

    @staticmethod
    def backward(ctx, grad_loss, grad_delta):  # type: ignore[override]
        (scaled,) = ctx.saved_tensors
        return -grad_loss[:, None] * scaled, None, None, None, None, None, None, None


# ---- the textbook CIoU (a true, differentiable function), for the published losses -------------
def ciou(pred: Tensor, target: Tensor, eps: float = 1e-7, alpha: Tensor | None = None) -> Tensor:
    """Complete IoU of ``(N, 4)`` centre-size boxes as YOLOv5's ``bbox_iou(xywh=True, CIoU=True)`` computes it.

    ``IoU − ρ²/c² − α·v`` with ``v = 4/π²·(atan(w_t/h_t) − atan(w_p/h_p))²``; ``eps`` is added to the
    union and to ``c²``; ``α = v/(v − IoU + 1 + eps)`` carries no gradient (pass ``alpha`` to fix it).
    """
    px, py, pw, ph = pred.unbind(-1)
    tx, ty, tw, th = target.unbind(-1)
    p_l, p_r, p_t, p_b = px - pw / 2, px + pw / 2, py - ph / 2, py + ph / 2
    t_l, t_r, t_t, t_b = tx - tw / 2, tx + tw / 2, ty - th / 2, ty + th / 2
    overlap_w = (torch.minimum(p_r, t_r) - torch.maximum(p_l, t_l)).clamp(0)
    overlap_h = (torch.minimum(p_b, t_b) - torch.maximum(p_t, t_t)).clamp(0)
    inter = overlap_w * overlap_h
    iou = inter / (pw * ph + tw * th - inter + eps)
    hull_w = torch.maximum(p_r, t_r) - torch.minimum(p_l, t_l)
    hull_h = torch.maximum(p_b, t_b) - torch.minimum(p_t, t_t)
    diag2 = hull_w**2 + hull_h**2 + eps
    dist2 = ((t_l + t_r - p_l - p_r) ** 2 + (t_t + t_b - p_t - p_b) ** 2) / 4
    v = (4 / math.pi**2) * (torch.atan(tw / th) - torch.atan(pw / ph)).pow(2)
    if alpha is None:
        with torch.no_grad():
            alpha = v / (v - iou + (1 + eps))
    return iou - (dist2 / diag2 + v * alpha)


def ciou_alpha(pred: Tensor, target: Tensor, eps: float = 1e-7) -> Tensor:
    """The ``α`` that :func:`ciou` computes (without gradient) for these boxes."""
    with torch.no_grad():
        px, py, pw, ph = pred.unbind(-1)
        tx, ty, tw, th = target.unbind(-1)
        inter = (torch.minimum(px + pw / 2, tx + tw / 2) - torch.maximum(px - pw / 2, tx - tw / 2)).clamp(0) * (
            torch.minimum(py + ph / 2, ty + th / 2) - torch.maximum(py - ph / 2, ty - th / 2)
        ).clamp(0)
        iou = inter / (pw * ph + tw * th - inter + eps)
        v = (4 / math.pi**2) * (torch.atan(tw / th) - torch.atan(pw / ph)).pow(2)
        return v / (v - iou + (1 + eps))
