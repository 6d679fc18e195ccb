"""``detector calc_anchors``: glibc's rand(), Darknet's k-means, its printed lines and files, BCCD against Darknet's run."""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from darknetpy import DataError, calc_anchors
from darknetpy.anchors import GlibcRand, anchors_avg_iou, darknet_kmeans

from ..conftest import SHARED, needs_shared

pytestmark = pytest.mark.unit

BCCD = SHARED / "datasets" / "bccd" / "BCCD"
RUN = SHARED / "runs" / "bccd-darknet"
BCCD_CLASSES = {"RBC": 0, "WBC": 1, "Platelets": 2}


def write_bccd_labels(out: Path, split: str = "train") -> Path:
    """BCCD's VOC boxes as Darknet labels, with the reference run's convention (no voc_label.py offset):
    ``x = (xmin + xmax)/2/width``, ``w = (xmax − xmin)/width``; RBC 0, WBC 1, Platelets 2. Returns the .data file."""
    ids = (BCCD / "ImageSets" / "Main" / f"{split}.txt").read_text().split()
    (out / "labels").mkdir(parents=True)
    images = []
    for name in ids:
        root = ET.parse(BCCD / "Annotations" / f"{name}.xml").getroot()
        width, height = float(root.findtext("size/width")), float(root.findtext("size/height"))
        rows = []
        for obj in root.iter("object"):
            box = obj.find("bndbox")
            x0, y0, x1, y1 = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            cls = BCCD_CLASSES[obj.findtext("name")]
            rows.append(f"{cls} {(x0 + x1) / 2 / width} {(y0 + y1) / 2 / height} {(x1 - x0) / width} {(y1 - y0) / height}")
        (out / "labels" / f"{name}.txt").write_text("\n".join(rows) + "\n")
        images.append(str(out / "JPEGImages" / f"{name}.jpg"))  # AlexeyAB: /JPEGImages/ -> /labels/
    (out / "train.txt").write_text("\n".join(images) + "\n")
    data = out / "obj.data"
    data.write_text(f"classes=3\ntrain={out / 'train.txt'}\nnames=unused.names\n")
    return data


@pytest.fixture(scope="module")
def bccd_data(tmp_path_factory) -> Path:
    return write_bccd_labels(tmp_path_factory.mktemp("bccd"))


def _tiny_data(folder: Path, labels: dict[str, str], classes: int = 2) -> Path:
    (folder / "labels").mkdir()
    images = []
    for name, text in labels.items():
        if text is not None:
            (folder / "labels" / f"{name}.txt").write_text(text)
        images.append(str(folder / "JPEGImages" / f"{name}.jpg"))
    (folder / "train.txt").write_text("\n".join(images) + "\n")
    data = folder / "tiny.data"
    data.write_text(f"classes={classes}\ntrain={folder / 'train.txt'}\n")
    return data


# ---- glibc rand() and sample() ------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2, 42, 2**31 - 1, 2**31, 2**32 - 1, 1_700_000_000])
def test_glibc_rand_is_libc_rand_after_srand(seed):
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "gnu_get_libc_version"):
        pytest.skip("not a glibc system")
    libc.srand(ctypes.c_uint(seed))
    expected = [libc.rand() for _ in range(2000)]
    rng = GlibcRand(seed)
    assert [rng.rand() for _ in range(2000)] == expected


def test_glibc_rand_known_values_and_zero_seed_is_one():
    assert [GlibcRand(1).rand() for _ in range(1)] == [1804289383]
    a, b = GlibcRand(0), GlibcRand(1)
    assert [a.rand() for _ in range(5)] == [b.rand() for _ in range(5)]


def test_sample_is_a_permutation():
    s = GlibcRand(7).sample(100)
    assert sorted(s) == list(range(100)) and s != list(range(100))


# ---- do_kmeans ----------------------------------------------------------------------------------

def test_kmeans_two_obvious_clusters_by_iou():
    points = np.array([[10, 10], [12, 12], [100, 50], [110, 60], [11, 11]], np.float32)
    run = darknet_kmeans(points, 2, GlibcRand(3))
    centers = sorted(map(tuple, run.centers.tolist()))
    assert centers == [(11.0, 11.0), (105.0, 55.0)]
    assert run.assignments[0] == run.assignments[1] == run.assignments[4] != run.assignments[2] == run.assignments[3]


def test_kmeans_one_cluster_is_the_mean_at_once():
    points = np.array([[10, 20], [30, 40]], np.float32)
    run = darknet_kmeans(points, 1, GlibcRand(1))
    assert run.centers.tolist() == [[20.0, 30.0]]
    assert run.iterations == 0  # do_kmeans: k == 1 runs one maximization before the loop


def test_kmeans_zero_size_point_goes_to_the_first_centre():
    points = np.array([[0, 0], [10, 10], [50, 50], [52, 52]], np.float32)
    # 1 − IoU is 1 to every centre (NaN to a zero centre): closest_center keeps centre 0
    run = darknet_kmeans(points, 2, GlibcRand(5))
    first = int(run.assignments[0])
    assert first == 0


def test_kmeans_refuses_more_clusters_than_boxes():
    with pytest.raises(DataError, match="num_of_clusters=3"):
        darknet_kmeans(np.ones((2, 2), np.float32), 3, GlibcRand(1))


def test_avg_iou_by_hand():
    points = np.array([[10, 10], [20, 10], [0, 0]], np.float32)
    anchors = np.array([[10, 10]], np.float32)
    # IoUs 1, 0.5 and 0 (the zero-size box counts in the mean): 100·1.5/3
    assert anchors_avg_iou(points, anchors) == pytest.approx(50.0)


# ---- calc_anchors: lines, files, label handling -------------------------------------------------

def test_lines_files_and_wrong_labels(tmp_path):
    data = _tiny_data(tmp_path, {
        "a": "0 0.5 0.5 0.1 0.2\n1 0.5 0.5 0.4 0.4\n",
        "b": "1 0.5 0.5 0.0 0.3\n4 0.2 0.2 0.1 0.1\n",  # a zero width (Darknet: Wrong label, kept) and class 4 > classes
        "c": None,  # no label file
    })
    out = tmp_path / "out"
    out.mkdir()
    report = calc_anchors(data, 2, 100, 100, seed=3, output_dir=out)
    assert report.counters_per_class == [1, 2, 0, 0, 1]  # grows past classes=2, as Darknet's realloc
    assert report.number_of_boxes == 4 and report.number_of_images == 3
    lines = str(report).splitlines()
    assert lines[0] == " num_of_clusters = 2, width = 100, height = 100 "
    assert lines[1] == (f"Wrong label: {tmp_path / 'labels' / 'b.txt'} - j = 0, x = 0.500000, y = 0.500000, "
                        "width = 0.000000, height = 0.300000 ")
    assert lines[2].startswith("Can't open label file. (This can be normal only if you use MSCOCO): ")
    assert lines[3:6] == [" all loaded. ", " calculating k-means++ ...", f" iterations = {report.iterations} "]
    assert lines[6] == "counters_per_class = 1, 2, 0, 0, 1"
    assert lines[7] == f" avg IoU = {report.avg_iou:2.2f} % "
    assert lines[8:] == ["Saving anchors to the file: anchors.txt ", "anchors = " + report.anchors_text()]
    assert (out / "anchors.txt").read_text() == report.anchors_text()
    assert (out / "counters_per_class.txt").read_text() == "counters_per_class = 1, 2, 0, 0, 1"
    areas = report.anchors[:, 0] * report.anchors[:, 1]
    assert list(areas) == sorted(areas)


def test_small_width_prints_four_decimals(tmp_path):
    data = _tiny_data(tmp_path, {"a": "0 0.5 0.5 0.1 0.2\n0 0.5 0.5 0.4 0.4\n"})
    report = calc_anchors(data, 2, 13, 13, output_dir=None)
    assert report.anchors_text() == "1.3000,2.6000, 5.2000,5.2000"


def test_negative_class_is_skipped_and_named(tmp_path):
    data = _tiny_data(tmp_path, {"a": "-1 0.5 0.5 0.1 0.2\n0 0.5 0.5 0.4 0.4\n0 0.5 0.5 0.2 0.2\n"})
    report = calc_anchors(data, 1, 100, 100, output_dir=None)
    assert report.number_of_boxes == 2
    assert "class -1" in report.problems[0]


@pytest.mark.parametrize("kwargs, match", [
    ({"num_of_clusters": 3, "width": 100, "height": 100}, "num_of_clusters=3"),
    ({"num_of_clusters": 1, "width": -1, "height": 100}, "set -width and -height"),
    ({"num_of_clusters": 1, "width": 100, "height": 100, "restarts": 0}, "restarts=0"),
])
def test_bad_arguments(tmp_path, kwargs, match):
    data = _tiny_data(tmp_path, {"a": "0 0.5 0.5 0.1 0.2\n0 0.5 0.5 0.4 0.4\n"})
    with pytest.raises(DataError, match=match):
        calc_anchors(data, output_dir=None, **kwargs)


def test_no_boxes_is_an_error(tmp_path):
    data = _tiny_data(tmp_path, {"a": ""})
    with pytest.raises(DataError, match="no boxes"):
        calc_anchors(data, 1, 100, 100, output_dir=None)


# ---- BCCD against Darknet's run -----------------------------------------------------------------

@needs_shared("datasets/bccd", "runs/bccd-darknet")
def test_bccd_k6_320_is_stable_and_at_least_darknet(bccd_data, tmp_path):
    reference = json.loads((RUN / "reference.json").read_text())["calc_anchors"]
    first = calc_anchors(bccd_data, 6, 320, 320, output_dir=tmp_path)
    again = calc_anchors(bccd_data, 6, 320, 320, output_dir=None)
    print(f"\nBCCD k=6 320x320, seed 0, {first.restarts} runs: anchors = {first.anchors_text()}, avg IoU {first.avg_iou:.4f} % "
          f"(run {first.kept_run + 1}, {first.iterations} iterations); Darknet: {reference['anchors']}, {reference['avg_iou']:.2f} %")
    assert np.array_equal(first.anchors, again.anchors) and first.avg_iou == again.avg_iou
    assert round(first.avg_iou, 2) >= reference["avg_iou"]
    assert first.counters_per_class == [2382, 214, 209]  # Darknet's line, the zero-size box included
    assert first.number_of_boxes == 2805 and first.number_of_images == 205
    wrong = [line for line in first.wrong_labels if "BloodImage_00343" in line]
    assert len(first.wrong_labels) == 1 and wrong[0].endswith(
        "BloodImage_00343.txt - j = 3, x = 0.282813, y = 0.685417, width = 0.000000, height = 0.000000 ")
    darknet = [line.replace("\r", "") for line in (RUN / "calc_anchors-k6-320.txt").read_text().splitlines()]
    darknet = [line for line in darknet if line.strip()][2:]  # after Darknet's GPU/OpenCV banner
    ours = str(first).splitlines()
    assert len(ours) == len(darknet)
    for mine, theirs in zip(ours, darknet):  # the same lines, numbers and label folder apart
        assert mine.split("=")[0].split(":")[0] == theirs.split("=")[0].split(":")[0]
    assert (tmp_path / "anchors.txt").read_text() == first.anchors_text()


@needs_shared("datasets/bccd")
def test_bccd_run_one_is_a_single_darknet_run_and_restarts_only_improve(bccd_data):
    single = calc_anchors(bccd_data, 6, 320, 320, seed=5, restarts=1, output_dir=None)
    many = calc_anchors(bccd_data, 6, 320, 320, seed=5, restarts=8, output_dir=None)
    assert many.run_avg_ious[0] == single.avg_iou
    assert many.avg_iou == max(many.run_avg_ious) >= single.avg_iou
    other = calc_anchors(bccd_data, 6, 320, 320, seed=6, restarts=1, output_dir=None)
    assert other.avg_iou != single.avg_iou  # the seed matters


@needs_shared("datasets/bccd", "runs/bccd-darknet")
def test_bccd_darknets_anchors_give_darknets_average(bccd_data):
    """Darknet's printed anchors (rounded) score 86.00 % only with the zero-size box counted."""
    reference = json.loads((RUN / "reference.json").read_text())["calc_anchors"]
    report = calc_anchors(bccd_data, 6, 320, 320, restarts=1, output_dir=None)
    anchors = np.asarray(reference["anchors"], np.float32).reshape(-1, 2)
    with_box = anchors_avg_iou(report.points, anchors)
    kept = (report.points > 0).all(axis=1)
    without = anchors_avg_iou(report.points[kept], anchors)
    print(f"\nDarknet's rounded anchors: avg IoU {with_box:.3f} % over 2805 boxes, {without:.3f} % without the zero-size box")
    assert abs(with_box - reference["avg_iou"]) < abs(without - reference["avg_iou"])
