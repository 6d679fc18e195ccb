"""Cfg edits for N classes (every head type and family in cfg/) and the cfg diff."""
from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from darknetpy import (
    BadValueError,
    CfgError,
    Darknet,
    diff_cfg,
    max_batches_for,
    parse_cfg_text,
    read_cfg,
    set_classes,
    set_classes_text,
    shape_model,
    summary_json,
)

from ..conftest import ROOT, SHARED, ZOO, needs_shared

pytestmark = pytest.mark.unit

CFGS = sorted(p.name for p in (ROOT / "cfg").glob("*.cfg"))
FAMILIES = {"yolov2", "yolov2-tiny", "yolov3", "yolov3-spp", "yolov3-tiny", "yolov4", "yolov4-tiny", "yolov4-csp", "yolov7", "yolo-fastest-1.1"}
PER_ANCHOR = {"yolo": 5, "Gaussian_yolo": 9}


def _build(cfg, flavor=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return shape_model(cfg, flavor)


def _expected_channels(head, classes: int) -> int:
    """The channels a head needs, from the built layer's own options (independent of cfgtools)."""
    if head.section_type in PER_ANCHOR:
        return (classes + PER_ANCHOR[head.section_type]) * head.n
    o = head.options
    if head.section_type == "region":
        return (classes + o.coords + 1) * o.num
    return o.side * o.side * ((1 + o.coords) * o.num + classes)


def _conv_bytes(layer) -> int:
    """Bytes a [convolutional] writes: biases (+ BN scales, means, variances) and its weights."""
    per_filter = (layer.c // layer.groups) * layer.size * layer.size + (4 if layer.batch_normalize else 1)
    return 4 * layer.n * per_filter


def test_the_families_of_the_issue_are_all_in_cfg():
    assert {f"{name}.cfg" for name in FAMILIES} <= set(CFGS)


@pytest.mark.parametrize("classes", [1, 3, 44])
@pytest.mark.parametrize("name", CFGS)
def test_every_cfg_for_n_classes_builds_with_the_formula_filters(name, classes):
    path = ROOT / "cfg" / name
    edited = set_classes(path, classes, max_batches=True)
    model, original = _build(edited), _build(path)
    heads = [layer for layer in model.layers if layer.is_head]
    assert heads
    delta = 0
    for head in heads:
        feeder, before = model.layers[head.index - 1], original.layers[head.index - 1]
        assert head.classes == classes
        assert feeder.out_shape[0] == _expected_channels(head, classes)
        delta += _conv_bytes(feeder) - _conv_bytes(before)
    size = model.weights_bytes()
    assert size == summary_json(model)["weights_bytes"]
    assert size == original.weights_bytes() + delta  # only the head convs changed
    net = edited.net
    assert net.get_int("max_batches") == max(2000 * classes, 6000)
    assert net.get_ints("steps") == [max_batches_for(classes) * 8 // 10, max_batches_for(classes) * 9 // 10]


def test_yolov3_44_is_the_modelarts_baseline_and_keeps_every_other_line():
    path = ROOT / "cfg" / "yolov3.cfg"
    edited = set_classes(path, 44, max_batches=True)
    convs = [s for s in edited.layers if s.name == "convolutional" and s.index + 1 in [h.index for h in edited.layers if h.name == "yolo"]]
    assert [s.get_int("filters") for s in convs] == [147, 147, 147]
    assert [s.get_int("classes") for s in edited.layers if s.name == "yolo"] == [44, 44, 44]
    assert (edited.net.get_int("max_batches"), edited.net.get_str("steps")) == (88000, "70400,79200")
    before, after = path.read_text().split("\n"), edited.text().split("\n")
    assert len(before) == len(after)
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert changed[:2] == [("max_batches = 500200", "max_batches = 88000"), ("steps=400000,450000", "steps=70400,79200")]
    assert changed[2:] == [("filters=255", "filters=147"), ("classes=80", "classes=44")] * 3
    assert [str(c) for c in edited.changes][2] == "[convolutional #81] filters: 255 -> 147  (for [yolo #82])"


def test_max_batches_rules():
    path = ROOT / "cfg" / "yolov4-tiny.cfg"
    assert set_classes(path, 3, max_batches=True).net.get_int("max_batches") == 6000  # AlexeyAB's minimum
    assert set_classes(path, 3, max_batches=True).net.get_str("steps") == "4800,5400"  # his README's example
    given = set_classes(path, 3, max_batches=10000).net
    assert (given.get_int("max_batches"), given.get_str("steps")) == (10000, "8000,9000")
    untouched = set_classes(path, 3).net
    assert untouched.get_int("max_batches") == 2000200


def test_region_head_filters_include_coords():
    edited = set_classes(ROOT / "cfg" / "yolov2.cfg", 3)
    assert edited.layers[-2].get_int("filters") == (3 + 4 + 1) * 5
    assert _build(edited).layers[-1].classes == 3


def test_gaussian_yolo_heads():
    path = ZOO / "alexeyab" / "Gaussian_yolov3_BDD.cfg"
    model = _build(set_classes(path, 4))
    heads = [layer for layer in model.layers if layer.section_type == "Gaussian_yolo"]
    assert [model.layers[h.index - 1].out_shape[0] for h in heads] == [(4 + 9) * 3] * 3


def test_gaussian_yolo_from_yolov3_tiny_text():
    text = (ROOT / "cfg" / "yolov3-tiny.cfg").read_text().replace("[yolo]", "[Gaussian_yolo]").replace("filters=255", "filters=267")
    edited = set_classes_text(text, 2)
    assert [s.get_int("filters") for s in edited.layers if s.index + 1 < len(edited.layers) and edited.layers[s.index + 1].name == "Gaussian_yolo"] == [33, 33]
    _build(edited)


def test_detection_head_sets_the_connected_output():
    text = (
        "[net]\nwidth=56\nheight=56\nchannels=3\n[convolutional]\nfilters=4\nsize=3\nstride=4\npad=1\nactivation=leaky\n"
        "[connected]\noutput=1470  # 7*7*(2*5+20)\nactivation=linear\n"
        "[detection]\nclasses=20\ncoords=4\nrescore=1\nside=7\nnum=2\n"
    )
    edited = set_classes_text(text, 3)
    assert "output=637  # 7*7*(2*5+20)" in edited.text()  # 7·7·((1+4)·2 + 3), the inline comment kept
    model = _build(edited, "pjreddie")
    assert model.layers[-1].options.classes == 3


def test_a_head_not_fed_by_a_conv_is_named():
    text = (
        "[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nfilters=255\nsize=1\nstride=1\nactivation=linear\n"
        "[route]\nlayers=-1\n[yolo]\nmask=0,1,2\nanchors=1,1,2,2,3,3\nclasses=80\nnum=3\n"
    )
    with pytest.raises(CfgError, match=r"\[yolo #2\].*fed by \[route #1\].*filters=18"):
        set_classes_text(text, 1)


def test_refusals():
    with pytest.raises(CfgError, match="no detection head"):
        set_classes_text("[net]\nwidth=32\n[convolutional]\nfilters=3\n", 2)
    with pytest.raises(BadValueError, match="classes=0"):
        set_classes(ROOT / "cfg" / "yolov3-tiny.cfg", 0)
    with pytest.raises(CfgError, match="tree"):
        set_classes(ZOO / "alexeyab" / "yolo9000.cfg", 3)


def test_missing_keys_are_added_and_counters_per_class_removed():
    text = (
        "[net]\r\nwidth=32\r\nheight=32\r\nchannels=3\r\npolicy=steps\r\nsteps=10,20,30\r\nscales=.1,.1,.1\r\n"
        "[convolutional]\r\nfilters=255 # coco\r\nsize=1\r\nstride=1\r\nactivation=linear\r\n\r\n"
        "[yolo]\r\nmask=0,1,2\r\nanchors=1,1,2,2,3,3\r\nnum=3\r\ncounters_per_class=5,6\r\n# the end\r\n"
    )
    edited = set_classes_text(text, 2, max_batches=True)
    assert edited.crlf and "\n" not in edited.text().replace("\r\n", "")  # CRLF stays CRLF
    assert "filters=21 # coco\r\n" in edited.text()
    yolo = edited.layers[-1]
    assert yolo.get_int("classes") == 2 and "counters_per_class" not in yolo  # classes was absent (Darknet's default 20)
    assert edited.text().endswith("num=3\r\nclasses=2\r\n# the end\r\n")
    net = edited.net
    assert (net.get_int("max_batches"), net.get_str("steps"), net.get_str("scales")) == (6000, "4800,5400", ".1,.1")
    _build(edited)


def test_a_parsed_cfgfile_is_edited_without_its_comments():
    cfg = read_cfg(ROOT / "cfg" / "yolov3-tiny.cfg")
    edited = set_classes(cfg, 5)
    assert "#" not in edited.text()
    assert [s.get_int("classes") for s in edited.layers if s.name == "yolo"] == [5, 5]


def test_write_keeps_bytes(tmp_path):
    edited = set_classes(ROOT / "cfg" / "yolov3-tiny.cfg", 5)
    edited.write(tmp_path / "out.cfg")
    assert (tmp_path / "out.cfg").read_text() == edited.text()
    assert read_cfg(tmp_path / "out.cfg").layers[-1].get_int("classes") == 5


def test_saved_weights_have_the_computed_size(tmp_path):
    edited = set_classes(ROOT / "cfg" / "yolov3-tiny.cfg", 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet(edited)
    model.save_weights(tmp_path / "w.weights")
    assert (tmp_path / "w.weights").stat().st_size == summary_json(_build(edited))["weights_bytes"]


@needs_shared("runs/bccd-darknet")
def test_same_heads_as_the_bccd_reference_run():
    start = ROOT / "cfg" / "yolo-fastest-1.1.cfg"  # the same bytes as shared/models/yolo-fastest's
    run = SHARED / "runs" / "bccd-darknet" / "bccd-fastest.cfg"
    text = diff_cfg(set_classes(start, 3), run)
    assert text.splitlines()[2] == "[net] (line 1 -> 1)"
    assert all(line.startswith("  ") for line in text.splitlines()[3:])  # only [net] training keys differ


# ---- diff ---------------------------------------------------------------------------------------

def test_diff_by_section_with_indices():
    a = parse_cfg_text("[net]\nwidth=32\nbatch=1\n[convolutional]\nfilters=4\nsize=3\n[maxpool]\nsize=2\n[yolo]\nclasses=80\n", "a.cfg")
    b = parse_cfg_text("[net]\nwidth = 32\nbatch=2\n# note\n[convolutional]\nfilters=4\npad=1\n[yolo]\nclasses=3\nmask=0\n", "b.cfg")
    assert diff_cfg(a, b).splitlines() == [
        "--- a.cfg",
        "+++ b.cfg",
        "[net] (line 1 -> 1)",
        "  batch: 1 -> 2",
        "[convolutional #0] (line 4 -> 5)",
        "  - size=3",
        "  + pad=1",
        "- [maxpool #1] (line 7): size=2",
        "[yolo #2] -> #1 (line 9 -> 8)",
        "  classes: 80 -> 3",
        "  + mask=0",
    ]


def test_diff_of_equal_reading_is_empty():
    a = ROOT / "cfg" / "yolov3.cfg"
    assert diff_cfg(a, a) == ""
    assert diff_cfg(a, parse_cfg_text(Path(a).read_text().replace("filters=255", "filters = 255"))) == ""


def test_diff_of_the_edit_names_every_change():
    path = ROOT / "cfg" / "yolov4-tiny.cfg"
    edited = set_classes(path, 2)
    lines = diff_cfg(path, edited).splitlines()
    assert lines[:2] == [f"--- {path}", f"+++ {path} (edited)"]
    assert lines[2:] == [
        "[convolutional #29] (line 217 -> 217)", "  filters: 255 -> 21", "[yolo #30] (line 226 -> 226)", "  classes: 80 -> 2",
        "[convolutional #36] (line 270 -> 270)", "  filters: 255 -> 21", "[yolo #37] (line 277 -> 277)", "  classes: 80 -> 2",
    ]
