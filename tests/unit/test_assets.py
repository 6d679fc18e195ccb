"""The bundled files: package data found with importlib.resources, and names that resolve to them."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import darknetpy as dp
from darknetpy.cli import main
from darknetpy.weights import atomic_write
from darknetpy.zoo import bundled_files


def test_bundled_files_are_the_default_model_cfgs_names_and_sample():
    names = bundled_files()
    assert {"cfg/yolo-fastest-1.1.cfg", "weights/yolo-fastest-1.1.weights", "weights/LICENSE.yolo-fastest",
            "cfg/coco.names", "cfg/voc.names", "cfg/yolov3.cfg", "cfg/yolov4-tiny.cfg", "data/dog.jpg"} <= set(names)
    cfg, weights, coco = dp.default_model()
    assert (cfg.name, weights.name, coco.name) == ("yolo-fastest-1.1.cfg", "yolo-fastest-1.1.weights", "coco.names")
    assert weights.stat().st_size == 1_384_268 and len(dp.read_names(coco)) == 80
    assert dp.sample_image().read_bytes()[:2] == b"\xff\xd8"  # a JPEG


def test_the_bundled_files_live_inside_the_package():
    package = os.path.dirname(dp.__file__)
    for name in bundled_files():
        assert os.path.realpath(dp.asset(name)).startswith(os.path.realpath(package) + os.sep), name


@pytest.mark.parametrize("bad", ["cfg/nope.cfg", "../setup.cfg", "/etc/passwd", ""])
def test_asset_refuses_what_is_not_bundled(bad):
    with pytest.raises(dp.DarknetError, match="bundled"):
        dp.asset(bad)


def test_missing_relative_names_resolve_to_the_bundled_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert dp.find_file("cfg/yolov3.cfg") == dp.asset("cfg/yolov3.cfg")
    assert dp.find_file("data/dog.jpg") == dp.sample_image()
    assert dp.find_file("coco.names") == dp.asset("cfg/coco.names")
    assert dp.find_file("weights/yolo-fastest-1.1.weights") == dp.default_model()[1]
    assert dp.find_file("cfg/mine.cfg") == Path("cfg/mine.cfg")  # not bundled: unchanged
    model = dp.Darknet("cfg/yolo-fastest-1.1.cfg", "weights/yolo-fastest-1.1.weights")
    assert model.seen == 14_231_680
    assert len(dp.read_names("cfg/voc.names")) == 20


def test_a_local_file_wins_over_the_bundled_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "coco.names").write_text("only\n")
    assert dp.read_names("cfg/coco.names") == ["only"]


def test_atomic_writes_get_the_permissions_of_a_plain_open(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "w.weights", lambda f: f.write(b"x"))
        (tmp_path / "plain").write_bytes(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "w.weights").stat().st_mode) == stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o644


def test_download_lists_the_known_files_and_refuses_unknown_names(capsys):
    assert main(["download"]) == 0
    out = capsys.readouterr().out
    assert "yolov3.weights" in out and "248,007,048 bytes" in out and "darknet53.conv.74" in out
    assert main(["download", "nope.weights"]) == 2
    assert "nope.weights: not a known weights file" in capsys.readouterr().err
