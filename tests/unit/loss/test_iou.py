"""IoU kinds and AlexeyAB's dx_box_iou (src/box.c) against plain-Python transcriptions.

dx_box_iou is Darknet's hand-written "gradient", checked against the formulas of
darknet-reference.md §4.2.5, not against autograd: where it is the true derivative (the IoU part
in x and y) and where it is not (w, h doubled; DIoU's enclosure term with the opposite sign) is
shown explicitly.
"""
from __future__ import annotations

import math

import pytest
import torch

from darknetpy.loss.iou import (
    DarknetIouLoss,
    box_ciou,
    box_diou,
    box_giou,
    box_iou,
    box_iou_kind,
    dx_box_iou,
    yolo_box_delta_iou,
)

pytestmark = pytest.mark.unit

PAIRS = {
    "overlap": ((0.50, 0.50, 0.30, 0.42), (0.55, 0.45, 0.35, 0.30)),
    "pred_inside": ((0.50, 0.50, 0.10, 0.12), (0.52, 0.49, 0.40, 0.45)),
    "truth_inside": ((0.40, 0.60, 0.50, 0.50), (0.42, 0.58, 0.10, 0.20)),
    "apart": ((0.20, 0.20, 0.10, 0.10), (0.70, 0.75, 0.20, 0.15)),
}


def t(*v):
    return torch.tensor(v, dtype=torch.float32)


def ref_inter_union(a, b):
    def ov(x1, w1, x2, w2):
        return min(x1 + w1 / 2, x2 + w2 / 2) - max(x1 - w1 / 2, x2 - w2 / 2)

    w, h = ov(a[0], a[2], b[0], b[2]), ov(a[1], a[3], b[1], b[3])
    i = 0 if w < 0 or h < 0 else w * h
    return i, a[2] * a[3] + b[2] * b[3] - i


def ref_iou(a, b):
    i, u = ref_inter_union(a, b)
    return 0.0 if i == 0 or u == 0 else i / u


def ref_enclosure(a, b):
    cw = max(a[0] + a[2] / 2, b[0] + b[2] / 2) - min(a[0] - a[2] / 2, b[0] - b[2] / 2)
    ch = max(a[1] + a[3] / 2, b[1] + b[3] / 2) - min(a[1] - a[3] / 2, b[1] - b[3] / 2)
    return cw, ch


def ref_dx_box_iou(p, g, kind):
    """§4.2.5 in plain Python: IoU partials by edge, then x = ∂l + ∂r, w = ∂r − ∂l (not halved),
    GIoU C terms, DIoU/CIoU distance term with power 1 (and its enclosure sign), CIoU aspect term."""
    pt, pb, pl, pr = p[1] - p[3] / 2, p[1] + p[3] / 2, p[0] - p[2] / 2, p[0] + p[2] / 2
    gt, gb, gl, gr = g[1] - g[3] / 2, g[1] + g[3] / 2, g[0] - g[2] / 2, g[0] + g[2] / 2
    X = (pb - pt) * (pr - pl)
    Xh = (gb - gt) * (gr - gl)
    Ih, Iw = min(pb, gb) - max(pt, gt), min(pr, gr) - max(pl, gl)
    I, U = Iw * Ih, X + Xh - Iw * Ih
    dX = {"t": -(pr - pl), "b": pr - pl, "l": -(pb - pt), "r": pb - pt}
    dI = {"t": -Iw if pt > gt else 0, "b": Iw if pb < gb else 0, "l": -Ih if pl > gl else 0, "r": Ih if pr < gr else 0}
    dU = {k: dX[k] - dI[k] for k in dX}
    d = {k: (U * dI[k] - I * dU[k]) / (U * U) if U > 0 else 0 for k in dX}
    apart = Iw <= 0 or Ih <= 0
    if kind == "giou":
        cw, ch = ref_enclosure(p, g)
        C = cw * ch
        dC = {"t": -cw if pt < gt else 0, "b": cw if pb > gb else 0, "l": -ch if pl < gl else 0, "r": ch if pr > gr else 0}
        for k in d:
            term = (C * dU[k] - U * dC[k]) / (C * C)
            d[k] = term if apart else d[k] + term
    gx, gy, gw, gh = d["l"] + d["r"], d["t"] + d["b"], d["r"] - d["l"], d["b"] - d["t"]
    if kind in ("diou", "ciou"):
        cw, ch = ref_enclosure(p, g)
        C = cw * cw + ch * ch
        S = (p[0] - g[0]) ** 2 + (p[1] - g[1]) ** 2
        dcw_dx = (1 if pr > gr else 0) - (1 if pl < gl else 0)
        dch_dy = (1 if pb > gb else 0) - (1 if pt < gt else 0)
        dcw_dw = (0.5 if pr > gr else 0) - (-0.5 if pl < gl else 0)
        dch_dh = (0.5 if pb > gb else 0) - (-0.5 if pt < gt else 0)
        ex = (2 * (g[0] - p[0]) * C - 2 * cw * dcw_dx * S) / C**2
        ey = (2 * (g[1] - p[1]) * C - 2 * ch * dch_dy * S) / C**2
        ew = 2 * cw * dcw_dw * S / C**2
        eh = 2 * ch * dch_dh * S / C**2
        if kind == "ciou":
            diff = math.atan(g[2] / g[3]) - math.atan(p[2] / p[3])
            v = 4 / math.pi**2 * diff * diff
            alpha = v / (1 - I / U + v + 1e-6)
            ew += alpha * 8 / math.pi**2 * diff * p[3]
            eh += alpha * -8 / math.pi**2 * diff * p[2]
        if apart:
            gx, gy, gw, gh = ex, ey, ew, eh
        else:
            gx, gy, gw, gh = gx + ex, gy + ey, gw + ew, gh + eh
    return [gx, gy, gw, gh]


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_iou_kinds_match_plain_formulas(pair):
    a, b = PAIRS[pair]
    iou = ref_iou(a, b)
    cw, ch = ref_enclosure(a, b)
    _, u = ref_inter_union(a, b)
    d = (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2
    c2 = cw * cw + ch * ch
    diff = math.atan(b[2] / b[3]) - math.atan(a[2] / a[3])
    v = 4 / math.pi**2 * diff * diff
    want = {
        "iou": iou,
        "giou": iou - (cw * ch - u) / (cw * ch),
        "diou": iou - (d / c2) ** 0.6,  # box_diou: power 0.6 (the delta uses power 1)
        "ciou": iou - (d / c2 + v / (1 - iou + v + 1e-6) * v),
    }
    fns = {"iou": box_iou, "giou": box_giou, "diou": box_diou, "ciou": box_ciou}
    for kind, fn in fns.items():
        got = float(fn(t(*a), t(*b)))
        assert got == pytest.approx(want[kind], abs=2e-6), f"{kind} on {pair}"
        assert float(box_iou_kind(t(*a), t(*b), kind)) == got


def test_box_iou_guards():
    z = t(0.5, 0.5, 0, 0)
    assert float(box_iou(z, z)) == 0.0  # AlexeyAB: I == 0 or U == 0 gives 0
    assert math.isnan(float(box_iou(z, z, guard=False)))  # pjreddie divides


@pytest.mark.parametrize("kind", ["iou", "giou", "diou", "ciou"])
@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_dx_box_iou_is_the_reference_formula(kind, pair):
    p, g = PAIRS[pair]
    got = dx_box_iou(t(*p)[None], t(*g)[None], kind)[0].tolist()
    want = ref_dx_box_iou(p, g, kind)
    for name, a, b in zip("xywh", got, want):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-5), f"d{name} of {kind} on {pair}: {a} vs {b}"


def _true_grad(fn, p, g):
    x = torch.tensor(p, dtype=torch.float64, requires_grad=True)
    fn(x, torch.tensor(g, dtype=torch.float64)).backward()
    return x.grad.tolist()


def test_dx_box_iou_iou_part_x_true_w_doubled():
    """IoU kind: x, y are the true derivative of IoU; w, h twice it ("we do not divide by 2")."""
    for pair in ("overlap", "pred_inside", "truth_inside"):
        p, g = PAIRS[pair]
        true = _true_grad(lambda a, b: box_iou(a, b), p, g)
        got = dx_box_iou(t(*p)[None], t(*g)[None], "iou")[0].tolist()
        assert got[:2] == pytest.approx(true[:2], rel=1e-4, abs=1e-5), pair
        assert got[2:] == pytest.approx([2 * true[2], 2 * true[3]], rel=1e-4, abs=1e-5), pair
    assert any(abs(v) > 0.1 for v in _true_grad(lambda a, b: box_iou(a, b), *PAIRS["pred_inside"])[2:])


def test_dx_box_iou_diou_enclosure_sign_is_not_the_derivative():
    """DIoU's x term is ∂(−S/C)/∂x only while the enclosure does not move with x; otherwise
    Darknet's −S·∂C has the opposite sign of the true +S·∂C (§4.2.5)."""
    def penalty(a, b):
        cw = torch.maximum(a[0] + a[2] / 2, b[0] + b[2] / 2) - torch.minimum(a[0] - a[2] / 2, b[0] - b[2] / 2)
        ch = torch.maximum(a[1] + a[3] / 2, b[1] + b[3] / 2) - torch.minimum(a[1] - a[3] / 2, b[1] - b[3] / 2)
        return -((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) / (cw * cw + ch * ch)

    def darknet_extra(p, g):
        return dx_box_iou(t(*p)[None], t(*g)[None], "diou")[0, 0].item() - dx_box_iou(t(*p)[None], t(*g)[None], "iou")[0, 0].item()

    p, g = PAIRS["pred_inside"]  # enclosure = truth: fixed
    assert darknet_extra(p, g) == pytest.approx(_true_grad(penalty, p, g)[0], rel=1e-3)
    p, g = PAIRS["overlap"]  # the enclosure's left edge is the pred's: ∂Cw/∂x = -1
    cw, ch = ref_enclosure(p, g)
    dcw = (1 if p[0] + p[2] / 2 > g[0] + g[2] / 2 else 0) - (1 if p[0] - p[2] / 2 < g[0] - g[2] / 2 else 0)
    assert dcw == -1
    c, s = cw * cw + ch * ch, (p[0] - g[0]) ** 2 + (p[1] - g[1]) ** 2
    true = _true_grad(penalty, p, g)[0]
    assert true == pytest.approx((2 * (g[0] - p[0]) * c + 2 * cw * dcw * s) / c**2, rel=1e-6)
    assert darknet_extra(p, g) == pytest.approx((2 * (g[0] - p[0]) * c - 2 * cw * dcw * s) / c**2, rel=1e-3)
    assert darknet_extra(p, g) != pytest.approx(true, rel=1e-2)


def test_box_delta_scaling_clipping_and_nan():
    p, g = PAIRS["overlap"]
    pred, truth = t(*p)[None], t(*g)[None]
    raw_wh = t(0.3, -0.2)[None]
    base = dx_box_iou(pred, truth, "ciou")[0].tolist()
    d = yolo_box_delta_iou(pred, truth, raw_wh, "ciou", t(0.07), float("inf"), new_coords=False)[0]
    want = [0.07 * base[0], 0.07 * base[1], 0.07 * base[2] * math.exp(0.3), 0.07 * base[3] * math.exp(-0.2)]
    assert d.tolist() == pytest.approx(want, rel=1e-5)
    nc = yolo_box_delta_iou(pred, truth, raw_wh, "ciou", t(0.07), float("inf"), new_coords=True)[0]
    assert nc.tolist() == pytest.approx([0.07 * v for v in base], rel=1e-5)  # no exp factor with new_coords
    clipped = yolo_box_delta_iou(pred, truth, raw_wh, "ciou", t(100.0), 0.5, new_coords=False)[0]
    assert clipped.abs().max() <= 0.5 and (clipped.abs() == 0.5).any()
    bad = yolo_box_delta_iou(pred, truth, t(float("inf"), 0.0)[None], "ciou", t(1.0), float("inf"), new_coords=False)[0]
    assert bad[2] == 0 and torch.isfinite(bad).all()  # fix_nan_inf
    zero_w = yolo_box_delta_iou(t(0.5, 0.5, 0.0, 0.2)[None], truth, raw_wh, "giou", t(1.0), float("inf"), False)
    assert torch.isfinite(zero_w).all()  # pred.w == 0 is replaced by 1 before dx_box_iou


def test_autograd_function_backward_is_minus_post_times_delta():
    _, g = PAIRS["overlap"]
    zb = torch.tensor([[0.1, -0.3, 0.2, -0.1]], requires_grad=True)

    def boxfn(z):
        return torch.stack([torch.sigmoid(z[:, 0]), torch.sigmoid(z[:, 1]), 0.3 * torch.exp(z[:, 2]), 0.4 * torch.exp(z[:, 3])], 1)

    truth = t(*g)[None]
    loss, delta = DarknetIouLoss.apply(zb, boxfn, truth, "ciou", t(0.07)[None], t(0.5)[None], float("inf"), False)
    loss.sum().backward()
    assert torch.allclose(-zb.grad, 0.5 * delta, atol=1e-7)
    pred = boxfn(zb.detach())
    assert float(loss.detach()) == pytest.approx(0.5 * 0.07 * (1 - float(box_ciou(pred, truth))), rel=1e-5)
    assert not delta.requires_grad
