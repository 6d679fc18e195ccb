"""pjreddie's [yolo] loss: forward_yolo_layer's deltas, cost and log line (darknet-reference.md §4.1)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from darknetpy.errors import DarknetError
from darknetpy.loss import NetworkLoss

from ...conftest import GOLDEN, golden_params
from . import at, iou, run, sig, yolo_model

pytestmark = pytest.mark.unit

C = 2  # classes of the synthetic head
TRUTH = (1, 0.3, 0.7, 0.55, 0.7)  # cell i=0, j=1; best anchor 32x48 (shape IoU .854) = slot 1


def z0(seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 2 * (C + 5), 2, 2, generator=torch.Generator().manual_seed(seed)) * 0.8


def pred_box(z, slot, j, i, anchor):
    """get_yolo_box from the raw input (pjreddie: logistic on x, y)."""
    return ((i + sig(at(z, slot, 0, j, i))) / 2, (j + sig(at(z, slot, 1, j, i))) / 2,
            math.exp(at(z, slot, 2, j, i)) * anchor[0] / 64, math.exp(at(z, slot, 3, j, i)) * anchor[1] / 64)


def noobj_expected(z, truths, ignore=0.5, anchors=((16, 16), (32, 48))):
    """δ_obj of the noobj pass: -σ, or 0 when the best IoU with any truth is above ignore_thresh."""
    out = {}
    for slot, anchor in enumerate(anchors):
        for j in range(2):
            for i in range(2):
                best = max((iou(pred_box(z, slot, j, i, anchor), t[1:]) for t in truths), default=0)
                out[(slot, j, i)] = 0.0 if best > ignore else -sig(at(z, slot, 4, j, i))
    return out


def positive_expected(z, truth, slot=1, anchor=(32, 48)):
    """The deltas delta_yolo_box/delta_yolo_class write for one truth at its cell."""
    c, x, y, w, h = truth
    i, j = int(x * 2), int(y * 2)
    s = 2 - w * h
    return {
        0: s * (x * 2 - i - sig(at(z, slot, 0, j, i))),
        1: s * (y * 2 - j - sig(at(z, slot, 1, j, i))),
        2: s * (math.log(w * 64 / anchor[0]) - at(z, slot, 2, j, i)),
        3: s * (math.log(h * 64 / anchor[1]) - at(z, slot, 3, j, i)),
        4: 1 - sig(at(z, slot, 4, j, i)),
        5: (1.0 if c == 0 else 0.0) - sig(at(z, slot, 5, j, i)),
        6: (1.0 if c == 1 else 0.0) - sig(at(z, slot, 6, j, i)),
    }


def test_one_truth_every_entry():
    model = yolo_model("pjreddie")
    z = z0()
    r = run(model, z, [[TRUTH]])
    want = torch.zeros_like(z)
    for (slot, j, i), v in noobj_expected(z, [TRUTH]).items():
        want[0, slot * 7 + 4, j, i] = v
    for k, v in positive_expected(z, TRUTH).items():
        want[0, 7 + k, 1, 0] = v
    for slot in range(2):
        for k in range(7):
            for j in range(2):
                for i in range(2):
                    got, exp = at(r.delta, slot, k, j, i), float(want[0, slot * 7 + k, j, i])
                    assert got == pytest.approx(exp, abs=1e-6), f"slot {slot} entry {k} cell ({j},{i}): {got} vs {exp}"
    assert r.cost == pytest.approx(float((want.double() ** 2).sum()), rel=1e-6)  # Σδ²
    assert r.stats["count"] == 1


def test_log_line_format():
    model = yolo_model("pjreddie")
    z = z0()
    r = run(model, z, [[TRUTH]])
    p = pred_box(z, 1, 1, 0, (32, 48))
    v = iou(p, TRUTH[1:])
    no_obj = sum(sig(at(z, s, 4, j, i)) for s in range(2) for j in range(2) for i in range(2)) / 8
    want = (f"Region 2 Avg IOU: {v:f}, Class: {sig(at(z, 1, 6, 1, 0)):f}, Obj: {sig(at(z, 1, 4, 1, 0)):f}, "
            f"No Obj: {no_obj:f}, .5R: {float(v > .5):f}, .75R: {float(v > .75):f},  count: 1")
    assert r.line == want


def test_count_zero_prints_minus_nan():
    model = yolo_model("pjreddie")
    r = run(model, z0(), [[(0, 0.3, 0.7, 60 / 64, 40 / 64)]])  # best anchor 60x40 is not in mask 0,1
    assert r.stats["count"] == 0
    assert r.line.startswith("Region 2 Avg IOU: -nan, Class: -nan, Obj: -nan, No Obj: ")
    assert r.line.endswith(".5R: -nan, .75R: -nan,  count: 0")
    assert float(r.delta[0, 7:11].abs().sum()) == 0  # no box delta anywhere


def test_best_anchor_over_all_num_ties_keep_first():
    # 16x16 and a second 16x16 anchor tie: the first (0) wins, which is in this layer's mask 0,2
    model = yolo_model("pjreddie", mask="0,2", anchors=((16, 16), (32, 48), (16, 16)))
    r = run(model, z0(), [[(0, 0.6, 0.6, 0.25, 0.25)]])
    assert at(r.delta, 0, 4, 1, 1) == pytest.approx(1 - sig(at(z0(), 0, 4, 1, 1)), abs=1e-6)
    assert at(r.delta, 1, 2, 1, 1) == 0  # slot 1 (anchor 2) untouched


def test_class_union_and_box_overwrite_on_a_reused_anchor():
    model = yolo_model("pjreddie")
    z = z0()
    second = (0, 0.35, 0.72, 0.5, 0.75)  # same cell and anchor, class 0
    r = run(model, z, [[TRUTH, second]])
    pos = positive_expected(z, second)
    for k in range(4):  # box: the later truth overwrites
        assert at(r.delta, 1, k, 1, 0) == pytest.approx(pos[k], abs=1e-6), f"box entry {k}"
    # classes: the first truth wrote 0 - p0, 1 - p1; the second only sets its own class to 1 - p0
    assert at(r.delta, 1, 5, 1, 0) == pytest.approx(1 - sig(at(z, 1, 5, 1, 0)), abs=1e-6)
    assert at(r.delta, 1, 6, 1, 0) == pytest.approx(1 - sig(at(z, 1, 6, 1, 0)), abs=1e-6)
    assert r.stats["count"] == 2


def test_class_check_reads_the_first_class_entry():
    """pjreddie's delta_yolo_class tests delta[index] (class 0), not the truth's class: when the
    first truth left δ_0 = 0 (p_0 == 1 exactly), the second truth rewrites every class."""
    model = yolo_model("pjreddie")
    z = z0()
    z[0, 7 + 5, 1, 0] = 30.0  # p_0 rounds to 1.0 in float
    r = run(model, z, [[(0, 0.3, 0.7, 0.55, 0.7), (1, 0.31, 0.71, 0.55, 0.7)]])
    assert at(r.delta, 1, 5, 1, 0) == pytest.approx(-1.0)  # 0 - p_0: reset by the second truth
    assert at(r.delta, 1, 6, 1, 0) == pytest.approx(1 - sig(at(z, 1, 6, 1, 0)), abs=1e-6)


def test_loop_stops_at_the_first_truth_with_x_zero():
    model = yolo_model("pjreddie")
    z = z0()
    a = run(model, z, [[TRUTH]])
    b = run(model, z, [np.array([TRUTH, (0, 0.0, 0.5, 0.2, 0.2), (0, 0.8, 0.8, 0.55, 0.7)], np.float32)])
    torch.testing.assert_close(a.delta, b.delta, rtol=0, atol=0)


def test_ignore_thresh_and_truth_thresh():
    model = yolo_model("pjreddie", "truth_thresh=0.9\n")
    z = z0()
    _, x, y, w, h = TRUTH
    # slot 0 (16x16) of cell (1, 0) predicts the truth box 5% wider: IoU .95 > ignore and > truth_thresh
    # (an exact copy can round to an IoU just above 1, which passes Darknet's default truth_thresh=1)
    z[0, 0, 1, 0] = math.log((x * 2) / (1 - x * 2))
    z[0, 1, 1, 0] = math.log((y * 2 - 1) / (2 - y * 2))
    z[0, 2, 1, 0] = math.log(w * 64 / 16 * 1.05)
    z[0, 3, 1, 0] = math.log(h * 64 / 16)
    r = run(model, z, [[TRUTH]])
    s = 2 - w * h
    assert at(r.delta, 0, 4, 1, 0) == pytest.approx(1 - sig(at(z, 0, 4, 1, 0)), abs=1e-6)
    assert at(r.delta, 0, 2, 1, 0) == pytest.approx(s * (math.log(w * 64 / 16) - at(z, 0, 2, 1, 0)), abs=1e-5)
    assert at(r.delta, 0, 6, 1, 0) == pytest.approx(1 - sig(at(z, 0, 6, 1, 0)), abs=1e-6)
    assert r.stats["count"] == 1  # the truth_thresh positive is not counted
    plain = run(yolo_model("pjreddie"), z, [[TRUTH]])  # truth_thresh=1: only ignored
    assert at(plain.delta, 0, 4, 1, 0) == 0 and at(plain.delta, 0, 2, 1, 0) == 0


def test_at_most_90_truths():
    model = yolo_model("pjreddie")
    z = z0()
    filler = [(0, 0.1, 0.1, 0.25, 0.25)] * 90  # cell (0, 0), anchor 16x16
    last = (1, 0.8, 0.8, 0.55, 0.7)  # cell (1, 1), anchor 32x48: the 91st box
    r = run(model, z, [filler + [last]])
    assert r.stats["count"] == 90
    assert at(r.delta, 1, 4, 1, 1) == pytest.approx(-sig(at(z, 1, 4, 1, 1)), abs=1e-6)


def test_class_not_below_classes_is_refused():
    with pytest.raises(DarknetError, match="truth class 2 is not in 0..1"):
        NetworkLoss(yolo_model("pjreddie"), "darknet")([z0()], [[(2, 0.3, 0.7, 0.55, 0.7)]])


def test_gradcheck_float64_targets_fixed():
    model = yolo_model("pjreddie")
    head = NetworkLoss(model, "darknet").heads[0]
    z = z0().double()
    truths = [torch.tensor([TRUTH, (0, 0.35, 0.72, 0.5, 0.75), (0, 0.8, 0.2, 0.2, 0.3)])]
    with torch.no_grad():
        targets, *_ = head.targets(z, truths)
    assert torch.autograd.gradcheck(lambda v: head.loss_from_targets(v, targets), (z.clone().requires_grad_(True),))


def test_batch_is_per_image():
    model = yolo_model("pjreddie")
    z = torch.cat([z0(1), z0(2)])
    both = run(model, z, [[TRUTH], [(0, 0.8, 0.2, 0.2, 0.3)]])
    one = run(model, z[1:], [[(0, 0.8, 0.2, 0.2, 0.3)]])
    torch.testing.assert_close(both.delta[1:], one.delta, rtol=0, atol=0)


def test_sum_not_mean_pushes_objectness_down():
    """Darknet sums: every empty cell gets the full -σ push. A loss averaged over the cells gives
    each a 1/cells share; with the same steps objectness of empty cells barely moves."""
    model = yolo_model("pjreddie", grid=8, mask="0,1")  # 8x8 grid, 2 anchors: 128 cells
    head = NetworkLoss(model, "darknet").heads[0]
    truths = [torch.tensor([TRUTH])]
    cells = 128

    def train(mean: bool) -> float:
        z = torch.zeros(1, 14, 8, 8, requires_grad=True)
        opt = torch.optim.SGD([z], lr=0.5)
        for _ in range(20):
            opt.zero_grad()
            loss = head(z, truths).loss
            (loss / cells if mean else loss).backward()
            opt.step()
        obj = torch.sigmoid(z.detach().view(1, 2, 7, 8, 8)[:, :, 4])
        return float(obj.sum() - obj[0, 1, 5, 2]) / (cells - 1)  # mean objectness of the empty cells

    z = torch.zeros(1, 14, 8, 8, requires_grad=True)
    head(z, truths).loss.backward()
    assert float(z.grad.view(1, 2, 7, 8, 8)[0, 0, 4, 0, 0]) == pytest.approx(0.5)  # σ(0) - 0: per cell
    summed, averaged = train(False), train(True)
    assert summed < 0.15  # 0.5 -> 0.111 in 20 steps
    assert averaged > 0.485  # 0.5 -> 0.491: a 1/128 share of the gradient barely moves it
    assert (0.5 - averaged) < (0.5 - summed) / 30


@pytest.mark.parity
@pytest.mark.parametrize("case", golden_params("pjreddie-yolov3-slim", "pjreddie-yolov3-tiny-slim"))
def test_golden_deltas_costs_and_log_lines(case):
    from darknetpy.verify import Case

    folder = GOLDEN / case
    case = Case.open(folder)
    exp, model = case.expected(), case.model(train=True)
    zs = [torch.from_numpy(exp[f"train_in_{h.index}"]).view(1, *h.in_shape).clone().requires_grad_(True) for h in model.heads]
    result = NetworkLoss(model, "darknet")(zs, [case.info["truth"]])
    result.loss.backward()
    for head, z, r, line in zip(model.heads, zs, result.heads, case.info["train_log"]):
        ref = exp[f"train_delta_{head.index}"].reshape(-1)
        scale = float(np.abs(ref).max())
        assert float(np.abs(r.delta.reshape(-1).numpy() - ref).max()) <= 1e-6 * scale, f"layer {head.index} delta"
        assert float(np.abs(-z.grad.reshape(-1).numpy() - ref).max()) <= 1e-6 * scale, f"layer {head.index} -grad"
        assert r.cost == pytest.approx(case.info["train_costs"][str(head.index)], rel=1e-6)
        assert r.line == line
    assert result.cost == pytest.approx(case.info["train_total_cost"], rel=1e-6)
