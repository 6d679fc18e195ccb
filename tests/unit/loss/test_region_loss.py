"""[region] loss (darknetpy.loss.region): hand-worked deltas, costs and log lines for both forks, the
pjreddie warm-up, rescore, bias_match, thresh, the 30-truth limit, a class tree, and gradcheck."""
from __future__ import annotations

import math
import warnings

import pytest
import torch

from darknetpy import Darknet, parse_cfg_text
from darknetpy.errors import DarknetError
from darknetpy.loss import NetworkLoss
from darknetpy.loss.region import RegionLoss, RegionLossAlexeyAB

SEEN = 20000  # past the warm-up


def model(flavor: str, n=1, classes=2, w=2, h=1, anchors="1,1", extra="", path="t.cfg") -> Darknet:
    text = (
        f"[net]\nwidth={w}\nheight={h}\nchannels={n * (5 + classes)}\n"
        f"[region]\nnum={n}\ncoords=4\nclasses={classes}\nanchors={anchors}\nsoftmax=1\n{extra}"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Darknet(parse_cfg_text(text, path), flavor=flavor)


def head_loss(m: Darknet):
    (loss,) = NetworkLoss(m, "darknet").heads
    return loss


def sig(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def iou(a, b) -> float:
    def ov(x1, w1, x2, w2):
        return min(x1 + w1 / 2, x2 + w2 / 2) - max(x1 - w1 / 2, x2 - w2 / 2)

    ow, oh = ov(a[0], a[2], b[0], b[2]), ov(a[1], a[3], b[1], b[3])
    inter = 0.0 if ow < 0 or oh < 0 else ow * oh
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


# one anchor (1, 1) on a 2x1 grid; cell 1 has these raw values, cell 0 is all zero
ZX, ZY, ZW, ZH, ZO, ZC0, ZC1 = 0.4, -0.2, 0.1, -0.3, 0.5, 0.2, -0.1
TRUTH = [1, 0.75, 0.5, 0.5, 1.0]  # class 1 in cell (j=0, i=1)


def z_case(dtype=torch.float64) -> torch.Tensor:
    z = torch.zeros(1, 7, 1, 2, dtype=dtype)
    z[0, :, 0, 1] = torch.tensor([ZX, ZY, ZW, ZH, ZO, ZC0, ZC1], dtype=dtype)
    return z


def expected_case(alexeyab: bool):
    """The deltas of the case, worked out by hand (as nested lists [entry][cell])."""
    sx, sy, so = sig(ZX), sig(ZY), sig(ZO)
    pred1 = ((1 + sx) / 2, sy / 1, math.exp(ZW) * 1 / 2, math.exp(ZH) * 1 / 1)
    truth = TRUTH[1:]
    i1 = iou(pred1, truth)
    # cell 0: the box (0.25, 0.5, 0.5, 1) only touches the truth: IoU 0, so δo = 1·(0 − σ(0))
    d0 = [0.0, 0.0, 0.0, 0.0, -0.5, 0.0, 0.0]
    s = 1.0 if alexeyab else 1.0 * (2 - 0.5 * 1.0)  # coord_scale·(2 − w·h) in pjreddie
    tx, ty = 0.75 * 2 - 1, 0.5 * 1 - 0  # 0.5, 0.5
    tw, th = math.log(0.5 * 2 / 1), math.log(1.0 * 1 / 1)  # 0, 0
    e0, e1 = math.exp(ZC0), math.exp(ZC1)
    p0, p1 = e0 / (e0 + e1), e1 / (e0 + e1)
    d1 = [s * (tx - sx), s * (ty - sy), s * (tw - ZW), s * (th - ZH), 1.0 * (1 - so), 0 - p0, 1 - p1]
    if alexeyab:  # σ′ folded into x, y and objectness
        d0[4] *= 0.5 * 0.5
        d1[0] *= sx * (1 - sx)
        d1[1] *= sy * (1 - sy)
        d1[4] *= so * (1 - so)
    return [[a, b] for a, b in zip(d0, d1)], i1, (p1, so, (0.5 + so) / 2)


@pytest.mark.parametrize("flavor", ["pjreddie", "alexeyab"])
def test_hand_worked_case(flavor):
    ab = flavor == "alexeyab"
    m = model(flavor)
    loss = head_loss(m)
    assert isinstance(loss, RegionLossAlexeyAB if ab else RegionLoss)
    z = z_case().requires_grad_(True)
    r = loss(z, [torch.tensor([TRUTH])], seen=SEEN)
    want, i1, (cat, obj, anyobj) = expected_case(ab)
    got = r.delta.view(7, 2).tolist()
    for e in range(7):
        for c in range(2):
            assert got[e][c] == pytest.approx(want[e][c], abs=1e-12), (e, c)
    # Darknet's cost: Σδ² (float32 sum)
    assert r.cost == pytest.approx(sum(v * v for row in want for v in row), rel=1e-6)
    line = (
        f"Region Avg IOU: {i1:.6f}, Class: {cat:.6f}, Obj: {obj:.6f}, No Obj: {anyobj:.6f}, "
        f"Avg Recall: {1.0 if i1 > 0.5 else 0.0:.6f},  count: 1"
    )
    assert r.line == line
    # gradient: AlexeyAB's delta is minus it; pjreddie's GPU backward multiplies x, y, obj by σ′
    r.loss.backward()
    grad = (-z.grad).view(7, 2)
    d = r.delta.view(7, 2)
    if ab:
        torch.testing.assert_close(grad, d, rtol=0, atol=1e-12)
    else:
        s = torch.sigmoid(z.detach().view(7, 2))
        expect = d.clone()
        expect[[0, 1, 4]] = d[[0, 1, 4]] * s[[0, 1, 4]] * (1 - s[[0, 1, 4]])
        torch.testing.assert_close(grad, expect, rtol=0, atol=1e-12)


def test_float32_matches_hand_case():
    r = head_loss(model("pjreddie"))(z_case(torch.float32), [torch.tensor([TRUTH])], seen=SEEN)
    want, _, _ = expected_case(False)
    torch.testing.assert_close(r.delta.view(7, 2), torch.tensor(want, dtype=torch.float32), rtol=0, atol=2e-7)


@pytest.mark.parametrize("flavor", ["pjreddie", "alexeyab"])
def test_warmup(flavor):
    """seen < 12800: every anchor's box pulled to the anchor at its cell centre with scale .01."""
    torch.manual_seed(1)
    m = model(flavor, n=2, anchors="1,1.5,2,0.5", w=3, h=2)
    z = torch.randn(1, 14, 2, 3, dtype=torch.float64)
    d = head_loss(m)(z, [torch.zeros(0, 5)], seen=0).delta.view(2, 7, 2, 3)
    zz = z.view(2, 7, 2, 3)
    s = torch.sigmoid(zz[:, 0:2])
    want_xy = 0.01 * (0.5 - s)
    if flavor == "alexeyab":
        want_xy = want_xy * s * (1 - s)
    torch.testing.assert_close(d[:, 0:2], want_xy, rtol=0, atol=1e-12)
    torch.testing.assert_close(d[:, 2:4], 0.01 * (0 - zz[:, 2:4]), rtol=0, atol=1e-12)
    # seen = 12800: no warm-up, no truth: only objectness deltas
    d = head_loss(m)(z, [torch.zeros(0, 5)], seen=12800).delta.view(2, 7, 2, 3)
    assert not d[:, 0:4].any() and d[:, 4].all() and not d[:, 5:].any()


def test_warmup_overwritten_by_truth():
    z = z_case()
    r = head_loss(model("pjreddie"))(z, [torch.tensor([TRUTH])], seen=0)
    d = r.delta.view(7, 2)
    want, _, _ = expected_case(False)
    torch.testing.assert_close(d[:, 1], torch.tensor([row[1] for row in want], dtype=torch.float64), rtol=0, atol=1e-12)
    assert d[0, 0] == 0.01 * (0.5 - 0.5) and d[2, 0] == pytest.approx(0.0, abs=1e-15)  # cell 0: the warm-up


@pytest.mark.parametrize("flavor", ["pjreddie", "alexeyab"])
def test_rescore(flavor):
    """rescore=1: the objectness target is the IoU of the assigned prediction."""
    r = head_loss(model(flavor, extra="rescore=1\n"))(z_case(), [torch.tensor([TRUTH])], seen=SEEN)
    _, i1, _ = expected_case(False)
    so = sig(ZO)
    want = 1.0 * (i1 - so) * (so * (1 - so) if flavor == "alexeyab" else 1.0)
    assert float(r.delta.view(7, 2)[4, 1]) == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("flavor", ["pjreddie", "alexeyab"])
def test_bias_match(flavor):
    """The best anchor by the predicted shape (default) or by the anchors (bias_match=1)."""
    # anchors (1, 1) and (2, 2) on a 2x2 grid; the truth is 1 cell wide and high, like anchor 0,
    # but anchor 1's prediction is made exactly 1x1 cell (exp(z) = 1/2): it wins without bias_match
    truth = torch.tensor([[0, 0.25, 0.25, 0.5, 0.5]])
    for bias_match, winner in ((0, 1), (1, 0)):
        m = model(flavor, n=2, classes=2, w=2, h=2, anchors="1,1,2,2", extra=f"bias_match={bias_match}\n")
        z = torch.zeros(1, 14, 2, 2, dtype=torch.float64)
        z[0, 0:7, :, :][2:4] = -3.0  # anchor 0 predicts a tiny box
        z[0, 7:14, :, :][2:4] = math.log(0.5)  # anchor 1 predicts exactly the truth's shape
        r = head_loss(m)(z, [truth], seen=SEEN)
        d = r.delta.view(2, 7, 2, 2)
        so = 0.5
        pos = 1 - so if flavor == "pjreddie" else (1 - so) * so * (1 - so)
        assert float(d[winner, 4, 0, 0]) == pytest.approx(pos)
        assert d[winner, 5:, 0, 0].abs().sum() > 0 and not d[1 - winner, 5:, 0, 0].any()


def test_thresh_zeroes_noobject():
    """noobj δ is zeroed where the prediction's best IoU with a truth is above thresh."""
    z = z_case()
    pred1 = ((1 + sig(ZX)) / 2, sig(ZY), math.exp(ZW) / 2, math.exp(ZH))
    box = (0.49, *pred1[1:])  # in cell 0, overlapping cell 1's prediction; nothing is assigned to cell 1
    k = iou(pred1, box)
    for thresh, zeroed in ((k - 0.01, True), (k + 0.01, False)):
        m = model("pjreddie", extra=f"thresh={thresh}\n")
        d = head_loss(m)(z, [torch.tensor([[1, *box]], dtype=torch.float64)], seen=SEEN).delta.view(7, 2)
        assert (float(d[4, 1]) == 0.0) == zeroed


@pytest.mark.parametrize("flavor,count", [("pjreddie", 30), ("alexeyab", 31)])
def test_truth_limit(flavor, count):
    """pjreddie reads at most 30 truths per image; AlexeyAB up to max=200."""
    rows = [[0, 0.25, 0.5, 0.5, 1.0]] * 30 + [[1, 0.75, 0.5, 0.5, 1.0]]
    r = head_loss(model(flavor))(z_case(), [torch.tensor(rows)], seen=SEEN)
    assert r.stats["count"] == count
    d = r.delta.view(7, 2)
    if flavor == "pjreddie":
        assert d[6, 1] == 0  # no class delta in cell 1: the 31st truth is not read
    else:
        assert d[6, 1] != 0


def test_logistic_classes_union_pjreddie():
    """softmax=0 (pjreddie): logistic classes; a second truth on the same anchor only adds its class."""
    text = "[net]\nwidth=2\nheight=1\nchannels=8\n[region]\nnum=1\ncoords=4\nclasses=3\nanchors=1,1\nsoftmax=0\n"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = Darknet(parse_cfg_text(text, "t.cfg"), flavor="pjreddie")
    z = torch.zeros(1, 8, 1, 2, dtype=torch.float64)
    z[0, 5:8, 0, 1] = torch.tensor([0.3, -0.4, 0.8], dtype=torch.float64)
    p = torch.sigmoid(z[0, 5:8, 0, 1])
    rows = torch.tensor([[0, 0.75, 0.5, 0.5, 1.0], [2, 0.75, 0.5, 0.5, 1.0]])
    r = head_loss(m)(z.clone().requires_grad_(True), [rows], seen=SEEN)
    d = r.delta.view(8, 2)[5:8, 1]
    torch.testing.assert_close(d, torch.stack([1 - p[0], 0 - p[1], 1 - p[2]]), rtol=0, atol=1e-12)
    assert r.stats["avg_cat"] == pytest.approx(float(p[0]) / 2)  # only the full write adds to avg_cat


@pytest.mark.parametrize("flavor", ["pjreddie", "alexeyab"])
def test_tree(flavor, tmp_path):
    """A class tree: every group on the class's path gets s·(onehot − p); avg_cat is the path product."""
    (tmp_path / "t.tree").write_text("a -1\nb -1\nc 0\n")
    m = model(flavor, classes=3, extra="tree=t.tree\n", path=tmp_path / "x.cfg")
    z = torch.zeros(1, 8, 1, 2, dtype=torch.float64)
    z[0, 5:8, 0, 1] = torch.tensor([0.3, -0.4, 0.8], dtype=torch.float64)
    r = head_loss(m)(z.clone().requires_grad_(True), [torch.tensor([[2, 0.75, 0.5, 0.5, 1.0]])], seen=SEEN)
    pa = math.exp(0.3) / (math.exp(0.3) + math.exp(-0.4))
    d = r.delta.view(8, 2)[5:8, 1].tolist()
    assert d == pytest.approx([1 - pa, 0 - (1 - pa), 1 - 1.0], abs=1e-12)  # c is alone in its group: p = 1
    assert r.stats["avg_cat"] == pytest.approx(pa)
    tg = head_loss(m).build_targets(z, [torch.tensor([[2, 0.75, 0.5, 0.5, 1.0]])], SEEN)
    zz = z.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: head_loss(m).loss_from_targets(v, tg)[0], (zz,))


_EXTRAS = ["softmax=1\n", "softmax=0\n", "softmax=1\nrescore=1\nclassfix=2\nthresh=0.1\n", "softmax=1\nfocal_loss=1\n"]
_GRADCHECK = [(f, e) for f in ("pjreddie", "alexeyab") for e in _EXTRAS if f == "alexeyab" or "focal" not in e]  # focal_loss: AlexeyAB's


@pytest.mark.parametrize("flavor,extra", _GRADCHECK)
def test_gradcheck(flavor, extra):
    """The loss with the targets held fixed: autograd agrees with finite differences (float64)."""
    text = (
        "[net]\nwidth=3\nheight=2\nchannels=16\n[region]\nnum=2\ncoords=4\nclasses=3\nanchors=1,1.5,2,1\n"
        f"object_scale=5\nnoobject_scale=0.5\ncoord_scale=2\nclass_scale=1.5\n{extra}"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = Darknet(parse_cfg_text(text, "t.cfg"), flavor=flavor)
    loss = head_loss(m)
    torch.manual_seed(3)
    z = torch.randn(2, 16, 2, 3, dtype=torch.float64)
    truths = [torch.tensor([[1, 0.5, 0.3, 0.4, 0.5], [2, 0.2, 0.8, 0.3, 0.2]]), torch.tensor([[0, 0.8, 0.6, 0.5, 0.4]])]
    for seen in (0, SEEN):
        tg = loss.build_targets(z, truths, seen)
        zz = z.clone().requires_grad_(True)
        # full Jacobian check for one configuration, the random-projection check for the rest
        fast = not (extra == "softmax=1\n" and seen == 0)
        assert torch.autograd.gradcheck(lambda v, tg=tg: loss.loss_from_targets(v, tg)[0], (zz,), fast_mode=fast)
        # and the sum of squares of delta is the cost
        r = loss(z, truths, seen)
        assert r.cost == pytest.approx(float((r.delta.float() ** 2).sum()), rel=1e-5)


def test_refused():
    with pytest.raises(DarknetError, match="coords"):
        text = "[net]\nwidth=2\nheight=1\nchannels=12\n[region]\nnum=1\ncoords=6\nclasses=5\n"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            NetworkLoss(Darknet(parse_cfg_text(text, "t.cfg"), flavor="pjreddie"))
    with pytest.raises(DarknetError, match="classes"):
        head_loss(model("pjreddie"))(z_case(), [torch.tensor([[5, 0.75, 0.5, 0.5, 1.0]])], seen=SEEN)
    # AlexeyAB skips a truth whose class is too large
    r = head_loss(model("alexeyab"))(z_case(), [torch.tensor([[5, 0.75, 0.5, 0.5, 1.0]])], seen=SEEN)
    assert r.stats["count"] == 0 and r.line.endswith("count: 0") and "-nan" in r.line
