"""Box decoding, box correction, NMS and resizing against literal transcriptions of Darknet's C
loops, and against the decoders that tests/parity/test_opencv.py validates with OpenCV."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from darknetpy import Darknet, parse_cfg_text
from darknetpy.boxes import Detections, box_iou, correct_boxes
from darknetpy.image import letterbox_image, resize_image
from darknetpy.nms import do_nms_obj, do_nms_sort

from ..parity.test_opencv import region_rows, yolo_rows

pytestmark = pytest.mark.unit


def model(body: str, flavor: str, w: int = 64, h: int = 64, c: int = 8) -> Darknet:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Darknet(parse_cfg_text(f"[net]\nwidth={w}\nheight={h}\nchannels={c}\n{body}"), flavor=flavor).eval()


def head_output(m: Darknet, seed: int = 0) -> torch.Tensor:
    """The head's output for a random pre-activation input (the layer before is an identity here)."""
    g = torch.Generator().manual_seed(seed)
    head = m.heads[0]
    x = torch.randn((1,) + tuple(head.in_shape), generator=g) * 2
    return head(x, [])


YOLO = "[yolo]\nclasses=3\nnum=4\nmask=1,3\nanchors=10,14, 23,27, 37,58, 81,82\n{extra}"


@pytest.mark.parametrize("extra", ["", "scale_x_y=1.1\n", "new_coords=1\n"])
def test_yolo_boxes_and_probs_equal_the_opencv_validated_rows(extra):
    m = model(YOLO.format(extra=extra), "alexeyab", 96, 64, 16)  # a 96x64 "image" of 16 channels = 2·(3+5)
    out = head_output(m)
    if extra.startswith("new_coords"):
        out = out.abs()  # new_coords expects the conv's logistic: positive values
    (dets,) = m.heads[0].get_detections(out, 96, 64, [(96, 64)], 0.0, 0.5, letterbox=False)
    rows = yolo_rows(m.heads[0], out.double(), 96, 64)
    assert len(dets) == len(rows) == 96 * 64 * 2
    np.testing.assert_allclose(dets.boxes.numpy(), rows[:, :4], rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(dets.objectness.numpy(), rows[:, 4], rtol=1e-6)
    np.testing.assert_allclose(dets.probs.numpy(), rows[:, 5:], rtol=1e-6, atol=1e-7)


def test_yolo_threshold_drops_low_objectness_and_zeroes_low_probs():
    m = model(YOLO.format(extra=""), "pjreddie", 8, 8, 16)
    out = head_output(m, 3)
    (dets,) = m.heads[0].get_detections(out, 8, 8, [(8, 8)], 0.6, 0.5, letterbox=False)
    assert (dets.objectness > 0.6).all() and len(dets) < 8 * 8 * 2
    assert ((dets.probs == 0) | (dets.probs > 0.6)).all()


REGION = "[region]\nclasses=3\ncoords=4\nnum=2\nsoftmax=1\nanchors=1.1,2.2, 3.3,1.5\n"


@pytest.mark.parametrize("flavor", ["pjreddie", "alexeyab"])
def test_region_boxes_and_probs_equal_the_opencv_validated_rows(flavor):
    m = model(REGION, flavor, 5, 4, 16)
    out = head_output(m, 1)
    (dets,) = m.heads[0].get_detections(out, 160, 128, [(160, 128)], 0.0, 0.5, letterbox=False)
    rows = region_rows(m.heads[0], out.double())
    assert len(dets) == len(rows) == 5 * 4 * 2
    np.testing.assert_allclose(dets.boxes.numpy(), rows[:, :4], rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(dets.probs.numpy(), rows[:, 5:], rtol=1e-6, atol=1e-7)
    expected_obj = rows[:, 4] if flavor == "pjreddie" else np.ones(len(rows))  # AB: objectness 1
    np.testing.assert_allclose(dets.objectness.numpy(), expected_obj, rtol=1e-6)


def test_gaussian_yolo_matches_get_gaussian_yolo_detections_loop():
    body = "[Gaussian_yolo]\nclasses=2\nnum=2\nmask=0,1\nanchors=10,20, 30,15\n"
    m = model(body, "alexeyab", 3, 2, 22)
    out = head_output(m, 2)
    thresh = 0.3
    (dets,) = m.heads[0].get_detections(out, 96, 64, [(96, 64)], thresh, 0.5, letterbox=False)
    v = out[0].view(2, 11, 2, 3).numpy().astype(np.float64)
    expected = []
    for i in range(2 * 3):  # the C loop: cells, then anchors
        row, col = divmod(i, 3)
        for n in range(2):
            e = v[n, :, row, col]
            if e[8] <= thresh:
                continue
            aw, ah = (10, 20) if n == 0 else (30, 15)
            box = [(col + e[0]) / 3, (row + e[2]) / 2, math.exp(e[4]) * aw / 96, math.exp(e[6]) * ah / 64]
            uc = (e[1] + e[3] + e[5] + e[7]) / 4
            probs = [p if p > thresh else 0 for p in (e[8] * e[9 + j] * (1 - uc) for j in range(2))]
            expected.append(box + [e[8]] + probs)
    expected = np.array(expected)
    assert len(dets) == len(expected) > 0
    got = np.concatenate([dets.boxes.numpy(), dets.objectness.numpy()[:, None], dets.probs.numpy()], axis=1)
    np.testing.assert_allclose(got, expected, rtol=2e-6, atol=2e-7)


def test_yolov1_detection_matches_get_detection_detections_loop():
    side, n, classes = 2, 2, 3
    body = f"[connected]\noutput={side * side * (classes + 5 * n)}\nactivation=linear\n[detection]\nclasses={classes}\ncoords=4\nnum={n}\nside={side}\nsqrt=1\nsoftmax=0\n"
    m = model(body, "pjreddie", 2, 2, 1)
    g = torch.Generator().manual_seed(5)
    out = torch.rand(1, side * side * (classes + 5 * n), generator=g)
    (dets,) = m.heads[0].get_detections(out, 64, 64, [(64, 64)], 0.1, 0.5, letterbox=False)
    p = out[0].numpy().astype(np.float64)
    expected = []
    for i in range(side * side):
        row, col = divmod(i, side)
        for k in range(n):
            scale = p[side * side * classes + i * n + k]
            b = p[side * side * (classes + n) + (i * n + k) * 4 :][:4]
            probs = [scale * p[i * classes + j] for j in range(classes)]
            probs = [q if q > 0.1 else 0 for q in probs]
            if any(probs):
                expected.append([(b[0] + col) / side, (b[1] + row) / side, b[2] ** 2, b[3] ** 2, scale] + probs)
    got = np.concatenate([dets.boxes.numpy(), dets.objectness.numpy()[:, None], dets.probs.numpy()], axis=1)
    np.testing.assert_allclose(got, np.array(expected), rtol=2e-6, atol=2e-7)


@pytest.mark.parametrize("image", [(768, 576), (300, 500), (416, 416)])
def test_letterbox_correction_is_correct_yolo_boxes(image):
    iw, ih = image
    g = torch.Generator().manual_seed(0)
    boxes = torch.rand(20, 4, generator=g)
    got = correct_boxes(boxes, iw, ih, 416, 320, letterbox=True).numpy()
    if 416 / iw < 320 / ih:
        new_w, new_h = 416, (ih * 416) // iw
    else:
        new_w, new_h = (iw * 320) // ih, 320
    b = boxes.numpy().astype(np.float64)
    expected = np.stack(
        [(b[:, 0] - (416 - new_w) / 2 / 416) / (new_w / 416), (b[:, 1] - (320 - new_h) / 2 / 320) / (new_h / 320), b[:, 2] * 416 / new_w, b[:, 3] * 320 / new_h],
        axis=1,
    )
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def nms_loop(boxes, probs, objectness, thresh):
    """do_nms_sort written as Darknet's loops (with a stable sort)."""
    keep = [i for i in range(len(boxes)) if objectness[i] != 0]
    probs = probs.copy()
    for k in range(probs.shape[1]):
        order = sorted(keep, key=lambda i: -probs[i, k])
        for a, i in enumerate(order):
            if probs[i, k] == 0:
                continue
            for j in order[a + 1 :]:
                if box_iou(torch.tensor(boxes[i]), torch.tensor(boxes[j])).item() > thresh:
                    probs[j, k] = 0
    return keep, probs


@pytest.mark.parametrize("seed", range(4))
def test_do_nms_sort_equals_the_c_loop(seed):
    g = torch.Generator().manual_seed(seed)
    boxes = torch.cat([torch.rand(40, 2, generator=g), torch.rand(40, 2, generator=g) * 0.4 + 0.3], dim=1)
    probs = torch.rand(40, 3, generator=g) * (torch.rand(40, 3, generator=g) > 0.4)
    objectness = (torch.rand(40, generator=g) > 0.1).float()
    got = do_nms_sort(Detections(boxes, objectness, probs), 0.45)
    keep, expected = nms_loop(boxes.numpy(), probs.numpy(), objectness.numpy(), 0.45)
    np.testing.assert_array_equal(got.probs.numpy(), expected[keep])
    assert (got.probs == 0).sum() > (probs[objectness != 0] == 0).sum()  # something was suppressed


def test_greedy_diou_nms_suppresses_less_than_iou_nms_for_offset_boxes():
    boxes = torch.tensor([[0.5, 0.5, 0.4, 0.4], [0.6, 0.5, 0.4, 0.4]])  # IoU .6, centres apart
    probs = torch.tensor([[0.9], [0.8]])
    dets = Detections(boxes, torch.ones(2), probs)
    assert do_nms_sort(dets, 0.5).probs[1, 0] == 0
    assert do_nms_sort(dets, 0.5, "greedynms").probs[1, 0] == pytest.approx(0.8)  # .6 - (d²/c²)^.6 < .5


def test_do_nms_obj_zeroes_every_class_of_a_suppressed_box():
    boxes = torch.tensor([[0.5, 0.5, 0.4, 0.4], [0.52, 0.5, 0.4, 0.4], [0.1, 0.1, 0.1, 0.1]])
    dets = do_nms_obj(Detections(boxes, torch.tensor([0.9, 0.95, 0.3]), torch.rand(3, 4) + 0.1), 0.45)
    assert dets.objectness.tolist() == pytest.approx([0.0, 0.95, 0.3])
    assert (dets.probs[0] == 0).all() and (dets.probs[1:] > 0).all()


def resize_loop(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """src/image.c:resize_image, float32 like C."""
    c, ih, iw = im.shape
    f = np.float32
    part = np.zeros((c, ih, w), f)
    w_scale = f(iw - 1) / f(w - 1)
    h_scale = f(ih - 1) / f(h - 1)
    for k in range(c):
        for r in range(ih):
            for col in range(w):
                if col == w - 1 or iw == 1:
                    part[k, r, col] = im[k, r, iw - 1]
                else:
                    sx = f(col) * w_scale
                    ix = int(sx)
                    dx = f(sx - f(ix))
                    part[k, r, col] = f((f(1) - dx) * im[k, r, ix]) + f(dx * im[k, r, ix + 1])
    out = np.zeros((c, h, w), f)
    for k in range(c):
        for r in range(h):
            sy = f(r) * h_scale
            iy = int(sy)
            dy = f(sy - f(iy))
            out[k, r] = (f(1) - dy) * part[k, iy]
            if r == h - 1 or ih == 1:
                continue
            out[k, r] = out[k, r] + dy * part[k, iy + 1]
    return out


@pytest.mark.parametrize("size", [(7, 5, 4, 3), (5, 6, 9, 11), (10, 4, 10, 7)])
def test_resize_image_equals_the_c_loops_exactly(size):
    iw, ih, w, h = size
    g = torch.Generator().manual_seed(1)
    im = torch.rand(3, ih, iw, generator=g)
    np.testing.assert_array_equal(resize_image(im, w, h).numpy(), resize_loop(im.numpy(), w, h))


def test_letterbox_pads_with_half_and_centres():
    out = letterbox_image(torch.zeros(3, 10, 20), 16, 16)
    assert out.shape == (3, 16, 16)
    assert (out[:, :4] == 0.5).all() and (out[:, 4:12] == 0).all() and (out[:, 12:] == 0.5).all()


TREE = "animal -1\nvehicle -1\ndog 0\ncat 0\ncar 1\nbike 1\nbus 1\npuppy 2\nhound 2\n"


def tree_region(tmp_path, flavor):
    (tmp_path / "t.tree").write_text(TREE)
    body = f"[region]\nclasses=9\ncoords=4\nnum=1\nsoftmax=1\ntree={tmp_path / 't.tree'}\nanchors=1,1\n"
    return model(body, flavor, 3, 3, 14)


def literal_hierarchy(values, parents):
    v = list(values)
    for j, p in enumerate(parents):
        if p >= 0:
            v[j] *= v[p]
    return v


@pytest.mark.parametrize("hier", [0.1, 0.5, 0.9])
def test_pjreddie_tree_region_picks_hierarchy_top_prediction(tmp_path, hier):
    m = tree_region(tmp_path, "pjreddie")
    out = head_output(m, 7)
    (dets,) = m.heads[0].get_detections(out, 96, 96, [(96, 96)], 0.2, hier, letterbox=False)
    e = m.heads[0].entries(out)[0, 0]  # (size, H, W)
    parents = [-1, -1, 0, 0, 1, 1, 1, 2, 2]
    groups = [(0, 2), (2, 2), (4, 3), (7, 2)]  # (offset, size)
    child = {0: 1, 1: 2, 2: 3}
    rows = []
    for cell in range(9):
        r, c = divmod(cell, 3)
        scale = e[4, r, c].item()
        if scale <= 0.2:
            continue
        v = literal_hierarchy(e[5:, r, c].tolist(), parents)
        p, g = 1.0, 0
        while True:  # hierarchy_top_prediction
            off, size = groups[g]
            best_i = max(range(off, off + size), key=lambda i: (v[i], -i))
            best = v[best_i]
            if p * best > hier:
                p *= best
                if best_i not in child:
                    top = best_i
                    break
                g = child[best_i]
            elif g == 0:
                top = best_i
                break
            else:
                top = parents[groups[g][0]]
                break
        rows.append((top, scale))
    got = [(int(torch.nonzero(p).flatten()[0]), float(p.max())) for p in dets.probs]
    assert got == [(t, pytest.approx(s)) for t, s in rows] and rows


def test_alexeyab_tree_region_keeps_the_deepest_node_above_half(tmp_path):
    m = tree_region(tmp_path, "alexeyab")
    out = head_output(m, 8)
    (dets,) = m.heads[0].get_detections(out, 96, 96, [(96, 96)], 0.2, 0.5, letterbox=False)
    e = m.heads[0].entries(out)[0, 0]
    parents = [-1, -1, 0, 0, 1, 1, 1, 2, 2]
    expected = []
    for cell in range(9):
        r, c = divmod(cell, 3)
        v = literal_hierarchy(e[5:, r, c].tolist(), parents)
        probs = [0.0] * 9
        if e[4, r, c].item() > 0.2:
            found = False
            for j in range(8, -1, -1):
                if not found and v[j] > 0.5:
                    found = True
                    probs[j] = v[j]
        if any(probs):
            expected.append(probs)
    np.testing.assert_allclose(dets.probs.numpy(), np.array(expected).reshape(-1, 9), rtol=1e-6)
    assert len(expected) > 0
