"""AlexeyAB's [yolo] loss (process_batch, darknet-reference.md §4.2): one test per key, each with
the expected deltas worked out from the C in plain Python, the golden dumps, and where the two
forks differ."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from darknetpy.loss import NetworkLoss
from darknetpy.loss.iou import dx_box_iou
from darknetpy.loss.verify import _truths_as_read

from ...conftest import GOLDEN, golden_params
from . import at, iou, run, sig, yolo_model

pytestmark = pytest.mark.unit

C = 2
TRUTH = (1, 0.3, 0.7, 0.55, 0.7)  # cell i=0, j=1; shape IoU with 16x16 .162, 32x48 .854, 60x40 .548
CELL = (1, 0)  # (j, i)
S_BOX = 2 - 0.55 * 0.7


def z0(seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 2 * (C + 5), 2, 2, generator=torch.Generator().manual_seed(seed)) * 0.8


def box_deltas(z, truth=TRUTH, slot=1, anchor=(32, 48), k=0.75, scale_x_y=1.0):
    """mse delta_yolo_box: k·(2-wh)·(t - x) with x the stored output (S·σ - (S-1)/2) and raw w, h."""
    _, x, y, w, h = truth
    i, j = int(x * 2), int(y * 2)
    s = 2 - w * h
    ox = scale_x_y * sig(at(z, slot, 0, j, i)) - (scale_x_y - 1) / 2
    oy = scale_x_y * sig(at(z, slot, 1, j, i)) - (scale_x_y - 1) / 2
    return [
        s * (x * 2 - i - ox) * k,
        s * (y * 2 - j - oy) * k,
        s * (math.log(w * 64 / anchor[0]) - at(z, slot, 2, j, i)) * k,
        s * (math.log(h * 64 / anchor[1]) - at(z, slot, 3, j, i)) * k,
    ]


def entries(r, slot=1, cell=CELL, ks=range(7)):
    return [at(r.delta, slot, k, *cell) for k in ks]


def close(got, want, what, tol=2e-6):
    for k, (a, b) in enumerate(zip(got, want)):
        assert a == pytest.approx(b, abs=tol, rel=1e-5), f"{what}, entry {k}: got {a}, C gives {b}"


def test_defaults_mse_box_obj_class():
    z = z0()
    r = run(yolo_model("alexeyab"), z, [[TRUTH]])
    close(entries(r, ks=range(4)), box_deltas(z), "box: (2-wh)·(t-x)·iou_normalizer .75")
    p = lambda k: sig(at(z, 1, k, *CELL))
    close(entries(r, ks=range(4, 7)), [1 - p(4), 0 - p(5), 1 - p(6)], "obj and classes")
    assert r.stats["count"] == 1


def test_iou_normalizer_scales_the_box_only():
    z = z0()
    r = run(yolo_model("alexeyab", "iou_normalizer=0.3\n"), z, [[TRUTH]])
    close(entries(r, ks=range(4)), box_deltas(z, k=0.3), "box with iou_normalizer=0.3")
    assert at(r.delta, 1, 4, *CELL) == pytest.approx(1 - sig(at(z, 1, 4, *CELL)), abs=1e-6)


def test_obj_normalizer_on_noobj_and_positive():
    z = z0()
    r = run(yolo_model("alexeyab", "obj_normalizer=0.4\nignore_thresh=1\n"), z, [[TRUTH]])
    assert at(r.delta, 1, 4, *CELL) == pytest.approx(0.4 * (1 - sig(at(z, 1, 4, *CELL))), abs=1e-6)
    assert at(r.delta, 0, 4, 0, 0) == pytest.approx(0.4 * (0 - sig(at(z, 0, 4, 0, 0))), abs=1e-6)
    assert at(r.delta, 1, 5, *CELL) == pytest.approx(0 - sig(at(z, 1, 5, *CELL)), abs=1e-6)  # classes: no obj_normalizer


def test_cls_normalizer_without_counters_has_no_effect():
    z = z0()
    a = run(yolo_model("alexeyab"), z, [[TRUTH]])
    b = run(yolo_model("alexeyab", "cls_normalizer=3\n"), z, [[TRUTH]])
    torch.testing.assert_close(a.delta, b.delta, rtol=0, atol=0)


def test_counters_per_class_multiplier_and_cls_normalizer():
    z = z0()
    # classes_multipliers = max/count = (40/10, 40/40) = (4, 1); the truth is class 0
    truth = (0,) + TRUTH[1:]
    r = run(yolo_model("alexeyab", "counters_per_class=10,40\ncls_normalizer=0.5\n"), z, [[truth]])
    close(entries(r, ks=range(4)), box_deltas(z, truth, k=0.75 * 4), "box: iou_normalizer·cm")
    p = lambda k: sig(at(z, 1, k, *CELL))
    close(entries(r, ks=range(4, 7)), [4 * (1 - p(4)), (1 - p(5)) * 4 * 0.5, 0 - p(6)], "obj ·cm; true class ·cm·cls_normalizer")
    capped = run(yolo_model("alexeyab", "counters_per_class=10,40\nmax_delta=3\n"), z, [[truth]])
    assert at(capped.delta, 1, 4, *CELL) == pytest.approx(3 * (1 - p(4)), abs=1e-6)  # cm capped at max_delta
    low = run(yolo_model("alexeyab", "counters_per_class=0,40\n"), z, [[truth]])  # a count below 1 counts as 1
    assert at(low.delta, 1, 4, *CELL) == pytest.approx(40 * (1 - p(4)), abs=1e-5)


def test_label_smooth_eps():
    z = torch.randn(1, 16, 2, 2, generator=torch.Generator().manual_seed(0))  # 3 classes
    r = run(yolo_model("alexeyab", "label_smooth_eps=0.1\n", classes=3), z, [[TRUTH]])
    p = lambda k: sig(at(z, 1, k, *CELL, classes=3))
    # y = onehot·(1 - ε) + 0.5·ε: 0.95 and 0.05 (0.5ε, not ε/K = 0.033)
    got = [at(r.delta, 1, k, *CELL, classes=3) for k in (5, 6, 7)]
    close(got, [0.05 - p(5), 0.95 - p(6), 0.05 - p(7)], "smoothed classes")


def test_focal_loss():
    z = z0()
    r = run(yolo_model("alexeyab", "focal_loss=1\n"), z, [[TRUTH]])
    p5, p6 = sig(at(z, 1, 5, *CELL)), sig(at(z, 1, 6, *CELL))
    pt = p6 + 1e-15
    g = -(1 - pt) * (2 * pt * math.log(pt) + pt - 1)
    close(entries(r, ks=(5, 6)), [0.5 * g * (0 - p5), 0.5 * g * (1 - p6)], "focal α·g·(y - p)")


def test_iou_thresh_extra_anchors_and_kind():
    z = z0()
    # mask 0,2: the best anchor (1) is not in this layer; anchor 2 (IoU .548) is, and .548 > .52
    model = yolo_model("alexeyab", "iou_thresh=0.52\n", mask="0,2")
    r = run(model, z, [[TRUTH]])
    assert r.stats["count"] == 1
    close(entries(r, ks=range(4)), box_deltas(z, anchor=(60, 40)), "extra anchor box (no other class: no averaging)")
    # with iou_thresh_kind=giou the same shape scores .504 < .52: nothing
    g = run(yolo_model("alexeyab", "iou_thresh=0.52\niou_thresh_kind=giou\n", mask="0,2"), z, [[TRUTH]])
    assert g.stats["count"] == 0
    none = run(yolo_model("alexeyab", mask="0,2"), z, [[TRUTH]])  # iou_thresh=1: only the best anchor
    assert none.stats["count"] == 0


def test_accumulate_and_averages_yolo_deltas():
    z = z0()
    second = (0, 0.35, 0.72, 0.5, 0.75)  # same cell and best anchor, other class
    total = [a + b for a, b in zip(box_deltas(z), box_deltas(z, second))]
    acc = run(yolo_model("alexeyab"), z, [[TRUTH, second]])
    close(entries(acc, ks=range(4)), total, "box deltas accumulate (+=)")
    # iou_thresh < 1: box deltas divided by the classes with δ > 0 (here 2)
    avg = run(yolo_model("alexeyab", "iou_thresh=0.99\n"), z, [[TRUTH, second]])
    close(entries(avg, ks=range(4)), [v / 2 for v in total], "averages_yolo_deltas")
    p = lambda k: sig(at(z, 1, k, *CELL))
    close(entries(avg, ks=(5, 6)), [1 - p(5), 1 - p(6)], "second truth sets only its class")


def test_scale_x_y():
    z = z0()
    r = run(yolo_model("alexeyab", "scale_x_y=1.2\n"), z, [[TRUTH]])
    close(entries(r, ks=range(4)), box_deltas(z, scale_x_y=1.2), "x target against 1.2σ - 0.1")


def test_new_coords_mse_on_probabilities():
    v = torch.rand(1, 14, 2, 2, generator=torch.Generator().manual_seed(3)) * 0.8 + 0.1
    r = run(yolo_model("alexeyab", "new_coords=1\nscale_x_y=2\n"), v, [[TRUTH]])
    e = lambda k: at(v, 1, k, *CELL)
    _, x, y, w, h = TRUTH
    want = [
        S_BOX * (x * 2 - 0 - (2 * e(0) - 0.5)) * 0.75,
        S_BOX * (y * 2 - 1 - (2 * e(1) - 0.5)) * 0.75,
        S_BOX * (math.sqrt(w * 64 / (4 * 32)) - e(2)) * 0.75,
        S_BOX * (math.sqrt(h * 64 / (4 * 48)) - e(3)) * 0.75,
        1 - e(4), 0 - e(5), 1 - e(6),
    ]
    close(entries(r), want, "new_coords: no logistic in the layer, tw = sqrt(w·net_w/(4·aw))")
    assert at(r.delta, 0, 4, 0, 0) == pytest.approx(-at(v, 0, 4, 0, 0), abs=1e-6)


@pytest.mark.parametrize("kind", ["iou", "giou", "diou", "ciou"])
def test_iou_loss_kinds(kind):
    z = z0()
    r = run(yolo_model("alexeyab", f"iou_loss={kind}\niou_normalizer=0.07\n"), z, [[TRUTH]])
    zx, zy, zw, zh = (at(z, 1, k, *CELL) for k in range(4))
    pred = torch.tensor([[(0 + sig(zx)) / 2, (1 + sig(zy)) / 2, math.exp(zw) * 32 / 64, math.exp(zh) * 48 / 64]])
    g = dx_box_iou(pred, torch.tensor([TRUTH[1:]]), kind)[0].tolist()
    want = [0.07 * g[0], 0.07 * g[1], 0.07 * g[2] * math.exp(zw), 0.07 * g[3] * math.exp(zh)]
    close(entries(r, ks=range(4)), want, f"{kind}: iou_normalizer·dx_box_iou (·exp(z) for w, h; no σ', no 2-wh)", tol=1e-5)
    name = "giou" if kind == "giou" else "iou"
    assert r.line.startswith(f"v3 ({name} loss, Normalizer: (iou: 0.07, obj: 1.00, cls: 1.00) Region 2 Avg (IOU: ")
    # cost: iou_normalizer·Σ(1 - IoU or 1 - GIoU)/count + obj_normalizer·Σδ²(non-box)
    v = iou(pred[0].tolist(), TRUTH[1:])
    nonbox = r.delta.view(1, 2, 7, 2, 2)[:, :, 4:]
    if kind == "giou":
        from darknetpy.loss.iou import box_giou
        v = float(box_giou(pred[0], torch.tensor(TRUTH[1:])))
    assert r.cost == pytest.approx(0.07 * (1 - v) + float((nonbox.double() ** 2).sum()), rel=1e-5)


def test_max_delta_clips_the_iou_path():
    z = z0()
    r = run(yolo_model("alexeyab", "iou_loss=ciou\niou_normalizer=5\nmax_delta=0.01\n"), z, [[TRUTH]])
    box = entries(r, ks=range(4))
    assert max(abs(v) for v in box) == pytest.approx(0.01) and all(abs(v) <= 0.01 for v in box)
    mse = run(yolo_model("alexeyab", "max_delta=0.01\n"), z, [[TRUTH]])  # no clip on the mse path
    close(entries(mse, ks=range(4)), box_deltas(z), "mse is not clipped")


def test_objectness_smooth():
    z = z0()
    w, h = TRUTH[3:]
    # slot 0 (16x16) of the truth's cell predicts the truth 5% wider: IoU ~.95 > ignore_thresh .5
    z[0, 0, 1, 0], z[0, 1, 1, 0] = math.log(0.6 / 0.4), math.log(0.4 / 0.6)
    z[0, 2, 1, 0], z[0, 3, 1, 0] = math.log(w * 64 / 16 * 1.05), math.log(h * 64 / 16)
    z[0, 5:7, 1, 0] = 0.0  # class probabilities .5 > .25
    r = run(yolo_model("alexeyab", "objectness_smooth=1\n"), z, [[TRUTH]])
    pred = ((0 + 0.6) / 2, (1 + 0.4) / 2, w * 1.05, h)
    v = iou(pred, TRUTH[1:])
    assert at(r.delta, 0, 4, *CELL) == pytest.approx(max(-sig(at(z, 0, 4, *CELL)), v - sig(at(z, 0, 4, *CELL))), abs=1e-5)
    # the positive anchor kept its noobj-pass delta (non-zero): the truth pass only writes over a zero
    p1 = ((0 + sig(at(z, 1, 0, *CELL))) / 2, (1 + sig(at(z, 1, 1, *CELL))) / 2,
          math.exp(at(z, 1, 2, *CELL)) * 32 / 64, math.exp(at(z, 1, 3, *CELL)) * 48 / 64)
    o1, v1 = sig(at(z, 1, 4, *CELL)), iou(p1, TRUTH[1:])
    matched = max(sig(at(z, 1, 5, *CELL)), sig(at(z, 1, 6, *CELL))) > 0.25
    noobj = max(-o1, v1 - o1) if matched and v1 > 0.5 else -o1
    assert noobj != 0 and at(r.delta, 1, 4, *CELL) == pytest.approx(noobj, abs=1e-6)
    plain = run(yolo_model("alexeyab"), z, [[TRUTH]])
    assert at(plain.delta, 0, 4, *CELL) == 0 and at(plain.delta, 1, 4, *CELL) > 0


def test_ignore_needs_a_class_probability_above_quarter():
    z = z0()
    w, h = TRUTH[3:]
    z[0, 0, 1, 0], z[0, 1, 1, 0] = math.log(0.6 / 0.4), math.log(0.4 / 0.6)
    z[0, 2, 1, 0], z[0, 3, 1, 0] = math.log(w * 64 / 16 * 1.05), math.log(h * 64 / 16)
    z[0, 5:7, 1, 0] = -3.0  # class probabilities .047: compare_yolo_class fails
    ab = run(yolo_model("alexeyab"), z, [[TRUTH]])
    pj = run(yolo_model("pjreddie"), z, [[TRUTH]])
    assert at(ab.delta, 0, 4, *CELL) == pytest.approx(-sig(at(z, 0, 4, *CELL)), abs=1e-6)  # not ignored
    assert at(pj.delta, 0, 4, *CELL) == 0  # pjreddie ignores on IoU alone
    z[0, 5, 1, 0] = 0.0  # one class at .5
    assert at(run(yolo_model("alexeyab"), z, [[TRUTH]]).delta, 0, 4, *CELL) == 0


def test_truth_thresh_with_objectness_smooth_targets_iou_squared():
    z = z0()
    w, h = TRUTH[3:]
    z[0, 0, 1, 0], z[0, 1, 1, 0] = math.log(0.6 / 0.4), math.log(0.4 / 0.6)
    z[0, 2, 1, 0], z[0, 3, 1, 0] = math.log(w * 64 / 16 * 1.05), math.log(h * 64 / 16)
    r = run(yolo_model("alexeyab", "truth_thresh=0.9\nobjectness_smooth=1\n"), z, [[TRUTH]])
    v = iou(((0 + 0.6) / 2, (1 + 0.4) / 2, w * 1.05, h), TRUTH[1:])
    assert at(r.delta, 0, 4, *CELL) == pytest.approx(v * v - sig(at(z, 0, 4, *CELL)), abs=1e-5)
    assert at(r.delta, 0, 6, *CELL) == pytest.approx(v * v - sig(at(z, 0, 6, *CELL)), abs=1e-5)
    assert r.stats["count"] == 1


def test_classes_beyond_the_layer_are_skipped_and_max_is_200():
    z = z0()
    a = run(yolo_model("alexeyab"), z, [[TRUTH]])
    b = run(yolo_model("alexeyab"), z, [[(5,) + TRUTH[1:], TRUTH]])
    torch.testing.assert_close(a.delta, b.delta, rtol=0, atol=0)
    filler = [(0, 0.1, 0.1, 0.25, 0.25)] * 150 + [(1, 0.8, 0.8, 0.55, 0.7)]
    assert run(yolo_model("alexeyab"), z, [filler]).stats["count"] == 151
    assert run(yolo_model("alexeyab", "max=100\n"), z, [filler]).stats["count"] == 100


def test_delta_normalizer_is_gpu_only():
    z = z0()
    a = run(yolo_model("alexeyab"), z, [[TRUTH]])
    b = run(yolo_model("alexeyab", "delta_normalizer=5\n"), z, [[TRUTH]])
    torch.testing.assert_close(a.delta, b.delta, rtol=0, atol=0)


def test_log_lines():
    z = z0()
    r = run(yolo_model("alexeyab"), z, [[TRUTH]])
    m = re.fullmatch(r"v3 \(mse loss, Normalizer: \(iou: 0\.75, obj: 1\.00, cls: 1\.00\) Region 2 Avg \(IOU: ([\d.]+)\), "
                     r"count: 1, class_loss = ([\d.]+), iou_loss = ([\d.]+), total_loss = ([\d.]+) ", r.line)
    assert m, r.line
    d = r.delta.double()
    nonbox = d.view(1, 2, 7, 2, 2)[:, :, 4:]
    assert float(m[2]) == pytest.approx(float((nonbox**2).sum()), abs=2e-6)
    assert float(m[4]) == pytest.approx(float((d**2).sum()), abs=2e-6) == pytest.approx(r.cost, abs=2e-6)
    quiet = run(yolo_model("alexeyab", "show_details=0\n"), z, [[TRUTH]])
    assert re.fullmatch(r"v3 \(mse loss, .* count: 1, total_loss = [\d.]+ ", quiet.line)
    empty = run(yolo_model("alexeyab"), z, [[(0, 0.3, 0.7, 60 / 64, 40 / 64)]])
    assert "Avg (IOU: 0.000000), count: 1," in empty.line  # count 0 is printed as 1


def test_gradcheck_mse_path_float64():
    model = yolo_model("alexeyab", "scale_x_y=1.1\ncounters_per_class=10,40\niou_thresh=0.5\nlabel_smooth_eps=0.1\nobj_normalizer=0.7\n")
    head = NetworkLoss(model, "darknet").heads[0]
    z = z0().double()
    truths = [torch.tensor([TRUTH, (0, 0.35, 0.72, 0.5, 0.75), (0, 0.8, 0.2, 0.2, 0.3)])]
    with torch.no_grad():
        targets, *_ = head.targets(z, truths)
    assert torch.autograd.gradcheck(lambda v: head.loss_from_targets(v, targets), (z.clone().requires_grad_(True),))
    nc = NetworkLoss(yolo_model("alexeyab", "new_coords=1\nscale_x_y=2\n"), "darknet").heads[0]
    v = torch.rand(1, 14, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        targets, *_ = nc.targets(v, truths)
    assert torch.autograd.gradcheck(lambda u: nc.loss_from_targets(u, targets), (v.clone().requires_grad_(True),))


def test_where_the_forks_differ():
    """Same head, same input, same truths (darknet-reference.md §4.1 vs §4.2)."""
    z = z0()
    second = (0, 0.35, 0.72, 0.5, 0.75)
    pj = run(yolo_model("pjreddie"), z, [[TRUTH, second]])
    ab = run(yolo_model("alexeyab"), z, [[TRUTH, second]])
    # boxes: pjreddie assigns (last truth wins, no normalizer); AlexeyAB accumulates ×iou_normalizer
    close(entries(pj, ks=range(4)), [v / 0.75 for v in box_deltas(z, second)], "pjreddie box")
    close(entries(ab, ks=range(4)), [a + b for a, b in zip(box_deltas(z), box_deltas(z, second))], "AlexeyAB box")
    # normalizers and scale_x_y are AlexeyAB keys: pjreddie does not read them
    extra = "iou_normalizer=0.1\nobj_normalizer=0.5\nscale_x_y=1.3\n"
    torch.testing.assert_close(run(yolo_model("pjreddie", extra), z, [[TRUTH]]).delta, run(yolo_model("pjreddie"), z, [[TRUTH]]).delta)
    assert run(yolo_model("alexeyab", extra), z, [[TRUTH]]).delta.ne(ab.delta).any()
    # the already-assigned class test: pjreddie reads class 0's delta, AlexeyAB the truth's class
    z[0, 7 + 5, 1, 0] = 30.0  # p_0 == 1: the first truth (class 0) leaves δ_0 = 0
    first = (0,) + TRUTH[1:]
    pj = run(yolo_model("pjreddie"), z, [[first, TRUTH]])
    ab = run(yolo_model("alexeyab"), z, [[first, TRUTH]])
    assert at(pj.delta, 1, 5, *CELL) == pytest.approx(-1.0)  # reset to 0 - p_0
    assert at(ab.delta, 1, 5, *CELL) == 0.0  # untouched: δ[1] was already non-zero
    # truths per image: pjreddie 90, AlexeyAB max=200
    filler = [(0, 0.1, 0.1, 0.25, 0.25)] * 90 + [(1, 0.8, 0.8, 0.55, 0.7)]
    assert run(yolo_model("pjreddie"), z, [filler]).stats["count"] == 90
    assert run(yolo_model("alexeyab"), z, [filler]).stats["count"] == 91


@pytest.mark.parity
@pytest.mark.parametrize("case", golden_params("alexeyab-yolo-fastest-1.1", "alexeyab-yolov4-tiny"))
def test_golden_deltas_costs_and_log_lines(case):
    """The dumps' truths were written 5 floats apart into AlexeyAB's 6-float truth buffer: read
    that way (loss.verify._truths_as_read) everything matches bit for bit; read as given, Darknet's
    positives are not reproduced."""
    from darknetpy.verify import Case

    folder = GOLDEN / case
    case = Case.open(folder)
    exp, model = case.expected(), case.model(train=True)
    zs = [torch.from_numpy(exp[f"train_in_{h.index}"]).view(1, *h.in_shape).clone().requires_grad_(True) for h in model.heads]
    result = NetworkLoss(model, "darknet")(zs, [_truths_as_read(case, model)], seen=64000)
    result.loss.backward()
    for head, z, r, line in zip(model.heads, zs, result.heads, case.info["train_log"]):
        ref = exp[f"train_delta_{head.index}"].reshape(-1)
        scale = float(np.abs(ref).max())
        assert float(np.abs(r.delta.reshape(-1).numpy() - ref).max()) <= 1e-6 * scale, f"layer {head.index} delta"
        assert float(np.abs(-z.grad.reshape(-1).numpy() - ref).max()) <= 1e-6 * scale, f"layer {head.index} -grad"
        assert r.cost == pytest.approx(case.info["train_costs"][str(head.index)], rel=1e-6)
        assert r.line == line
    assert result.cost == pytest.approx(case.info["train_total_cost"], rel=1e-6)
    as_given = NetworkLoss(model, "darknet")([z.detach() for z in zs], [case.info["truth"]])
    counts = [int(re.search(r"count: (\d+)", line)[1]) for line in case.info["train_log"]]
    assert [h.stats["count"] for h in as_given.heads] != counts
