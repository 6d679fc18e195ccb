"""`darknetpy detector test` and `Darknet.detect`: inputs, printed lines, files written, bad input."""
from __future__ import annotations

import json
import os
import re
import warnings

import cv2
import pytest
import torch
from PIL import Image

from darknetpy import load_detector, sample_image
from darknetpy.cli import main

from ..conftest import GOLDEN, ROOT, SHARED, needs_shared

pytestmark = pytest.mark.cli

DOG = sample_image()  # Darknet's data/dog.jpg, bundled


@pytest.fixture(scope="module")
def bundled():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_detector(None, None, None)


@pytest.fixture()
def in_tmp(tmp_path):
    cwd = os.getcwd()
    os.chdir(tmp_path)
    yield tmp_path
    os.chdir(cwd)


def test_bundled_model_on_dog_prints_darknet_lines_and_writes_predictions(in_tmp, capsys):
    assert main(["detector", "test", str(DOG), "-ext_output", "-dont_show"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(rf"{re.escape(str(DOG))}: Predicted in [0-9.]+ milli-seconds\.", out[0])
    names = [line.split(":")[0] for line in out[1:]]
    assert {"dog", "bicycle", "car"} <= set(names)
    assert all(re.fullmatch(r"[a-z ]+: \d+%\t\(left_x: +-?\d+   top_y: +-?\d+   width: +\d+   height: +\d+\)", line) for line in out[1:])
    image = cv2.imread(str(in_tmp / "predictions.jpg"))
    assert image.shape == (576, 768, 3)


def test_dog_bicycle_and_car_with_darknets_probabilities_to_3_decimals(in_tmp, capsys):
    """The golden case is this image on this model, letterboxed, with do_nms_sort (case.json): the
    same JPEG decoding (stb_image's), letterbox and decoding give Darknet's lines."""
    txt = in_tmp / "dets.txt"
    assert main(["detector", "test", str(DOG), "-letter_box", "-nms_kind", "default", "-save_txt", str(txt)]) == 0
    got = sorted(tuple(map(float, line.split())) for line in txt.read_text().splitlines())
    want = sorted(tuple(map(float, line.split())) for line in (GOLDEN / "alexeyab-yolo-fastest-1.1" / "detections.txt").read_text().splitlines())
    assert {int(g[0]) for g in got} >= {16, 1, 2}  # dog, bicycle, car
    assert [(int(g[0]), round(g[1], 3)) for g in got] == [(int(w[0]), round(w[1], 3)) for w in want]
    for g, w in zip(got, want):  # probability, objectness and box
        assert max(abs(a - b) for a, b in zip(g[1:], w[1:])) < 1e-5
    printed = capsys.readouterr().out
    assert "dog: 61%" in printed and "bicycle: 60%" in printed and "car: 54%" in printed


@needs_shared("images")
def test_several_images_folders_and_lists_go_to_a_predictions_folder(in_tmp, capsys):
    folder = in_tmp / "imgs"
    folder.mkdir()
    (folder / "dog.jpg").write_bytes(DOG.read_bytes())
    (folder / "horses.jpg").write_bytes((SHARED / "images" / "horses.jpg").read_bytes())
    (in_tmp / "list.txt").write_text(f"{SHARED / 'images' / 'person.jpg'}\nimgs/dog.jpg\n")
    out_json = in_tmp / "result.json"
    assert main(["detector", "test", str(folder), str(in_tmp / "list.txt"), "-out", str(out_json), "-thresh", "0.3"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("Predicted in") == 4
    assert sorted(p.name for p in (in_tmp / "predictions").iterdir()) == ["dog.jpg", "horses.jpg", "person.jpg"]
    frames = json.loads(out_json.read_text())
    assert [f["frame_id"] for f in frames] == [1, 2, 3, 4]
    obj = frames[0]["objects"][0]
    assert set(obj) == {"class_id", "name", "relative_coordinates", "confidence", "bbox"} and obj["confidence"] > 0.3


def test_a_broken_image_is_reported_and_skipped(in_tmp, capsys):
    bad = in_tmp / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    assert main(["detector", "test", str(bad), str(DOG)]) == 0
    captured = capsys.readouterr()
    assert "bad.jpg: not a readable image; skipped" in captured.err
    assert captured.out.count("Predicted in") == 1


def test_missing_input_is_one_line_and_status_2(in_tmp, capsys):
    assert main(["detector", "test", str(in_tmp / "nope.jpg")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("darknetpy: ") and err.count("\n") == 1 and "no such image" in err


def test_explicit_data_cfg_weights(in_tmp, capsys):
    data = in_tmp / "coco.data"
    data.write_text(f"classes=80\nnames={ROOT / 'cfg' / 'coco.names'}\n")
    args = ["detector", "test", str(data), str(ROOT / "cfg" / "yolo-fastest-1.1.cfg"), str(ROOT / "weights" / "yolo-fastest-1.1.weights"), str(DOG)]
    assert main(args) == 0
    assert "dog: " in capsys.readouterr().out


def test_video_frames_are_detected_and_written(in_tmp, capsys):
    frame = cv2.imread(str(DOG))
    video = in_tmp / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (frame.shape[1], frame.shape[0]))
    for _ in range(3):
        writer.write(frame)
    writer.release()
    out = in_tmp / "out.avi"
    assert main(["detector", "test", str(video), "-out_filename", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("clip.avi frame ") == 3 and "dog: " in printed
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3


def test_detect_takes_paths_pil_numpy_and_tensors_alike(bundled):
    from darknetpy.image import load_image

    rgb = load_image(DOG)  # the pixels a path gives (stb_image's decoding)
    variants = [str(DOG), Image.fromarray(rgb), rgb, torch.from_numpy(rgb).permute(2, 0, 1).float() / 255]
    results = [bundled.detect(v) for v in variants]
    first = [(d.class_id, round(d.score, 6)) for d in results[0][0]]
    assert first and all([(d.class_id, round(d.score, 6)) for d in r[0]] == first for r in results[1:])
    batch = bundled.detect([rgb, rgb[:, ::-1]], thresh=0.3)
    assert len(batch) == 2 and all(d.score > 0.3 for d in batch[0])
    d = results[0][0][0]
    assert d.name in ("dog", "car", "bicycle") and 0 <= d.box[0] < d.box[2] <= 768


def test_nms_zero_keeps_overlapping_boxes(bundled):
    (with_nms,) = bundled.detect(str(DOG), thresh=0.2)
    (without,) = bundled.detect(str(DOG), thresh=0.2, nms=0)
    assert len(without) > len(with_nms)
