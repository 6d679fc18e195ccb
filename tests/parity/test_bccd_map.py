"""``detector map`` on BCCD against AlexeyAB Darknet's own run (shared/runs/bccd-darknet).

The labels come from ``voc_to_darknet`` (plain centres, as the reference run), the model is the run's
final weights, and the detections of the 72 test images are computed once (JPEGs decoded with stb_image's
pixels, as Darknet) and scored at ``-points 0`` and ``-points 11``. Darknet's logs lost some lines where
its ``rank = ...\\r`` progress overwrote them; the lines that are there must be ours exactly (the mAP's
``%f`` to 1e-6).
"""
from __future__ import annotations

import json
import re

import pytest

from darknetpy import coco_evaluate, evaluate_detections, evaluate_map, load_detector, voc_to_darknet
from darknetpy import evaluate as evaluate_module
from darknetpy.cocoeval import to_coco

from ..conftest import SHARED, needs_shared

pytestmark = [pytest.mark.parity, pytest.mark.slow,  # one pass over 72 images: 8-20 s
              needs_shared("runs/bccd-darknet", "datasets/bccd")]

RUN = SHARED / "runs" / "bccd-darknet"
BCCD = SHARED / "datasets" / "bccd" / "BCCD"
NAMES = ["RBC", "WBC", "Platelets"]
TRUTHS_PER_CLASS = [805, 71, 69]
PREFIXES = ("class_id = ", " for conf_thresh = ", " IoU threshold = ", " mean average precision", " detections_count = ")


@pytest.fixture(scope="module")
def bccd(tmp_path_factory):
    """The .data file (valid = ImageSets/Main/test.txt), the model and its evaluation at -points 0 with
    the detections it used, captured so that -points 11 needs no second pass over the images."""
    out = tmp_path_factory.mktemp("bccd-map")
    result = voc_to_darknet(BCCD, out, names=NAMES, train=["train"], valid=["test"], offset=False, link_images=True, name="obj")
    data = out / "obj.data"
    model = load_detector(str(data), str(RUN / "bccd-fastest.cfg"), str(RUN / "bccd-fastest_final.weights"), fast=True)
    captured = {}
    real = evaluate_module.collect_detections

    def spy(*args, **kwargs):
        captured["dets"] = real(*args, **kwargs)
        return captured["dets"]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluate_module, "collect_detections", spy)
        report = evaluate_map(model, data, points=0, decoder="stb")
    return {"data": data, "model": model, "report": report, "dets": captured["dets"], "result": result}


@pytest.fixture(scope="module")
def reports(bccd):
    """Both point modes from the same detections and truths (as evaluate_map reads them)."""
    from darknetpy.data import label_path
    from darknetpy.evaluate import read_truths

    truths = [read_truths(label_path(d.path, "alexeyab"), 3)[0] for d in bccd["dets"]]
    pairs = [(d.boxes, d.probs) for d in bccd["dets"]]
    return {points: evaluate_detections(pairs, truths, 3, NAMES, points=points) for points in (0, 11)}, truths


def reference() -> dict:
    return json.loads((RUN / "reference.json").read_text())


def darknet_lines(points: int) -> list[str]:
    """The result lines of map-points<N>.txt (the ``\\r`` progress split off)."""
    text = (RUN / f"map-points{points}.txt").read_text()
    lines = [part for line in text.split("\n") for part in line.split("\r")]
    return [line for line in lines if line.startswith(PREFIXES)]


def test_the_labels_are_the_reference_runs(bccd):
    assert bccd["result"].data_file == bccd["data"]
    assert bccd["result"].valid_file.read_text().count("\n") == 72
    assert bccd["report"].problems == []  # every test label reads (BloodImage_00343's zero-size box is in the train split)


def test_evaluate_map_is_evaluate_detections_of_its_detections(bccd, reports):
    api, ours = bccd["report"].as_dict(), reports[0][0].as_dict()
    for d in (api, ours):
        d.pop("seconds"), d.pop("letterbox")
    assert api == ours
    assert bccd["report"].letterbox is False  # bccd-fastest.cfg has no letter_box: stretched, as Darknet's run
    assert bccd["report"].images == 72


@pytest.mark.parametrize("points", [0, 11])
def test_map_and_class_aps_match_darknet(reports, points):
    report = reports[0][points]
    ref = reference()
    assert report.map == pytest.approx(ref[f"map50_points{points}"], abs=0.002)
    for name, ap in zip(report.names, report.ap):
        assert ap * 100 == pytest.approx(ref[f"ap_points{points}"][name], abs=0.5), name
    assert report.detections_count == 19791 and report.unique_truth_count == 945
    at = ref["at_thresh_0.25"]
    assert (report.tp, report.fp, report.fn) == (at["tp"], at["fp"], at["fn"])
    assert round(report.average_iou * 100, 2) == at["average_iou"]
    assert [round(v, 2) for v in (report.precision, report.recall, report.f1)] == [at["precision"], at["recall"], at["f1"]]


@pytest.mark.parametrize("points", [0, 11])
def test_printed_lines_equal_darknets(reports, points):
    ours = reports[0][points].text().splitlines()
    theirs = darknet_lines(points)
    assert len(theirs) >= 6  # detections_count, two class lines, two conf_thresh lines, IoU threshold, mAP
    for line in theirs:
        if line.startswith(" mean average precision"):
            mine = next(m for m in ours if m.startswith(" mean average precision"))
            pattern = r" mean average precision \(mAP@0\.50\) = (\d\.\d{6}), or (\d+\.\d\d) % "
            (got, got_pct), (want, want_pct) = re.fullmatch(pattern, mine).groups(), re.fullmatch(pattern, line).groups()
            assert abs(float(got) - float(want)) <= 1.5e-6 and got_pct == want_pct
        else:
            assert line in ours, line


def test_the_lost_class_0_line_follows_from_darknets_totals(reports):
    """Darknet's logs lost ``class_id = 0`` (overwritten by the progress line); its TP/FP are the
    totals of the ``conf_thresh`` line minus the two class lines that are there."""
    at = reference()["at_thresh_0.25"]
    for points in (0, 11):
        report = reports[0][points]
        assert report.tp_per_class == [at["tp"] - 41 - 37, 41, 37] and report.fp_per_class == [at["fp"] - 11 - 51, 11, 51]
        assert report.truths_per_class == TRUTHS_PER_CLASS


def test_coco_map_of_the_bccd_detections_equals_pycocotools(bccd, reports):
    from ..unit.test_evaluate import pycocotools_stats

    truths = reports[1]
    gts, dts = to_coco(bccd["dets"], truths)
    ours = coco_evaluate(gts, dts, range(3), range(1, 73))
    stats, per_category = pycocotools_stats(gts, dts, range(1, 73), range(3))
    assert [ours.map, ours.map50, ours.map75, ours.ar] == pytest.approx([*stats[:3], stats[8]], abs=1e-6)
    assert ours.per_category == pytest.approx(per_category, abs=1e-6)
    assert 0 < ours.map < ours.map50 < 1
