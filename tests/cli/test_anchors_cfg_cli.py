"""``detector calc_anchors``, ``cfg classes`` and ``cfg diff`` on the command line."""
from __future__ import annotations

import json
import warnings

import pytest

import darknetpy as dp
from darknetpy.cli import main

from ..conftest import ROOT

pytestmark = pytest.mark.cli


@pytest.fixture
def tiny_data(tmp_path):
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.1 0.2\n1 0.5 0.5 0.4 0.4\n1 0.3 0.3 0.42 0.38\n")
    (tmp_path / "labels" / "b.txt").write_text("0 0.5 0.5 0.12 0.2\n1 0.5 0.5 0.0 0.3\n")
    (tmp_path / "train.txt").write_text(f"{tmp_path}/JPEGImages/a.jpg\n{tmp_path}/JPEGImages/b.jpg\n")
    data = tmp_path / "obj.data"
    data.write_text(f"classes=2\ntrain={tmp_path / 'train.txt'}\n")
    return data


def test_calc_anchors_prints_darknets_lines_and_writes_its_files(tiny_data, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    status = main(["detector", "calc_anchors", str(tiny_data), "-num_of_clusters", "2", "-width", "416", "-height", "416", "-show"])
    out = capsys.readouterr().out.splitlines()
    assert status == 0
    assert out[0] == " num_of_clusters = 2, width = 416, height = 416 "
    assert out[1].startswith("Wrong label: ") and out[1].endswith(" - j = 1, x = 0.500000, y = 0.500000, width = 0.000000, height = 0.300000 ")
    assert out[5] == "counters_per_class = 2, 3"
    assert out[6].startswith(" avg IoU = ") and out[6].endswith(" % ")
    anchors = (work / "anchors.txt").read_text()
    assert out[8] == "anchors = " + anchors and len(anchors.replace(",", " ").split()) == 4
    assert (work / "counters_per_class.txt").read_text() == "counters_per_class = 2, 3"
    assert out[9].startswith("darknetpy: kept run ") and f"of {dp.DEFAULT_RESTARTS} k-means runs from srand(0)" in out[9]


def test_calc_anchors_seed_and_single_run(tiny_data, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["detector", "calc_anchors", str(tiny_data), "-num_of_clusters", "2", "-width", "416", "-height", "416", "--seed", "9", "--restarts", "1"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first
    assert first.splitlines()[-1] == "darknetpy: one k-means run from srand(9), as Darknet's"


def test_calc_anchors_without_a_size_is_one_line_and_status_2(tiny_data, capsys):
    assert main(["detector", "calc_anchors", str(tiny_data), "-num_of_clusters", "2"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["darknetpy: set -width and -height (got -1 x -1)"]


def test_cfg_classes_writes_a_cfg_whose_summary_has_the_new_heads(tmp_path, capsys):
    out = tmp_path / "yolov3-44.cfg"
    assert main(["cfg", "classes", "44", str(ROOT / "cfg" / "yolov3.cfg"), str(out), "--max-batches"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "[net] max_batches: 500200 -> 88000  (AlexeyAB: 2000·classes, at least 6000)"
    assert printed[-1] == f"Wrote {out} (8 changes, comments kept)"
    assert "# Testing" in out.read_text()  # yolov3.cfg's comments are still there
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["summary", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    heads = [layer["index"] for layer in summary["layers"] if layer["type"] == "yolo"]
    assert [summary["layers"][i - 1]["out_c"] for i in heads] == [147, 147, 147]
    assert [summary["layers"][i]["out_c"] for i in heads] == [147, 147, 147]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = dp.shape_model(dp.set_classes(ROOT / "cfg" / "yolov3.cfg", 44))
    assert summary["weights_bytes"] == model.weights_bytes()


def test_cfg_classes_with_a_max_batches_value(tmp_path, capsys):
    out = tmp_path / "tiny-2.cfg"
    assert main(["cfg", "classes", "2", str(ROOT / "cfg" / "yolov3-tiny.cfg"), str(out), "--max-batches", "12000"]) == 0
    net = dp.read_cfg(out).net
    assert (net.get_int("max_batches"), net.get_str("steps")) == (12000, "9600,10800")


def test_cfg_classes_refusal_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.cfg"
    bad.write_text("[net]\nwidth=32\n[convolutional]\nfilters=3\n")
    assert main(["cfg", "classes", "2", str(bad), str(tmp_path / "out.cfg")]) == 2
    assert capsys.readouterr().err.startswith("darknetpy: ") and not (tmp_path / "out.cfg").exists()


def test_cfg_diff(tmp_path, capsys):
    out = tmp_path / "tiny-3.cfg"
    src = ROOT / "cfg" / "yolov3-tiny.cfg"
    assert main(["cfg", "classes", "3", str(src), str(out)]) == 0
    capsys.readouterr()
    assert main(["cfg", "diff", str(src), str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [f"--- {src}", f"+++ {out}"]
    assert lines[2:4] == ["[convolutional #15] (line 123 -> 123)", "  filters: 255 -> 24"]
    assert main(["cfg", "diff", str(src), str(src)]) == 0
    assert capsys.readouterr().out == "no differences (as Darknet reads them)\n"
