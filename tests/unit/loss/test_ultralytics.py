"""YOLOv5 loss on [yolo] heads (darknetpy.loss.ultralytics): a hand-worked case, target assignment
(anchor ratio, neighbour cells), per-scale balance, logits vs probabilities, gradcheck."""
from __future__ import annotations

import math
import warnings

import pytest
import torch

from darknetpy import Darknet, parse_cfg_text
from darknetpy.loss import NetworkLoss
from darknetpy.loss.iou import ciou_alpha
from darknetpy.loss.ultralytics import UltralyticsLoss

YOLO = "[yolo]\nmask={mask}\nanchors={anchors}\nclasses={classes}\nnum={num}\n{extra}\n"


def build(text: str, flavor: str = "alexeyab") -> Darknet:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Darknet(parse_cfg_text(text, "t.cfg"), flavor=flavor)


def one_head(extra: str = "new_coords=1\nscale_x_y=2", classes: int = 2, flavor: str = "alexeyab") -> Darknet:
    """64x64 input, a 2x2 grid (stride 32), one anchor of 32x32 pixels (1x1 cell)."""
    head = YOLO.format(mask="0", anchors="32,32", classes=classes, num=1, extra=extra)
    return build(f"[net]\nwidth=64\nheight=64\nchannels={5 + classes}\n[maxpool]\nsize=32\nstride=32\n{head}", flavor)


def losses(m: Darknet) -> list[UltralyticsLoss]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return NetworkLoss(m, "ultralytics").heads


def ciou(p, t, eps=1e-7) -> float:
    """CIoU of two centre-size boxes, by hand (eps on the union and on c²; alpha = v/(v − iou + 1 + eps))."""
    pl, pr, pt, pb = p[0] - p[2] / 2, p[0] + p[2] / 2, p[1] - p[3] / 2, p[1] + p[3] / 2
    tl, tr, tt, tb = t[0] - t[2] / 2, t[0] + t[2] / 2, t[1] - t[3] / 2, t[1] + t[3] / 2
    inter = max(0.0, min(pr, tr) - max(pl, tl)) * max(0.0, min(pb, tb) - max(pt, tt))
    iou = inter / (p[2] * p[3] + t[2] * t[3] - inter + eps)
    c2 = (max(pr, tr) - min(pl, tl)) ** 2 + (max(pb, tb) - min(pt, tt)) ** 2 + eps
    rho2 = (p[0] - t[0]) ** 2 + (p[1] - t[1]) ** 2
    v = 4 / math.pi**2 * (math.atan(t[2] / t[3]) - math.atan(p[2] / p[3])) ** 2
    alpha = v / (v - iou + 1 + eps)
    return iou - (rho2 / c2 + v * alpha)


TRUTH = [1, 0.3, 0.6, 0.4, 0.5]  # grid xy (0.6, 1.2), wh (0.8, 1.0)


def hand_case_z() -> torch.Tensor:
    """new_coords=1: z holds probabilities. Box entries 0.5, objectness 0.3, classes 0.5."""
    z = torch.full((1, 7, 2, 2), 0.5, dtype=torch.float64)
    z[0, 4] = 0.3
    return z


def test_targets_and_neighbour_cells():
    (loss,) = losses(one_head())
    tcls, tbox, (b, a, gj, gi), anch = loss.build_targets([torch.tensor([TRUTH])], 1)
    # the centre cell (row 1, col 0), its upper neighbour (y%1 = .2 < .5) and its right one (2 − x = 1.4)
    assert list(zip(gj.tolist(), gi.tolist())) == [(1, 0), (0, 0), (1, 1)]
    torch.testing.assert_close(tbox, torch.tensor([[0.6, 0.2, 0.8, 1.0], [0.6, 1.2, 0.8, 1.0], [-0.4, 0.2, 0.8, 1.0]]))
    assert tcls.tolist() == [1, 1, 1] and b.tolist() == [0, 0, 0] and a.tolist() == [0, 0, 0]
    torch.testing.assert_close(anch, torch.ones(3, 2))
    # a truth 5 times wider than the anchor matches nothing (anchor_t = 4)
    _, tbox, _, _ = loss.build_targets([torch.tensor([[0, 0.5, 0.5, 0.99, 0.1]])], 1)
    assert len(tbox) == 0


def test_hand_worked_case():
    (loss,) = losses(one_head())
    z = hand_case_z().requires_grad_(True)
    r = loss(z, [torch.tensor([TRUTH])])
    pred = (0.5 * 2 - 0.5, 0.5 * 2 - 0.5, (0.5 * 2) ** 2 * 1.0, (0.5 * 2) ** 2 * 1.0)
    tboxes = [(0.6, 0.2, 0.8, 1.0), (0.6, 1.2, 0.8, 1.0), (-0.4, 0.2, 0.8, 1.0)]
    cious = [ciou(pred, t) for t in tboxes]
    lbox = sum(1 - c for c in cious) / 3
    tobj = [max(c, 0.0) for c in cious] + [0.0]  # the fourth cell is no positive

    def bce(p, t):
        return -(t * math.log(p) + (1 - t) * math.log(1 - p))

    lobj = sum(bce(0.3, t) for t in tobj) / 4 * 4.0  # balance 4.0: the only (largest) grid
    lcls = math.log(2)  # targets (0, 1) against probabilities 0.5
    box_gain, obj_gain, cls_gain = 0.05 * 3 / 1, 1.0 * (64 / 640) ** 2 * 3 / 1, 0.5 * 2 / 80 * 3 / 1
    assert loss.gains == pytest.approx((box_gain, obj_gain, cls_gain))
    want = 1 * (box_gain * lbox + obj_gain * lobj + cls_gain * lcls)
    assert float(r.loss.detach()) == pytest.approx(want, rel=1e-6)
    assert r.cost == pytest.approx(want, rel=1e-6)
    assert r.stats["count"] == 3
    assert r.stats["box"] == pytest.approx(box_gain * lbox, rel=1e-6)
    # delta is minus the gradient; at the negative cell (row 0, col 1): d/dz of obj·4·BCE(z, 0)/4
    r.loss.backward()
    torch.testing.assert_close(-z.grad, r.delta, rtol=0, atol=0)
    assert float(r.delta[0, 4, 0, 1]) == pytest.approx(-obj_gain * 4.0 / 4 * (0.3 - 0) / (0.3 * 0.7), rel=1e-6)
    assert r.line.startswith("YOLOv5 loss, layer 1: box ")


def test_logits_and_probabilities_agree():
    """A new_coords=0 head takes logits; the same numbers as probabilities on a new_coords=1 head give
    the same loss, and gradients related by σ′ (what the conv's logistic does)."""
    torch.manual_seed(0)
    logits = torch.randn(2, 7, 2, 2, dtype=torch.float64, requires_grad=True)
    probs = torch.sigmoid(logits.detach()).requires_grad_(True)
    truths = [torch.tensor([TRUTH, [0, 0.8, 0.3, 0.3, 0.3]]), torch.tensor([[1, 0.55, 0.45, 0.6, 0.2]])]
    with pytest.warns(UserWarning, match="YOLOv5 loss decodes"):
        NetworkLoss(one_head(extra=""), "ultralytics")
    (a,) = losses(one_head(extra=""))
    (b,) = losses(one_head())
    ra, rb = a(logits, truths), b(probs, truths)
    assert float(ra.loss.detach()) == pytest.approx(float(rb.loss.detach()), rel=1e-9)
    s = probs.detach()
    torch.testing.assert_close(ra.delta, rb.delta * s * (1 - s), rtol=1e-7, atol=1e-12)
    assert ra.stats["count"] == rb.stats["count"] > 0


def test_balance_by_grid_size():
    """[4.0, 1.0, 0.4] from the largest grid to the smallest, whatever the cfg order (yolov3: small first)."""
    heads = {
        "small": "[maxpool]\nsize=16\nstride=16\n[maxpool]\nsize=2\nstride=2\n[maxpool]\nsize=2\nstride=2\n",
    }
    y = YOLO.format(mask="{m}", anchors="8,8, 16,16, 32,32", classes=2, num=3, extra="new_coords=1\nscale_x_y=2")
    text = (
        "[net]\nwidth=64\nheight=64\nchannels=7\n"
        + heads["small"]
        + y.format(m=2)  # layer 3: 1x1
        + "[route]\nlayers=1\n"
        + y.format(m=1)  # layer 5: 2x2
        + "[route]\nlayers=0\n"
        + y.format(m=0)  # layer 7: 4x4
    )
    ls = losses(build(text))
    assert [(h.layer.out_shape[1], h.balance) for h in ls] == [(1, 0.4), (2, 1.0), (4, 4.0)]
    assert all(h.nl == 3 for h in ls)
    assert ls[0].gains == pytest.approx((0.05, 1.0 * 0.01, 0.5 * 2 / 80))
    two = build("[net]\nwidth=64\nheight=64\nchannels=7\n" + heads["small"] + y.format(m=2) + "[route]\nlayers=0\n" + y.format(m=0))
    assert [h.balance for h in losses(two)] == [1.0, 4.0]


def test_no_positives():
    """A truth that matches no anchor: only the objectness loss (target 0 everywhere)."""
    (loss,) = losses(one_head())
    z = hand_case_z()
    r = loss(z, [torch.tensor([[0, 0.5, 0.5, 0.99, 0.1]])])
    want = 0.03 * 4.0 * -math.log(0.7)
    assert r.stats["count"] == 0 and r.stats["box"] == 0 and r.stats["cls"] == 0
    assert float(r.loss.detach()) == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("extra", ["", "new_coords=1\nscale_x_y=2"])
def test_gradcheck(extra):
    """The loss with the objectness targets and CIoU's alpha held fixed (YOLOv5 computes both without
    gradient) against finite differences, float64."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (loss,) = losses(one_head(extra=extra, classes=3))
    torch.manual_seed(1)
    z = torch.randn(2, 8, 2, 2, dtype=torch.float64)
    if extra:
        z = torch.sigmoid(z)  # probabilities
    truths = [torch.tensor([[1, 0.3, 0.6, 0.4, 0.5], [2, 0.8, 0.3, 0.3, 0.3]]), torch.tensor([[0, 0.55, 0.45, 0.6, 0.2]])]
    targets = loss.build_targets(truths, 2)
    _, info = loss.loss_from_targets(z, targets)
    tobj = info["iou"].detach().clamp(0)
    alpha = ciou_alpha(loss.pred_boxes(z, targets), targets[1].to(z.dtype))
    zz = z.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: loss.loss_from_targets(v, targets, tobj, alpha)[0], (zz,))
