"""[Gaussian_yolo] loss (darknetpy.loss.gaussian_yolo): a hand-worked case, the Darknet gradient,
the "exact" mode, the averaging over classes, extra anchors (iou_thresh) and gradcheck."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from darknetpy import Darknet, parse_cfg_text
from darknetpy.loss import NetworkLoss
from darknetpy.loss.gaussian_yolo import GaussianYoloLoss, classes_multipliers


def model(extra: str = "", classes: int = 1, mask: str = "0", num: int = 1, anchors: str = "1,1", w: int = 2, h: int = 1) -> Darknet:
    n = len(mask.split(","))
    text = (
        f"[net]\nwidth={w}\nheight={h}\nchannels={n * (9 + classes)}\n"
        f"[Gaussian_yolo]\nmask={mask}\nnum={num}\nclasses={classes}\nanchors={anchors}\n{extra}"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Darknet(parse_cfg_text(text, "t.cfg"), flavor="alexeyab")


def head_loss(m: Darknet) -> GaussianYoloLoss:
    (loss,) = NetworkLoss(m, "darknet").heads
    return loss


C = float(np.float32(0.3))  # gaussian_yolo_layer.c: float sigma_const = 0.3


def sig(v: float) -> float:
    return 1 / (1 + math.exp(-v))


# grid 2x1 = network 2x1 (anchors in pixels = cells), one anchor (1, 1), one class; cell 1 raw values:
Z1 = [0.4, -0.5, -0.2, 0.3, 0.1, 0.7, -0.3, -0.1, 0.5, 0.2]  # μx σx μy σy μw σw μh σh obj class
TRUTH = [0, 0.75, 0.5, 0.5, 1.0]  # class 0 in cell (j=0, i=1): t = (0.5, 0.5, log(1), log(1))


def z_case() -> torch.Tensor:
    z = torch.zeros(1, 10, 1, 2, dtype=torch.float64)
    z[0, :, 0, 1] = torch.tensor(Z1, dtype=torch.float64)
    return z


def expected_case(iou_norm=0.75, uc_norm=1.0) -> list[list[float]]:
    """delta_gaussian_yolo_box, the objectness and class deltas of the case, by hand."""
    scale = 2 - 0.5 * 1.0
    mu = [sig(Z1[0]), sig(Z1[2]), Z1[4], Z1[6]]
    sg = [sig(Z1[1]), sig(Z1[3]), sig(Z1[5]), sig(Z1[7])]
    t = [0.75 * 2 - 1, 0.5 * 1 - 0, math.log(0.5 * 2 / 1), math.log(1.0 * 1 / 1)]
    cell1 = [0.0] * 10
    for k in range(4):
        d = t[k] - mu[k]
        s = sg[k]
        x = d / s
        normal = math.exp(-x * x / 2) / (math.sqrt(2 * math.pi) * (s + C))
        temp = 0.5 * normal / (normal + 1e-9) * scale
        cell1[2 * k] = iou_norm * temp * d / (s * s)
        cell1[2 * k + 1] = uc_norm * temp * (d * d / s**3 - 1 / (s + C))
    cell1[8] = 1 - sig(Z1[8])  # cm·cls_normalizer·(1 − o)
    cell1[9] = 1 - sig(Z1[9])
    # cell 0: its box (0.25, 0.5, 0.5, 1) only touches the truth (IoU 0): δo = cls_normalizer·(0 − σ(0))
    cell0 = [0.0] * 8 + [-0.5, 0.0]
    return [[a, b] for a, b in zip(cell0, cell1)]


def test_hand_worked_case():
    loss = head_loss(model())
    assert isinstance(loss, GaussianYoloLoss)
    z = z_case().requires_grad_(True)
    r = loss(z, [torch.tensor([TRUTH])])
    want = expected_case()
    got = r.delta.view(10, 2).tolist()
    for e in range(10):
        for c in range(2):
            assert got[e][c] == pytest.approx(want[e][c], abs=1e-12), (e, c)
    assert r.cost == pytest.approx(sum(v * v for row in want for v in row), rel=1e-6)
    # the default gradient is Darknet's update: minus delta, as is
    r.loss.backward()
    torch.testing.assert_close(-z.grad, r.delta, rtol=0, atol=1e-12)
    # log line: IoU of the decoded box with the truth, class and objectness at the positive
    box = ((1 + sig(Z1[0])) / 2, sig(Z1[2]), math.exp(Z1[4]) / 2, math.exp(Z1[6]))
    ow = min(box[0] + box[2] / 2, 1.0) - max(box[0] - box[2] / 2, 0.5)
    oh = min(box[1] + box[3] / 2, 1.0) - max(box[1] - box[3] / 2, 0.0)
    i1 = ow * oh / (box[2] * box[3] + 0.5 - ow * oh)
    total = sum(v * v for row in want for v in row)
    cls_loss = sum(v * v for row in want[8:] for v in row)
    no_uc = sum(v * v for row in want[:4] + want[8:] for v in row)
    assert r.line == (
        f"Region 0 Avg IOU: {i1:.6f}, Class: {sig(Z1[9]):.6f}, Obj: {sig(Z1[8]):.6f}, No Obj: {(0.5 + sig(Z1[8])) / 2:.6f}, "
        f".5R: {float(i1 > 0.5):.6f}, .75R: {float(i1 > 0.75):.6f},  count: 1, class_loss = {cls_loss:.2f}, "
        f"iou_loss = {no_uc - cls_loss:.2f}, uc_loss = {total - no_uc:.2f}, total_loss = {total:.2f} "
    )


def test_exact_mode_is_delta_times_activation_derivative():
    """With iou_normalizer = uc_normalizer the exact gradient is δ times the logistic derivative."""
    loss = head_loss(model("iou_normalizer=1\nuc_normalizer=1\n"))
    loss.gradient = "exact"
    z = z_case().requires_grad_(True)
    r = loss(z, [torch.tensor([TRUTH])])
    r.loss.backward()
    want = torch.tensor(expected_case(1.0, 1.0), dtype=torch.float64)
    torch.testing.assert_close(r.delta.view(10, 2), want, rtol=0, atol=1e-12)
    s = torch.sigmoid(z.detach().view(10, 2))
    act = s * (1 - s)
    act[[4, 6]] = 1.0  # μw, μh are raw
    act[8:] = 1.0  # objectness and classes: BCE on the logits
    # the 1e-9 in N/(N+1e-9) is held fixed in the loss: agreement to ~1e-9 relative
    torch.testing.assert_close(-z.grad.view(10, 2), want * act, rtol=1e-8, atol=1e-12)


def test_averaging_and_union():
    """Two truths of different classes on one anchor: box deltas summed, then halved (two classes > 0)."""
    m = model(classes=2)
    z = torch.zeros(1, 11, 1, 2, dtype=torch.float64)
    z[0, :, 0, 1] = torch.tensor(Z1[:9] + [0.2, -0.6], dtype=torch.float64)
    a = [0, 0.75, 0.5, 0.5, 1.0]
    b = [1, 0.8, 0.4, 0.4, 0.8]
    da = head_loss(m)(z, [torch.tensor([a])]).delta.view(11, 2)
    db = head_loss(m)(z, [torch.tensor([b])]).delta.view(11, 2)
    dab = head_loss(m)(z, [torch.tensor([a, b])]).delta.view(11, 2)
    torch.testing.assert_close(dab[0:8, 1], (da[0:8, 1] + db[0:8, 1]) / 2, rtol=0, atol=1e-12)
    p = torch.sigmoid(z[0, 9:11, 0, 1])
    torch.testing.assert_close(dab[9:11, 1], 1 - p, rtol=0, atol=1e-12)  # class 0 written, then class 1 added


def test_extra_anchors_and_multipliers():
    """iou_thresh < 1: other mask anchors similar to the truth are positives too; counters_per_class."""
    m = model("iou_thresh=0.3\ncounters_per_class=10,40\n", classes=2, mask="0,1", num=2, anchors="1,1,1,0.7")
    assert classes_multipliers((10, 40), float("inf")) == [4.0, 1.0]
    z = torch.zeros(1, 22, 1, 2, dtype=torch.float64)
    r = head_loss(m)(z, [torch.tensor([[0, 0.75, 0.5, 0.5, 1.0]])])
    d = r.delta.view(2, 11, 2)
    assert r.stats["count"] == 2  # the best anchor and the other (shape IoU 0.7 > 0.3)
    assert float(d[0, 8, 1]) == pytest.approx(4.0 * (1 - 0.5)) and float(d[1, 8, 1]) == pytest.approx(4.0 * 0.5)
    assert float(d[0, 9, 1]) == pytest.approx(4.0 * 0.5) and float(d[0, 10, 1]) == pytest.approx(-0.5)
    m = model("iou_thresh=0.8\n", classes=2, mask="0,1", num=2, anchors="1,1,1,0.7")
    assert head_loss(m)(z, [torch.tensor([[0, 0.75, 0.5, 0.5, 1.0]])]).stats["count"] == 1


@pytest.mark.parametrize(
    "extra",
    [
        "",
        "iou_thresh=0.2\nuc_normalizer=0.5\nlabel_smooth_eps=0.1\ncounters_per_class=3,9\n",
        "iou_loss=giou\niou_normalizer=0.07\nscale_x_y=1.1\n",
        "yolo_point=left_top\ntruth_thresh=0.3\nignore_thresh=0.2\n",
    ],
)
def test_gradcheck_exact(extra):
    """The exact-mode loss with the targets held fixed against finite differences (float64), and the
    Darknet mode's gradient is minus Darknet's delta."""
    text = (
        "[net]\nwidth=96\nheight=64\nchannels=22\n[maxpool]\nsize=32\nstride=32\n"
        f"[Gaussian_yolo]\nmask=0,1\nnum=3\nclasses=2\nanchors=10,13, 16,30, 33,23\n{extra}"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = Darknet(parse_cfg_text(text, "t.cfg"), flavor="alexeyab")
    loss = head_loss(m)
    torch.manual_seed(0)
    z = torch.randn(2, 22, 2, 3, dtype=torch.float64)
    truths = [torch.tensor([[1, 0.5, 0.3, 0.3, 0.4], [0, 0.2, 0.8, 0.2, 0.3]]), torch.tensor([[1, 0.7, 0.6, 0.5, 0.4]])]
    tg = loss.build_targets(z, truths)
    zz = z.clone().requires_grad_(True)
    # full Jacobian check for the plain head, the random-projection check for the others
    assert torch.autograd.gradcheck(lambda v: loss.loss_from_targets(v, tg, "exact"), (zz,), fast_mode=bool(extra))
    r = loss(zz, truths)
    r.loss.backward()
    torch.testing.assert_close(-zz.grad, r.delta, rtol=0, atol=1e-12)
    assert r.stats["count"] >= 1
