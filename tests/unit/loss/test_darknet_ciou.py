"""darknet-ciou: pjreddie's assignment, CIoU box terms (checked by hand and by gradcheck)."""
from __future__ import annotations

import math

import pytest
import torch

from darknetpy.loss import NetworkLoss
from darknetpy.loss import darknet_ciou as dc
from darknetpy.loss.iou import ciou, ciou_alpha

from . import NET, yolo_model

pytestmark = pytest.mark.unit


def textbook_ciou(p, t):
    """CIoU of two (x, y, w, h) boxes in plain Python (Zheng et al. 2020)."""
    pl, pr, pt, pb = p[0] - p[2] / 2, p[0] + p[2] / 2, p[1] - p[3] / 2, p[1] + p[3] / 2
    tl, tr, tt, tb = t[0] - t[2] / 2, t[0] + t[2] / 2, t[1] - t[3] / 2, t[1] + t[3] / 2
    inter = max(0.0, min(pr, tr) - max(pl, tl)) * max(0.0, min(pb, tb) - max(pt, tt))
    iou = inter / (p[2] * p[3] + t[2] * t[3] - inter + 1e-7)
    c2 = (max(pr, tr) - min(pl, tl)) ** 2 + (max(pb, tb) - min(pt, tt)) ** 2 + 1e-7
    d2 = (p[0] - t[0]) ** 2 + (p[1] - t[1]) ** 2
    v = 4 / math.pi**2 * (math.atan(t[2] / t[3]) - math.atan(p[2] / p[3])) ** 2
    alpha = v / (v - iou + 1 + 1e-7)
    return iou - d2 / c2 - alpha * v


def test_only_the_box_terms_differ_from_pjreddie_and_they_are_k_times_one_minus_ciou():
    model = yolo_model("pjreddie", mask="0")  # one anchor 16x16, 2 classes, 2x2 grid
    g = torch.Generator().manual_seed(0)
    z = torch.randn(1, 7, 2, 2, generator=g, dtype=torch.float64).float()
    truth = [[[1, 0.3, 0.7, 0.2, 0.25]]]  # cell (i=0, j=1); best anchor 0 (16x16 is closest)
    pj = NetworkLoss(model, "darknet")([z.clone().requires_grad_()], truth)
    ours = NetworkLoss(model, "darknet-ciou")([z.clone().requires_grad_()], truth)
    zx, zy, zw, zh = (float(z[0, e, 1, 0]) for e in range(4))
    k = 2 - 0.2 * 0.25
    tx, ty, tw, th = 0.3 * 2 - 0, 0.7 * 2 - 1, math.log(0.2 * NET / 16), math.log(0.25 * NET / 16)
    sig = lambda v: 1 / (1 + math.exp(-v))
    bce = lambda v, t: -(t * math.log(sig(v)) + (1 - t) * math.log(1 - sig(v)))
    mse_terms = k * (bce(zx, tx) + bce(zy, ty)) + 0.5 * k * ((zw - tw) ** 2 + (zh - th) ** 2)
    pred = ((0 + sig(zx)) / 2, (1 + sig(zy)) / 2, math.exp(zw) * 16 / NET, math.exp(zh) * 16 / NET)
    ciou_term = k * (1 - textbook_ciou(pred, (0.3, 0.7, 0.2, 0.25)))
    assert float(ours.loss.detach()) - float(pj.loss.detach()) == pytest.approx(ciou_term - mse_terms, rel=1e-5, abs=1e-5)
    # objectness and classes are pjreddie's: their deltas agree everywhere
    d_ours, d_pj = ours.heads[0].delta.view(7, 2, 2), pj.heads[0].delta.view(7, 2, 2)
    torch.testing.assert_close(d_ours[4:], d_pj[4:], rtol=1e-5, atol=1e-6)
    assert ours.heads[0].cost == pytest.approx(float((ours.heads[0].delta ** 2).sum()), rel=1e-6)


def test_gradcheck_in_float64_with_the_targets_and_alpha_fixed(monkeypatch):
    model = yolo_model("alexeyab", mask="0,1", extra="scale_x_y=1.1\n")
    head = NetworkLoss(model, "darknet-ciou").heads[0]
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 14, 2, 2, generator=g, dtype=torch.float64)
    truths = [torch.tensor([[0, 0.3, 0.7, 0.3, 0.4], [1, 0.8, 0.2, 0.6, 0.5]]), torch.tensor([[1, 0.55, 0.45, 0.5, 0.7]])]
    head(z.float(), truths)
    t = head.last_targets
    frozen = {}

    def ciou_fixed(pred, truth, eps=1e-7, alpha=None):
        key = pred.shape[0]
        if key not in frozen:
            frozen[key] = ciou_alpha(pred.detach(), truth.detach(), eps)
        return ciou(pred, truth, eps, alpha=frozen[key])

    monkeypatch.setattr(dc, "ciou", ciou_fixed)
    z64 = z.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: head.loss_from_targets(v, t), (z64,), eps=1e-6, atol=1e-5)


def test_minus_the_gradient_is_the_returned_delta():
    model = yolo_model("pjreddie")
    z = torch.randn(1, 14, 2, 2, generator=torch.Generator().manual_seed(3)).requires_grad_(True)
    result = NetworkLoss(model, "darknet-ciou")([z], [[[0, 0.4, 0.4, 0.5, 0.5]]])
    result.loss.backward()
    torch.testing.assert_close(-z.grad, result.heads[0].delta, rtol=1e-6, atol=1e-7)
