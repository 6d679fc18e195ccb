"""`darknetpy data voc|coco|split|check|stats`: exit codes, printed summaries, files written."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from darknetpy.cli import main

from ..conftest import ROOT
from ..unit.data import write_image, write_planted, write_voc
from ..unit.data.test_voc import BCCD, needs_bccd

pytestmark = pytest.mark.cli


@needs_bccd
def test_bccd_voc_then_check_reports_the_zero_size_box(tmp_path, capsys):
    args = ["data", "voc", str(BCCD), "-o", str(tmp_path), "--names", "RBC,WBC,Platelets", "--train", "train",
            "--valid", "test", "--no-offset", "--link-images"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("364 images, 4888 boxes (RBC 4155, WBC 372, Platelets 361)")
    assert f"data: {tmp_path / 'bccd.data'}" in out
    assert main(["data", "check", str(tmp_path / "bccd.data")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"error: {tmp_path / 'BCCD' / 'labels' / 'BloodImage_00343.txt'}:4: box of zero size (w = 0.0, h = 0.0)"
    assert out[2].split() == ["zero-size", "box", "error", "1", "1"]
    assert out[-2] == "277 images (train 205, valid 72), 277 label files, 3749 boxes (RBC 3186, WBC 285, Platelets 278)"
    assert out[-1] == "1 errors, 0 warnings"


def test_check_exit_codes(tmp_path, capsys):
    clean = write_planted(tmp_path / "clean", only=["good.jpg"])
    assert main(["data", "check", str(clean), "--classes", "3"]) == 0
    warned = write_planted(tmp_path / "warned", only=["good.jpg", "empty.jpg"])
    assert main(["data", "check", str(warned), "--classes", "3"]) == 0
    assert main(["data", "check", str(warned), "--classes", "3", "--strict"]) == 1
    bad = write_planted(tmp_path / "bad")
    capsys.readouterr()
    assert main(["data", "check", str(bad), "--classes", "3", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert not out.startswith("error:") and out.rstrip().endswith("9 errors, 4 warnings")
    assert main(["data", "check", str(tmp_path / "nothing.data")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("darknetpy: ") and err.count("\n") == 1


def test_voc_split_coco_and_stats(tmp_path, capsys):
    voc = write_voc(tmp_path / "cells", {"a": [("cell", 10, 10, 30, 30, 0)], "b": [("cell", 5, 5, 9, 9, 0)]}, {"train": ["a"], "val": ["b"]})
    assert main(["data", "voc", str(voc), "-o", str(tmp_path / "out"), "--valid", "val", "--train", "train"]) == 0
    assert (tmp_path / "out" / "cells.data").read_text().startswith("classes=1\ntrain=")
    (tmp_path / "cells.names").write_text("cell\n")
    assert main(["data", "split", str(voc / "JPEGImages"), "-o", str(tmp_path / "split"), "--valid", "0.5", "--seed", "3",
                 "--names", str(tmp_path / "cells.names")]) == 0
    assert "1 train, 1 valid images" in capsys.readouterr().out
    assert main(["data", "stats", str(tmp_path / "split" / "cells.data"), "--png", str(tmp_path / "sizes.png")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split()[:4] == ["0", "cell", "2", "2"] and (tmp_path / "sizes.png").stat().st_size > 0
    write_image(tmp_path / "coco" / "images" / "val2017" / "x.jpg")
    (tmp_path / "coco" / "annotations").mkdir()
    (tmp_path / "coco" / "annotations" / "instances_val2017.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "x.jpg", "width": 100, "height": 50}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 90, "bbox": [0, 0, 50, 25]}],
        "categories": [{"id": 90, "name": "toothbrush"}]}))
    assert main(["data", "coco", str(tmp_path / "coco" / "annotations" / "instances_val2017.json")]) == 0
    assert (tmp_path / "coco" / "labels" / "val2017" / "x.txt").read_text() == "79 0.25 0.25 0.5 0.5\n"


def test_tools_script_is_the_same_command(tmp_path):
    folder = write_planted(tmp_path / "obj", only=["good.jpg", "zero.jpg"])
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "check_labels.py"), str(folder), "--classes", "3"],
                         capture_output=True, text=True, cwd=ROOT, check=False)
    assert run.returncode == 1 and "zero.txt:1: box of zero size" in run.stdout
