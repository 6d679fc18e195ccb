"""``detector map``/``valid`` pieces on hand-made cases: AP at 0/11/101 points, Darknet's matching rules,
``darknet_iou``, ``read_truths``, COCO mAP against pycocotools, and the ``valid`` result files.

Darknet: AlexeyAB ``src/detector.c:validate_detector_map``, both forks' ``validate_detector`` with
``print_detector_detections``/``print_cocos`` (darknet-reference.md §7.2, §7.3).
"""
from __future__ import annotations

import copy
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from darknetpy import coco_evaluate, evaluate_detections, load_detector, validate
from darknetpy.evaluate import darknet_iou, read_truths
from darknetpy.valid import _image_id, collect_detections

from ..conftest import SHARED, needs_shared

pytestmark = pytest.mark.unit

RUN = SHARED / "runs" / "bccd-darknet"
BCCD_IMAGES = SHARED / "datasets" / "bccd" / "BCCD" / "JPEGImages"
needs_bccd_run = needs_shared("runs/bccd-darknet", "datasets/bccd")

# four truths of one class, far apart; FAR overlaps none of them
TRUTHS = [(0.1, 0.1, 0.1, 0.1), (0.3, 0.3, 0.1, 0.1), (0.5, 0.5, 0.1, 0.1), (0.7, 0.7, 0.1, 0.1)]
FAR = (0.9, 0.1, 0.05, 0.05)


def _image(boxes, probs):
    """One image's detections: ``(N, 4)`` boxes and ``(N, C)`` probs."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return boxes, np.asarray(probs, np.float32).reshape(len(boxes), -1)


def _truths(rows):
    return np.asarray(rows, np.float32).reshape(-1, 5)


# ---- AP of a ranked list --------------------------------------------------------------------------
# Ranked by prob: TP .9, FP .8, TP .7, FP .6, FP .5, TP .4 against 4 truths:
#   rank    1    2    3    4    5    6
#   P       1   1/2  2/3  1/2  2/5  1/2
#   R      1/4  1/4  1/2  1/2  1/2  3/4
# envelope  1   2/3  2/3  1/2  1/2  1/2
# points=0:   1/4·1 + 1/4·2/3 + 1/4·1/2                                  = 13/24
# points=11:  r = 0, .1, .2 -> 1; .3, .4, .5 -> 2/3; .6, .7 -> 1/2; .8, .9, 1 -> 0: (3 + 2 + 1)/11 = 6/11
# points=101: r <= .25 (26 points) -> 1; .26..50 (25) -> 2/3; .51..75 (25) -> 1/2; above -> 0
RANKED = [(TRUTHS[0], 0.9), (FAR, 0.8), (TRUTHS[1], 0.7), (FAR, 0.6), (FAR, 0.5), (TRUTHS[2], 0.4)]
EXPECTED_AP = {0: 13 / 24, 11: 6 / 11, 101: (26 + 25 * 2 / 3 + 25 * 0.5) / 101}


@pytest.mark.parametrize("points", [0, 11, 101])
def test_ap_of_a_ranked_list(points):
    dets = [_image([b for b, _ in RANKED], [p for _, p in RANKED])]
    report = evaluate_detections(dets, [_truths([(0, *t) for t in TRUTHS])], 1, ["cell"], points=points)
    assert report.ap[0] == pytest.approx(EXPECTED_AP[points], abs=1e-12)
    assert report.map == report.ap[0]
    assert (report.tp, report.fp, report.fn) == (3, 3, 1)
    assert report.precision == 0.5 and report.recall == 0.75
    assert report.detections_count == 6 and report.unique_truth_count == 4
    lines = report.text().splitlines()
    assert lines[0] == " detections_count = 6, unique_truth_count = 4  "
    assert lines[1] == f"class_id = 0, name = cell, ap = {EXPECTED_AP[points] * 100:.2f}%   \t (TP = 3, FP = 3) "
    assert lines[3] == " for conf_thresh = 0.25, precision = 0.50, recall = 0.75, F1-score = 0.60 "
    assert lines[-1] == f" mean average precision (mAP@0.50) = {EXPECTED_AP[points]:f}, or {EXPECTED_AP[points] * 100:.2f} % "
    assert lines[-2] == (" IoU threshold = 50 %, used Area-Under-Curve for each unique Recall " if points == 0
                         else f" IoU threshold = 50 %, used {points} Recall-points ")


def test_the_ranking_is_global_over_images_and_thresh_only_sets_the_counts():
    """The same six detections split over two images in a scrambled order give the same AP; -thresh
    moves only the TP/FP/P/R line."""
    first, second = [RANKED[i] for i in (3, 0, 5)], [RANKED[i] for i in (4, 2, 1)]
    dets = [_image([b for b, _ in first], [p for _, p in first]), _image([b for b, _ in second], [p for _, p in second])]
    truths = [_truths([(0, *TRUTHS[0]), (0, *TRUTHS[2])]), _truths([(0, *TRUTHS[1]), (0, *TRUTHS[3])])]
    report = evaluate_detections(dets, truths, 1, points=0, thresh=0.55)
    assert report.ap[0] == pytest.approx(13 / 24, abs=1e-12)
    assert (report.tp, report.fp, report.fn) == (2, 2, 2)  # .9 TP, .8 FP, .7 TP, .6 FP above .55


def test_points_1_and_negative_are_refused():
    from darknetpy import DarknetError

    for points in (1, -1):
        with pytest.raises(DarknetError, match="points"):
            evaluate_detections([], [], 1, points=points)


# ---- matching -------------------------------------------------------------------------------------
# A truth of 3/8 x 1/4 and the same box moved 1/8 to the right: overlap 1/4 x 1/4, union 3/32 + 3/32 - 1/16
# = 1/8, IoU exactly 1/2 in float32 (every value is a short binary fraction).
HALF_TRUTH = (0.5, 0.5, 0.375, 0.25)
HALF_DET = (0.625, 0.5, 0.375, 0.25)


def test_a_match_needs_iou_strictly_above_the_threshold():
    assert darknet_iou(np.array([HALF_DET]), np.array([HALF_TRUTH]))[0, 0] == np.float32(0.5)
    dets, truths = [_image([HALF_DET], [0.9])], [_truths([(0, *HALF_TRUTH)])]
    at = evaluate_detections(dets, truths, 1, iou_thresh=0.5)
    assert at.ap == [0.0] and (at.tp, at.fp, at.fn) == (0, 1, 1)
    below = evaluate_detections(dets, truths, 1, iou_thresh=0.49)
    assert below.ap == [1.0] and (below.tp, below.fp, below.fn) == (1, 0, 0)
    assert below.average_iou == pytest.approx(0.5)


def test_a_truth_is_matched_once_by_the_highest_prob_detection():
    """Truths A and B; two detections on A (.9 exact, .8 shifted) and one on B (.7): ranks TP, FP, TP,
    P = 1, 1/2, 2/3 and R = 1/2, 1/2, 1: AP = 1/2·1 + 1/2·2/3 = 5/6 (1 if the duplicate counted)."""
    a, b = (0.3, 0.3, 0.2, 0.2), (0.7, 0.7, 0.2, 0.2)
    dets = [_image([(0.31, 0.3, 0.2, 0.2), a, b], [0.8, 0.9, 0.7])]  # the duplicate comes first in the image
    report = evaluate_detections(dets, [_truths([(0, *a), (0, *b)])], 1)
    assert report.ap[0] == pytest.approx(5 / 6, abs=1e-12)
    # at -thresh Darknet walks the image in array order: the shifted .8 box takes A first there
    assert (report.tp, report.fp) == (2, 1)


def test_the_score_order_decides_not_the_iou():
    """A lower-prob detection with the better IoU comes second and is the FP."""
    a = (0.5, 0.5, 0.2, 0.2)
    dets = [_image([a, (0.51, 0.5, 0.2, 0.2)], [0.6, 0.9])]
    report = evaluate_detections(dets, [_truths([(0, *a), (0, 0.1, 0.1, 0.05, 0.05)])], 1)
    # ranks: .9 TP (R 1/2, P 1), .6 FP: AP = 1/2
    assert report.ap[0] == pytest.approx(0.5, abs=1e-12)


def test_no_fallback_to_the_second_best_truth():
    """Truths A and B overlap a detection by 2/3 and ~0.54; A is taken by an exact box, so the second
    detection is an FP and B stays unmatched (VOC's rule, §7.3)."""
    a, b = (0.45, 0.5, 0.2, 0.2), (0.55, 0.5, 0.2, 0.2)
    second = (0.49, 0.5, 0.2, 0.2)
    ious = darknet_iou(np.array([second]), np.array([a, b]))[0]
    assert ious[0] == pytest.approx(2 / 3, abs=1e-6) and ious[1] == pytest.approx(0.14 / 0.26, abs=1e-6)
    report = evaluate_detections([_image([a, second], [0.9, 0.8])], [_truths([(0, *a), (0, *b)])], 1)
    assert report.ap[0] == pytest.approx(0.5, abs=1e-12)
    assert (report.tp, report.fp, report.fn) == (1, 1, 1)


def test_only_same_class_truths_match():
    a = (0.5, 0.5, 0.2, 0.2)
    report = evaluate_detections([_image([a], [[0.0, 0.9]])], [_truths([(0, *a)])], 2)
    assert report.ap == [0.0, 0.0] and (report.tp, report.fp, report.fn) == (0, 1, 1)


def test_a_class_without_truths_counts_as_zero_in_the_mean():
    a = (0.5, 0.5, 0.2, 0.2)
    dets = [_image([a, (0.2, 0.2, 0.1, 0.1)], [[0.9, 0.0, 0.0], [0.0, 0.8, 0.0]])]
    report = evaluate_detections(dets, [_truths([(0, *a)])], 3, ["a", "b", "c"])
    assert report.ap == [1.0, 0.0, 0.0]
    assert report.map == pytest.approx(1 / 3, abs=1e-12)
    assert report.truths_per_class == [1, 0, 0] and report.detections_per_class == [1, 1, 0]
    assert report.text().splitlines()[2] == "class_id = 1, name = b, ap = 0.00%   \t (TP = 0, FP = 1) "


def test_a_zero_size_truth_still_counts():
    """BCCD's BloodImage_00343 has such a box: Darknet counts it in unique_truth_count (and it is never matched)."""
    a = (0.5, 0.5, 0.2, 0.2)
    report = evaluate_detections([_image([a], [0.9])], [_truths([(0, *a), (0, 0.3, 0.7, 0.0, 0.0)])], 1)
    assert report.unique_truth_count == 2 and report.fn == 1
    assert report.ap[0] == pytest.approx(0.5, abs=1e-12)


def test_a_difficult_object_drops_its_unmatched_detections_from_the_ranking():
    a, hard = (0.3, 0.3, 0.2, 0.2), (0.7, 0.7, 0.2, 0.2)
    dets = [_image([hard, a], [0.9, 0.8])]
    plain = evaluate_detections(dets, [_truths([(0, *a)])], 1)
    dropped = evaluate_detections(dets, [_truths([(0, *a)])], 1, difficult=[_truths([(0, *hard)])])
    assert plain.ap[0] == pytest.approx(0.5) and dropped.ap[0] == 1.0
    assert dropped.detections_count == 1
    assert dropped.fp == 1  # Darknet counts it at -thresh before dropping it


# ---- darknet_iou and read_truths -----------------------------------------------------------------
def _iou_reference(a, b) -> np.ndarray:
    """IoU in double from the corners."""
    a, b = np.asarray(a, np.float64)[:, None, :], np.asarray(b, np.float64)[None, :, :]
    left = np.maximum(a[..., 0] - a[..., 2] / 2, b[..., 0] - b[..., 2] / 2)
    right = np.minimum(a[..., 0] + a[..., 2] / 2, b[..., 0] + b[..., 2] / 2)
    top = np.maximum(a[..., 1] - a[..., 3] / 2, b[..., 1] - b[..., 3] / 2)
    bottom = np.minimum(a[..., 1] + a[..., 3] / 2, b[..., 1] + b[..., 3] / 2)
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    return inter / (a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter)


def test_darknet_iou_against_the_direct_formula():
    rng = np.random.default_rng(0)
    a = np.column_stack([rng.uniform(0.2, 0.8, (40, 2)), rng.uniform(0.05, 0.5, (40, 2))]).astype(np.float32)
    b = np.column_stack([rng.uniform(0.2, 0.8, (30, 2)), rng.uniform(0.05, 0.5, (30, 2))]).astype(np.float32)
    got = darknet_iou(a, b)
    assert got.shape == (40, 30) and got.dtype == np.float32
    want = _iou_reference(a, b)
    assert np.abs(got - want).max() < 1e-6
    assert (want > 0).sum() > 300 and (want == 0).sum() > 50  # both overlapping and disjoint pairs


def test_darknet_iou_edge_cases():
    box = (0.5, 0.5, 0.25, 0.25)
    got = darknet_iou(np.array([box, box, (0.5, 0.5, 0, 0)]), np.array([box, (0.75, 0.5, 0.25, 0.25), (0.5, 0.5, 0, 0)]))
    assert got[0, 0] == 1.0
    assert got[0, 1] == 0.0  # touching edges (at .625 exactly)
    assert got[2, 2] == 0.0  # 0/0 is 0, not nan
    assert got[0, 2] == 0.0 and not np.isnan(got).any()
    assert darknet_iou(np.zeros((0, 4)), np.array([box])).shape == (0, 1)


def test_read_truths_keeps_zero_size_boxes_and_leaves_out_bad_classes(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("0 0.5 0.5 0.2 0.2\n2 0.282813 0.685417 0 0\n7 0.1 0.1 0.1 0.1\n-1 0.1 0.1 0.1 0.1\n1 0.9 0.9 0.1 0.1\n")
    rows, problems = read_truths(path, classes=3)
    assert rows.dtype == np.float32
    np.testing.assert_array_equal(rows[:, 0], [0, 2, 1])
    np.testing.assert_allclose(rows[1], [2, 0.282813, 0.685417, 0, 0], rtol=0, atol=1e-7)
    assert len(problems) == 2 and "class 7" in problems[0] and "class -1" in problems[1]
    assert all(str(path) in p for p in problems)
    everything, _ = read_truths(path)  # without a class count only negative classes go
    assert everything.shape == (4, 5)


def test_read_truths_stops_at_the_first_group_that_does_not_parse_and_missing_is_empty(tmp_path):
    path = tmp_path / "b.txt"
    path.write_text("0 0.5 0.5 0.2 0.2\n1 0.2 abc 0.1 0.1\n2 0.5 0.5 0.1 0.1\n")
    rows, problems = read_truths(path, 3)
    assert rows.tolist() == [[0, 0.5, 0.5, pytest.approx(0.2), pytest.approx(0.2)]]
    assert len(problems) == 1 and "stopped reading" in problems[0]
    rows, problems = read_truths(tmp_path / "missing.txt", 3)
    assert rows.shape == (0, 5) and "can't open label file" in problems[0]


# ---- COCO mAP against pycocotools -----------------------------------------------------------------
def _synthetic_coco(seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Six images, three categories, boxes of every area range, jittered true detections, false ones,
    120 detections on one image and category (past max_dets=100) and an image with detections only."""
    rng = np.random.default_rng(seed)
    gts, dts = [], []
    for image in range(1, 7):
        for _ in range(int(rng.integers(2, 7))):
            cat = int(rng.integers(1, 4))
            size = float(rng.choice([rng.uniform(8, 30), rng.uniform(35, 90), rng.uniform(100, 250)]))
            w, h = size * rng.uniform(0.7, 1.3), size * rng.uniform(0.7, 1.3)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            gts.append({"image_id": image, "category_id": cat, "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
            for _ in range(int(rng.integers(0, 4))):
                j = rng.normal(0, 0.08, 4) * [w, h, w, h]
                dts.append({"image_id": image, "category_id": cat if rng.random() > 0.15 else int(rng.integers(1, 4)),
                            "bbox": [x + j[0], y + j[1], max(1.0, w + j[2]), max(1.0, h + j[3])], "score": float(rng.random())})
        for _ in range(int(rng.integers(0, 4))):
            w, h = rng.uniform(10, 200, 2)
            dts.append({"image_id": image, "category_id": int(rng.integers(1, 4)),
                        "bbox": [rng.uniform(0, 400), rng.uniform(0, 300), w, h], "score": float(rng.random())})
    for _ in range(120):
        dts.append({"image_id": 2, "category_id": 1, "bbox": [*rng.uniform(0, 300, 2), *rng.uniform(5, 100, 2)],
                    "score": float(rng.random())})
    dts.append({"image_id": 7, "category_id": 2, "bbox": [10.0, 10.0, 50.0, 50.0], "score": 0.9})
    return gts, dts


def pycocotools_stats(gts: list[dict], dts: list[dict], images, categories):
    """``COCOeval`` (bbox) of in-memory dicts: its 12 stats and the per-category mAP@[.50:.95]."""
    pytest.importorskip("pycocotools")
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": [{"id": int(i)} for i in images], "categories": [{"id": int(c)} for c in categories],
                      "annotations": [dict(g, id=k + 1) for k, g in enumerate(gts)]}
        gt.createIndex()
        dt = gt.loadRes(copy.deepcopy(dts)) if dts else COCO()
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"][:, :, :, 0, 2]  # all areas, maxDets=100
    per_category = {}
    for k, c in enumerate(ev.params.catIds):
        values = precision[:, :, k]
        values = values[values > -1]
        per_category[c] = float(values.mean()) if values.size else -1.0
    return ev.stats, per_category


def test_coco_map_equals_pycocotools():
    gts, dts = _synthetic_coco()
    stats, per_category = pycocotools_stats(gts, dts, range(1, 8), [1, 2, 3, 4])  # category 4: no truths
    ours = coco_evaluate(gts, dts, categories=[1, 2, 3, 4], image_ids=range(1, 8))
    got = [ours.map, ours.map50, ours.map75, ours.by_area["small"], ours.by_area["medium"], ours.by_area["large"], ours.ar]
    want = [*stats[:6], stats[8]]
    assert got == pytest.approx(want, abs=1e-6)
    assert ours.per_category == pytest.approx(per_category, abs=1e-6)
    assert per_category[4] == -1.0
    assert 0.2 < ours.map < 0.8 and ours.map50 > ours.map75  # a set that exercises the IoU thresholds


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_coco_map_equals_pycocotools_on_more_sets(seed):
    gts, dts = _synthetic_coco(seed)
    stats, _ = pycocotools_stats(gts, dts, range(1, 8), [1, 2, 3])
    ours = coco_evaluate(gts, dts, categories=[1, 2, 3], image_ids=range(1, 8))
    assert [ours.map, ours.map50, ours.map75, ours.ar] == pytest.approx([*stats[:3], stats[8]], abs=1e-6)


# ---- detector valid: the result files -------------------------------------------------------------
@pytest.fixture(scope="module")
def bccd_two(tmp_path_factory) -> Path:
    """A .data file whose valid list holds two BCCD images (no labels needed for valid)."""
    out = tmp_path_factory.mktemp("valid")
    (out / "valid.txt").write_text("".join(f"{BCCD_IMAGES / n}.jpg\n" for n in ("BloodImage_00007", "BloodImage_00011")))
    (out / "obj.names").write_text("RBC\nWBC\nPlatelets\n")
    (out / "obj.data").write_text(f"classes=3\nvalid={out / 'valid.txt'}\nnames={out / 'obj.names'}\n")
    return out / "obj.data"


def _model(data: Path, flavor: str | None = None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pjreddie names the AlexeyAB-only keys of the cfg
        return load_detector(str(data), str(RUN / "bccd-fastest.cfg"), str(RUN / "bccd-fastest_final.weights"), flavor, fast=True)


def _corners(box, width: int, height: int, offset: float, low: float) -> list[float]:
    """C's ``bbox.x - bbox.w/2. + offset`` etc.: the pixel box is float32 (``b.x *= w``), the edge double,
    stored in a float; clamped to ``[low, w]``/``[low, h]``."""
    x, y, w, h = (np.float32(v) for v in box)
    px, pw = float(x * np.float32(width)), float(w * np.float32(width))
    py, ph = float(y * np.float32(height)), float(h * np.float32(height))
    xmin, xmax = float(np.float32(px - pw / 2.0 + offset)), float(np.float32(px + pw / 2.0 + offset))
    ymin, ymax = float(np.float32(py - ph / 2.0 + offset)), float(np.float32(py + ph / 2.0 + offset))
    return [max(xmin, low), max(ymin, low), min(xmax, float(width)), min(ymax, float(height))]


@needs_bccd_run
def test_valid_voc_files_are_darknets_comp4_lines(bccd_two, tmp_path):
    model = _model(bccd_two)
    report = validate(model, bccd_two, out_dir=tmp_path, format="voc")
    assert [p.name for p in report.files] == ["comp4_det_test_RBC.txt", "comp4_det_test_WBC.txt", "comp4_det_test_Platelets.txt"]
    assert report.images == 2 and report.format == "voc"
    number = r"-?\d+\.\d{6}"  # printf %f
    line_re = re.compile(rf"^(BloodImage_000(?:07|11)) ({number}) ({number}) ({number}) ({number}) ({number})$")
    # AlexeyAB's validate_detector: thresh .001, NMS .6, hier .5, relative=0 boxes of the stretched input
    dets = {Path(d.path).stem: d for d in collect_detections(model, [Path(p) for p in bccd_two.parent.joinpath("valid.txt").read_text().split()],
                                                           0.001, 0.6, None, 0.5)}
    expected_lines = 0
    for j, path in enumerate(report.files):
        want = []
        for ident, d in dets.items():  # print_detector_detections: box by box, the class's file if prob != 0
            for i in np.nonzero(d.probs[:, j])[0]:
                corners = _corners(d.boxes[i], d.width, d.height, 1.0, 1.0)
                want.append(f"{ident} {float(d.probs[i, j]):f} " + " ".join(f"{v:f}" for v in corners))
        got = path.read_text().splitlines()
        assert all(line_re.match(line) for line in got)
        assert got == want
        expected_lines += len(want)
        values = np.array([[float(v) for v in line.split()[2:]] for line in got])
        assert values[:, :2].min() >= 1.0 and values[:, 2].max() <= 640.0 and values[:, 3].max() <= 480.0
        assert (values[:, :2] == 1.0).any()  # boxes past the left/top edge are clamped to 1, 1-based
    assert report.detections == expected_lines > 500
    scores = [float(line.split()[1]) for p in report.files for line in p.read_text().splitlines()]
    assert min(scores) >= 0.001 and min(scores) < 0.005  # AlexeyAB's .001, not pjreddie's .005


@needs_bccd_run
def test_valid_coco_json_and_its_relation_to_the_voc_lines(bccd_two, tmp_path):
    """print_cocos: ``bbox = [xmin, ymin, xmax - xmin, ymax - ymin]`` of the 0-based box clamped to
    ``[0, w]``, so each voc corner is the coco one + 1 (the far edge only where the +1 box is not clamped).
    Hand-checked in one run: BloodImage_00007's first Platelets box, relative x = .37092212, w = .11974475,
    is x·640 = 237.390152 px, 76.636642 px wide: xmin 237.390152 - 38.318321 = 199.071831 (199.071838
    as a float): coco ``"bbox":[199.071838, ...`` and voc ``BloodImage_00007 0.605086 200.071838 ...``."""
    model = _model(bccd_two)
    voc = validate(model, bccd_two, out_dir=tmp_path, format="voc")
    coco = validate(model, bccd_two, out_dir=tmp_path, format="coco")
    assert [p.name for p in coco.files] == ["coco_results.json"] and coco.detections == voc.detections
    text = coco.files[0].read_text()
    assert text.startswith("[\n{\"image_id\":") and text.endswith("}\n]\n")
    row_re = re.compile(r'^\{"image_id":-?\d+, "category_id":\d+, "bbox":\[(-?\d+\.\d{6}, ){3}-?\d+\.\d{6}\], "score":\d+\.\d{6}\},?$')
    assert all(row_re.match(line) for line in text.splitlines()[1:-1])
    rows = json.loads(text)
    assert len(rows) == coco.detections
    assert {r["image_id"] for r in rows} == {0}  # AlexeyAB: atoi(basecfg(path)) of "BloodImage_000.." is 0
    assert {r["category_id"] for r in rows} == {1, 2, 3}  # coco_ids[0..2]
    boxes = np.array([r["bbox"] for r in rows])
    assert boxes[:, :2].min() >= 0 and (boxes[:, 0] + boxes[:, 2]).max() <= 640 + 1e-4 and (boxes[:, 1] + boxes[:, 3]).max() <= 480 + 1e-4
    # the same detections in the same order (box by box, class by class) as the per-class voc lines
    voc_lines = {j: p.read_text().splitlines() for j, p in enumerate(voc.files)}
    taken = {j: 0 for j in voc_lines}
    for r in rows:
        j = r["category_id"] - 1
        fields = voc_lines[j][taken[j]].split()
        taken[j] += 1
        assert float(fields[1]) == pytest.approx(r["score"], abs=1e-6)
        x, y, w, h = r["bbox"]
        assert float(fields[2]) == pytest.approx(x + 1, abs=1e-4) and float(fields[3]) == pytest.approx(y + 1, abs=1e-4)
        assert float(fields[4]) == pytest.approx(min(x + w + 1, 640), abs=1e-4)
        assert float(fields[5]) == pytest.approx(min(y + h + 1, 480), abs=1e-4)
    assert taken == {j: len(v) for j, v in voc_lines.items()}
    first = next(line for line in voc_lines[2] if line.startswith("BloodImage_00007"))
    d = collect_detections(model, [BCCD_IMAGES / "BloodImage_00007.jpg"], 0.001, 0.6, None, 0.5)[0]
    i = int(np.nonzero(d.probs[:, 2])[0][0])
    x, w = float(d.boxes[i, 0]) * 640, float(d.boxes[i, 2]) * 640
    assert float(first.split()[2]) == pytest.approx(x - w / 2 + 1, abs=1e-4)


@needs_bccd_run
def test_valid_pjreddie_letterboxes_keeps_005_and_takes_the_id_after_the_underscore(bccd_two, tmp_path):
    model = _model(bccd_two, "pjreddie")
    voc = validate(model, bccd_two, out_dir=tmp_path / "voc")  # pjreddie's default eval=voc
    assert voc.format == "voc"
    scores = [float(line.split()[1]) for p in voc.files for line in p.read_text().splitlines()]
    assert min(scores) >= 0.005
    paths = [BCCD_IMAGES / "BloodImage_00007.jpg", BCCD_IMAGES / "BloodImage_00011.jpg"]
    assert voc.detections == sum(int(np.count_nonzero(d.probs)) for d in collect_detections(model, paths, 0.005, 0.45, True, 0.5))
    coco = validate(model, bccd_two, out_dir=tmp_path / "coco", format="coco", outfile="bccd")
    assert coco.files == [tmp_path / "coco" / "bccd.json"]
    assert {r["image_id"] for r in json.loads(coco.files[0].read_text())} == {7, 11}  # get_coco_image_id


@pytest.mark.parametrize("path, pjreddie, alexeyab", [
    ("data/coco/images/val2014/COCO_val2014_000000000042.jpg", 42, 0),
    ("/data/images/000000000139.jpg", 139, 139),
    ("/x/BloodImage_00011.jpg", 11, 0),
    ("/my_data/images/000000000139.jpg", 0, 139),  # C's strrchr(path, '_') wins wherever it is
    ("/x/12abc.png", 12, 12),
    ("/x/name.jpg", 0, 0),
])
def test_coco_image_ids_of_both_forks(path, pjreddie, alexeyab):
    assert _image_id(path, "pjreddie") == pjreddie
    assert _image_id(path, "alexeyab") == alexeyab


@needs_bccd_run
def test_evaluate_map_refuses_bad_points_before_reading_anything(bccd_two, tmp_path):
    from darknetpy import DarknetError, evaluate_map

    with pytest.raises(DarknetError, match=r"^points=1: "):
        evaluate_map(_model(bccd_two), tmp_path / "missing.data", points=1)
