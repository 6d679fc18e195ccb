"""`darknetpy detector map|valid` on 8 BCCD test images: Darknet's printed lines, --json, result files,
and one-line errors with status 2 for bad input."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from darknetpy import voc_to_darknet
from darknetpy.cli import main

from ..conftest import SHARED, needs_shared

pytestmark = [pytest.mark.cli, needs_shared("runs/bccd-darknet", "datasets/bccd")]

RUN = SHARED / "runs" / "bccd-darknet"
BCCD = SHARED / "datasets" / "bccd" / "BCCD"
CFG, WEIGHTS = RUN / "bccd-fastest.cfg", RUN / "bccd-fastest_final.weights"
PCT = r"\d+\.\d\d"


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """Labels of BCCD by voc_to_darknet and a .data file whose valid list holds the first 8 test images."""
    out = tmp_path_factory.mktemp("bccd-cli")
    result = voc_to_darknet(BCCD, out, names=["RBC", "WBC", "Platelets"], train=["train"], valid=["test"], offset=False,
                            link_images=True, name="obj")
    images = result.valid_file.read_text().splitlines()[:8]
    (out / "valid8.txt").write_text("\n".join(images) + "\n")
    data = out / "small.data"
    data.write_text(f"classes=3\nvalid={out / 'valid8.txt'}\nnames={result.names_file}\nresults={out / 'results'}\n")
    return data


def _model_args(data) -> list[str]:
    return [str(data), str(CFG), str(WEIGHTS), "--quiet"]


def test_map_prints_darknets_lines_and_writes_json(small, tmp_path, capsys):
    out_json = tmp_path / "map.json"
    assert main(["detector", "map", *_model_args(small), "--coco", "--json", str(out_json)]) == 0
    lines = capsys.readouterr().out.split("\n")
    assert lines[-1] == ""  # ends with a newline
    lines = lines[:-1]
    m = re.fullmatch(r" detections_count = (\d+), unique_truth_count = (\d+)  ", lines[0])
    assert m, lines[0]
    detections, truths = int(m.group(1)), int(m.group(2))
    for i, name in enumerate(["RBC", "WBC", "Platelets"]):
        assert re.fullmatch(rf"class_id = {i}, name = {name}, ap = {PCT}%   \t \(TP = \d+, FP = \d+\) ", lines[1 + i]), lines[1 + i]
    assert lines[4] == "" and lines[7] == ""
    assert re.fullmatch(r" for conf_thresh = 0\.25, precision = \d\.\d\d, recall = \d\.\d\d, F1-score = \d\.\d\d ", lines[5]), lines[5]
    m = re.fullmatch(rf" for conf_thresh = 0\.25, TP = (\d+), FP = (\d+), FN = (\d+), average IoU = {PCT} % ", lines[6])
    assert m, lines[6]
    tp, fp, fn = (int(g) for g in m.groups())
    assert lines[8] == " IoU threshold = 50 %, used Area-Under-Curve for each unique Recall "
    m = re.fullmatch(rf" mean average precision \(mAP@0\.50\) = (\d\.\d{{6}}), or ({PCT}) % ", lines[9])
    assert m, lines[9]
    assert re.fullmatch(r" COCO mAP@\[\.50:\.95\] = \d\.\d{6}, mAP@\.50 = \d\.\d{6}, mAP@\.75 = \d\.\d{6} "
                        r"\(101 recall points, up to 100 detections per image and class\)", lines[10]), lines[10]
    assert len(lines) == 11

    report = json.loads(out_json.read_text())
    assert f"{report['map']:f}" == m.group(1) and f"{report['map'] * 100:.2f}" == m.group(2)
    assert report["map"] == pytest.approx(sum(c["ap"] for c in report["classes"]) / 3)
    assert [c["name"] for c in report["classes"]] == ["RBC", "WBC", "Platelets"]
    assert (report["detections_count"], report["unique_truth_count"], report["images"]) == (detections, truths, 8)
    assert (report["tp"], report["fp"], report["fn"]) == (tp, fp, fn) and tp + fn == truths
    assert sum(c["truths"] for c in report["classes"]) == truths and sum(c["detections"] for c in report["classes"]) == detections
    assert report["points"] == 0 and report["iou_thresh"] == 0.5 and report["letterbox"] is False
    assert set(report["coco"]) >= {"map", "map50", "map75", "ar", "per_category", "by_area", "max_dets"}
    assert 0 < report["coco"]["map"] < report["coco"]["map50"] <= 1
    assert detections > 1000 and truths > 50 and 0.3 < report["map"] < 1


def test_map_points_iou_and_thresh_options(small, capsys):
    assert main(["detector", "map", *_model_args(small), "-points", "11", "-iou_thresh", "0.75", "-thresh", "0.5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[5].startswith(" for conf_thresh = 0.50, precision = ")
    assert lines[6].startswith(" for conf_thresh = 0.50, TP = ")
    assert lines[8] == " IoU threshold = 75 %, used 11 Recall-points "
    assert re.fullmatch(rf" mean average precision \(mAP@0\.75\) = \d\.\d{{6}}, or {PCT} % ", lines[9])
    assert not any("COCO" in line for line in lines)


def test_valid_writes_the_result_files_and_names_them(small, tmp_path, capsys):
    results = tmp_path / "voc"
    assert main(["detector", "valid", *_model_args(small), "-eval", "voc", "-results", str(results)]) == 0
    out = capsys.readouterr().out.splitlines()
    names = [f"comp4_det_test_{n}.txt" for n in ("RBC", "WBC", "Platelets")]
    assert out[:3] == [str(results / n) for n in names]
    m = re.fullmatch(r"(\d+) detections of 8 images \(voc\)", out[3])
    assert m and len(out) == 4
    lines = [line for n in names for line in (results / n).read_text().splitlines()]
    assert len(lines) == int(m.group(1)) > 0
    assert all(re.fullmatch(r"BloodImage_\d{5}( \d+\.\d{6}){5}", line) for line in lines)

    assert main(["detector", "valid", *_model_args(small), "-eval", "coco", "-out", "bccd8"]) == 0  # results= of the .data file
    out = capsys.readouterr().out.splitlines()
    path = small.parent / "results" / "bccd8.json"
    assert out == [str(path), f"{m.group(1)} detections of 8 images (coco)"]
    rows = json.loads(path.read_text())
    assert len(rows) == int(m.group(1)) and set(rows[0]) == {"image_id", "category_id", "bbox", "score"}


def test_valid_takes_the_format_from_eval_in_the_data_file(small, tmp_path, capsys):
    images = (small.parent / "valid8.txt").read_text().splitlines()[:2]
    (tmp_path / "valid2.txt").write_text("\n".join(images) + "\n")
    data = tmp_path / "voc.data"
    data.write_text(f"classes=3\nvalid={tmp_path / 'valid2.txt'}\nnames={small.parent / 'obj.names'}\neval=voc\nresults={tmp_path / 'r'}\n")
    assert main(["detector", "valid", *_model_args(data)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == str(tmp_path / "r" / "comp4_det_test_RBC.txt") and out[-1].endswith(" detections of 2 images (voc)")


@pytest.mark.parametrize("verb", ["map", "valid"])
def test_bad_input_is_one_line_and_status_2(small, tmp_path, capsys, verb):
    missing_data = tmp_path / "missing.data"
    assert main(["detector", verb, *_model_args(missing_data)]) == 2
    err = capsys.readouterr().err
    assert err == f"darknetpy: {missing_data}: .data file not found\n"

    no_list = tmp_path / "nolist.data"
    no_list.write_text(small.read_text().replace("valid8.txt", "absent.txt"))
    assert main(["detector", verb, *_model_args(no_list)]) == 2
    err = capsys.readouterr().err
    assert err == f"darknetpy: {small.parent / 'absent.txt'}: image list not found\n"

    few_names = tmp_path / "two.names"
    few_names.write_text("RBC\nWBC\n")
    wrong = tmp_path / "wrong.data"
    wrong.write_text(f"classes=2\nvalid={small.parent / 'valid8.txt'}\nnames={few_names}\n")
    assert main(["detector", verb, *_model_args(wrong)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("darknetpy: ") and err.count("\n") == 1 and "classes=3" in err


def test_map_refuses_one_recall_point(small, capsys):
    assert main(["detector", "map", *_model_args(small), "-points", "1"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "darknetpy: points=1: use 0 (area under the curve), 11 or 101\n" and captured.out == ""
