"""The command lines of AlexeyAB's README, as written, with ``darknetpy`` for ``./darknet``.

From the sections "How to use on the command line" and "How to train (to detect your custom
objects)" (with "How to train tiny-yolo" and "How to train with multi-GPU") of
``AlexeyAB/darknet/README.md``. Each runs in a folder that holds the files it names, made small: the
COCO cfgs and weights of the detection lines are the bundled Yolo-Fastest-1.1 model, those of the
training lines a 3-layer cfg with ``max_batches=2``; ``data/`` holds a 2-image data set with labels,
``test.mp4`` a 3-frame video, ``dog.jpg`` Darknet's sample. Changed in the lines: the README's
Windows paths (``backup\\yolo-obj_7000.weights``) use ``/``, the absolute ``/backup/`` is ``backup/``,
and the phone's stream (``http://192.168.0.80:8080/...``) is a closed local port, so no line
reaches the network, and no camera opens, whatever the machine has. The lines with ``<`` and ``>``
run as a real process with those redirections; the others through ``main()``, those without an image
with their paths on standard input.
"""
from __future__ import annotations

import io
import json
import re
import shlex
import socket
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import pytest
import torch

import darknetpy as dp
from darknetpy.cli import main

pytestmark = pytest.mark.cli


@dataclass(frozen=True)
class Expect:
    """What a line must do: its exit status, the files it writes, a piece of its output or its one-line
    error, the Darknet flags it gets a note for (once each), its standard input, and more checks of
    its files (``check()``, run in its folder)."""

    status: int = 0
    files: tuple[str, ...] = ()
    out: str = ""
    error: str = ""
    notes: tuple[str, ...] = ()
    stdin: str | None = None
    check: Callable[[], None] | None = None


ASK = "dog.jpg\n"  # typed at Darknet's `Enter Image Path:`
TRAINED = ("backup/{}_final.weights", "backup/{}_last.weights", "backup/chart.png")


def _json_of_the_list() -> None:
    frames = json.loads(Path("result.json").read_text())
    assert [(f["frame_id"], f["filename"]) for f in frames] == [(1, "data/obj/img1.jpg"), (2, "data/obj/img2.jpg")]


def _lines_of_the_list() -> None:
    """No prompt when standard input is not a terminal; every image's lines, in order."""
    text = Path("result.txt").read_text()
    assert "Enter Image Path" not in text
    assert re.findall(r"^(\S+): Predicted in", text, re.M) == ["data/obj/img1.jpg", "data/obj/img2.jpg"]


def _pseudo_labels() -> None:
    for name in ("img3", "img4"):
        lines = Path(f"data/new/{name}.txt").read_text().splitlines()
        assert all(re.fullmatch(r"\d+ -?\d\.\d{4} -?\d\.\d{4} -?\d\.\d{4} -?\d\.\d{4}", line) for line in lines)
        assert "16" in {line.split()[0] for line in lines}  # the dog


def trained(stem: str, best: bool = False, notes: tuple[str, ...] = ()) -> Expect:
    files = tuple(f.format(stem) for f in TRAINED) + ((f"backup/{stem}_best.weights",) if best else ())
    return Expect(files=files, out=" 2: ", notes=notes)


USE = [  # How to use on the command line
    ("./darknet detector test cfg/coco.data cfg/yolov4.cfg yolov4.weights -thresh 0.25",
     Expect(stdin=ASK, files=("predictions.jpg",), out="dog.jpg: Predicted in")),
    ("./darknet detector test cfg/coco.data yolov4.cfg yolov4.weights -ext_output dog.jpg",
     Expect(files=("predictions.jpg",), out="dog: ")),
    ("./darknet detector demo cfg/coco.data cfg/yolov4.cfg yolov4.weights -ext_output test.mp4", Expect(out="test.mp4 frame 3: ")),
    ("./darknet detector demo cfg/coco.data cfg/yolov4.cfg yolov4.weights -c 0", Expect(status=2, error="darknetpy: camera 0: cannot be opened")),
    ("./darknet detector demo cfg/coco.data cfg/yolov4.cfg yolov4.weights http://192.168.0.80:8080/video?dummy=param.mjpg",
     Expect(status=2, error="cannot open the video stream")),
    ("./darknet detector demo cfg/coco.data cfg/yolov4.cfg yolov4.weights test.mp4 -out_filename res.avi", Expect(files=("res.avi",))),
    ("./darknet detector demo cfg/coco.data cfg/yolov3-tiny.cfg yolov3-tiny.weights test.mp4", Expect(out="test.mp4 frame 3: ")),
    ("./darknet detector demo ./cfg/coco.data ./cfg/yolov3.cfg ./yolov3.weights test50.mp4 -json_port 8070 -mjpeg_port 8090 -ext_output",
     Expect(out="test50.mp4 frame 3: ", notes=("-json_port", "-mjpeg_port"))),
    ("./darknet detector demo cfg/coco.data cfg/yolov3-tiny.cfg yolov3-tiny.weights -i 1 test.mp4", Expect(out="test.mp4 frame 3: ", notes=("-i",))),
    ("./darknet detect cfg/yolov4.cfg yolov4.weights -i 0 -thresh 0.25", Expect(stdin=ASK, files=("predictions.jpg",), out="dog: ", notes=("-i",))),
    ("./darknet detector train cfg/coco.data yolov4.cfg yolov4.conv.137 -dont_show -mjpeg_port 8090 -map",
     trained("yolov4", best=True, notes=("-mjpeg_port",))),
    ("./darknet detector test cfg/combine9k.data cfg/yolo9000.cfg yolo9000.weights", Expect(stdin=ASK, files=("predictions.jpg",))),
    ("./darknet detector test cfg/coco.data cfg/yolov4.cfg yolov4.weights -ext_output -dont_show -out result.json < data/train.txt",
     Expect(files=("result.json",), check=_json_of_the_list)),
    ("./darknet detector test cfg/coco.data cfg/yolov4.cfg yolov4.weights -dont_show -ext_output < data/train.txt > result.txt",
     Expect(files=("result.txt",), check=_lines_of_the_list)),
    ("darknet.exe detector demo cfg/coco.data cfg/yolov3.cfg yolov3.weights file.mp4 -dont_show -json_file_output results.json",
     Expect(files=("results.json",))),
    ("./darknet detector test cfg/coco.data cfg/yolov4.cfg yolov4.weights -thresh 0.25 -dont_show -save_labels < data/new_train.txt",
     Expect(files=("data/new/img3.txt", "data/new/img4.txt"), check=_pseudo_labels)),
    ("./darknet detector calc_anchors data/obj.data -num_of_clusters 9 -width 416 -height 416", Expect(files=("anchors.txt",))),
    ("./darknet detector map data/obj.data yolo-obj.cfg backup\\yolo-obj_7000.weights", Expect(out=" mean average precision (mAP@0.50) = ")),
    ("./darknet detector map data/obj.data yolo-obj.cfg backup\\yolo-obj_7000.weights -iou_thresh 0.75",
     Expect(out=" mean average precision (mAP@0.75) = ")),
    ("./darknet detector demo data/coco.data yolov4.cfg yolov4.weights http://192.168.0.80:8080/video?dummy=param.mjpg -i 0",
     Expect(status=2, error="cannot open the video stream", notes=("-i",))),
]
MULTI_GPU = [
    ("darknet.exe detector train cfg/coco.data cfg/yolov4.cfg yolov4.conv.137", trained("yolov4")),
    ("darknet.exe detector train cfg/coco.data cfg/yolov4.cfg /backup/yolov4_1000.weights -gpus 0,1,2,3", trained("yolov4", notes=("-gpus",))),
]
CUSTOM = [  # How to train (to detect your custom objects), How to train tiny-yolo
    ("darknet.exe detector train data/obj.data yolo-obj.cfg yolov4.conv.137", trained("yolo-obj")),
    ("./darknet detector train data/obj.data yolo-obj.cfg yolov4.conv.137", trained("yolo-obj")),
    ("darknet.exe detector train data/obj.data yolo-obj.cfg yolov4.conv.137 -dont_show", trained("yolo-obj")),
    ("darknet.exe detector train data/obj.data yolo-obj.cfg yolov4.conv.137 -dont_show -mjpeg_port 8090 -map",
     trained("yolo-obj", best=True, notes=("-mjpeg_port",))),
    ("darknet.exe detector train data/obj.data yolo-obj.cfg yolov4.conv.137 -map", trained("yolo-obj", best=True)),
    ("darknet.exe detector train data/obj.data yolo-obj.cfg yolov4.conv.137 -map -mAP_epochs 2", trained("yolo-obj", best=True)),
    ("darknet.exe detector train data/obj.data yolo-obj.cfg backup\\yolo-obj_2000.weights", trained("yolo-obj")),
    ("darknet.exe detector test data/obj.data yolo-obj.cfg yolo-obj_8000.weights", Expect(stdin=ASK, files=("predictions.jpg",))),
    ("darknet.exe partial cfg/yolov4-tiny-custom.cfg yolov4-tiny.weights yolov4-tiny.conv.29 29", Expect(files=("yolov4-tiny.conv.29",))),
    ("darknet.exe detector train data/obj.data yolov4-tiny-obj.cfg yolov4-tiny.conv.29", trained("yolov4-tiny-obj")),
]

TINY_CFG = """[net]
batch=2
subdivisions=1
width=32
height=32
channels=3
momentum=0.9
decay=0.0005
learning_rate=0.001
burn_in=0
max_batches=2
policy=steps
steps=1000
scales=.1

[convolutional]
batch_normalize=1
filters=4
size=3
stride=2
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky

[convolutional]
filters={filters}
size=1
stride=1
pad=1
activation=linear

[yolo]
mask=0,1,2
anchors=4,6, 8,8, 16,12
classes={classes}
num=3
jitter=.1
ignore_thresh=.7
random=0
"""
BOXES = ("0 0.30 0.40 0.20 0.30\n1 0.60 0.50 0.40 0.30\n0 0.70 0.20 0.10 0.10\n1 0.50 0.70 0.60 0.20\n0 0.20 0.80 0.15 0.25\n")
COCO_MODEL = {"cfg": ("cfg/yolov4.cfg", "yolov4.cfg", "cfg/yolov3-tiny.cfg", "cfg/yolov3.cfg", "cfg/yolo9000.cfg"),
              "weights": ("yolov4.weights", "yolov3-tiny.weights", "yolov3.weights", "yolo9000.weights")}


def _tiny(path: Path, classes: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TINY_CFG.format(classes=classes, filters=3 * (classes + 5)))
    return path


def _weights(cfg: Path, path: Path, cutoff: int | None = None) -> None:
    """Seeded weights, with batch norm's rolling variance 1 (a fresh Darknet layer's is 0, which makes
    boxes of infinite size)."""
    torch.manual_seed(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = dp.Darknet(cfg)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("rolling_variance"):
                buffer.fill_(1.0)
    model.save_weights(path, cutoff=cutoff)


def _video(path: Path, frames: int = 3) -> None:
    image = cv2.resize(cv2.imread(str(dp.sample_image())), (160, 120))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (160, 120))
    for i in range(frames):
        writer.write(cv2.flip(image, 1) if i % 2 else image)
    writer.release()


def make_folder(root: Path, training: bool) -> None:
    """The files the README lines name: COCO's model is Yolo-Fastest-1.1 for detection, a 3-layer
    80-class cfg for training (``training``)."""
    dog = cv2.imread(str(dp.sample_image()))
    (root / "dog.jpg").write_bytes(dp.sample_image().read_bytes())
    for folder, names in (("data/obj", ("img1", "img2")), ("data/new", ("img3", "img4"))):
        (root / folder).mkdir(parents=True)
        for i, name in enumerate(names):
            image = cv2.flip(dog, 1) if i else dog
            cv2.imwrite(str(root / folder / f"{name}.jpg"), cv2.resize(image, (192, 144)) if folder == "data/obj" else image)
    for name in ("img1", "img2"):
        (root / "data/obj" / f"{name}.txt").write_text(BOXES)
    (root / "data/train.txt").write_text("data/obj/img1.jpg\ndata/obj/img2.jpg\n")
    (root / "data/test.txt").write_text("data/obj/img1.jpg\ndata/obj/img2.jpg\n")
    (root / "data/new_train.txt").write_text("data/new/img3.jpg\ndata/new/img4.jpg\n")
    (root / "data/obj.names").write_text("left\nright\n")
    (root / "data/obj.data").write_text("classes = 2\ntrain  = data/train.txt\nvalid  = data/test.txt\nnames = data/obj.names\nbackup = backup/\n")
    coco = "classes = 80\ntrain = data/train.txt\nvalid = data/test.txt\nnames = cfg/coco.names\nbackup = backup/\n"
    for name in ("cfg/coco.data", "data/coco.data", "cfg/combine9k.data"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(coco)
    cfg, weights, _ = dp.default_model()
    for name in COCO_MODEL["cfg"]:
        if training:
            _tiny(root / name, 80)
        else:
            (root / name).symlink_to(cfg)
    for name in COCO_MODEL["weights"]:
        (root / name).symlink_to(weights)
    coco80 = _tiny(root / "cfg/yolov4-tiny-custom.cfg", 80)
    _weights(coco80, root / "yolov4-tiny.weights")
    _weights(coco80, root / "yolov4.conv.137", cutoff=2)
    _weights(coco80, root / "backup/yolov4_1000.weights")
    obj = _tiny(root / "yolo-obj.cfg", 2)
    _tiny(root / "yolov4-tiny-obj.cfg", 2)
    for name in ("backup/yolo-obj_7000.weights", "backup/yolo-obj_2000.weights", "yolo-obj_8000.weights"):
        _weights(obj, root / name)
    _weights(obj, root / "yolov4-tiny.conv.29", cutoff=2)
    for name in ("test.mp4", "test50.mp4", "file.mp4"):
        _video(root / name)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def darknetpy_args(line: str) -> tuple[list[str], str | None, str | None]:
    """The README line as darknetpy's arguments, and its ``<`` and ``>`` files."""
    line = line.replace("http://192.168.0.80:8080/", f"http://127.0.0.1:{_closed_port()}/")
    words = shlex.split(line.replace("\\", "/"))  # the README's Windows paths
    assert words[0] in ("./darknet", "darknet.exe")
    args, stdin, stdout = [], None, None
    it = iter(words[1:])
    for word in it:
        if word == "<":
            stdin = next(it)
        elif word == ">":
            stdout = next(it)
        else:
            args.append(word.replace("/backup/", "backup/", 1) if word.startswith("/backup/") else word)
    return args, stdin, stdout


def run_line(line: str, expect: Expect, capsys, monkeypatch) -> tuple[int, str, str]:
    args, stdin, stdout = darknetpy_args(line)
    if stdin is None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(expect.stdin or ""))
        real = cv2.VideoCapture  # no camera, whatever this machine has: `-c 0` must not run until stopped
        monkeypatch.setattr(cv2, "VideoCapture", lambda source, *more: real() if isinstance(source, int) else real(source, *more))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            status = main(args)
        out, err = capsys.readouterr()
        return status, out, err
    command = [sys.executable, "-m", "darknetpy", *args]
    with open(stdin) as source, open(stdout or "stdout.txt", "w") as sink:
        done = subprocess.run(command, stdin=source, stdout=sink, stderr=subprocess.PIPE, text=True, timeout=300)
    return done.returncode, Path(stdout or "stdout.txt").read_text(), done.stderr


@pytest.mark.parametrize("line, expect", [pytest.param(*case, id=case[0].split(" ", 1)[1][:90]) for case in USE + MULTI_GPU + CUSTOM])
def test_readme_command_line(line, expect, tmp_path, capsys, monkeypatch):
    make_folder(tmp_path, training=" train " in line)
    monkeypatch.chdir(tmp_path)
    for name in expect.files:
        (tmp_path / name).unlink(missing_ok=True)
    status, out, err = run_line(line, expect, capsys, monkeypatch)
    assert status == expect.status, err[-3000:]
    assert "Traceback" not in err
    for name in expect.files:
        assert (tmp_path / name).is_file(), name
    assert expect.out in out
    if expect.error:
        last = err.strip().splitlines()[-1]
        assert last.startswith("darknetpy: ") and expect.error in last
        assert sum(line.startswith("darknetpy: ") and "note:" not in line for line in err.splitlines()) == 1
    noted = [line.split()[2].rstrip(":") for line in err.splitlines() if line.startswith("darknetpy: note: ")]
    assert sorted(noted) == sorted(expect.notes)
    if expect.check is not None:
        expect.check()


def test_a_terminal_gets_darknets_prompt(tmp_path, monkeypatch, capsys):
    make_folder(tmp_path, training=False)
    monkeypatch.chdir(tmp_path)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal("dog.jpg\n\ndata/new/img4.jpg\n"))
    assert main(["detector", "test", "cfg/coco.data", "cfg/yolov4.cfg", "yolov4.weights"]) == 0
    out = capsys.readouterr().out
    assert out.count("Enter Image Path: ") == 4  # before each line, and at the end of the input
    assert out.startswith("Enter Image Path: dog.jpg: Predicted in")
    assert "Enter Image Path: data/new/img4.jpg: Predicted in" in out


def test_demo_writes_the_video_and_the_json_of_every_frame(tmp_path, monkeypatch, capsys):
    make_folder(tmp_path, training=False)
    monkeypatch.chdir(tmp_path)
    args = ["detector", "demo", "cfg/coco.data", "cfg/yolov4.cfg", "yolov4.weights", "test.mp4", "-out_filename", "res.avi",
            "-json_file_output", "results.json", "-prefix", "frame", "-thresh", "0.2"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    cap = cv2.VideoCapture("res.avi")
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 160
    cap.release()
    frames = json.loads(Path("results.json").read_text())
    assert [f["frame_id"] for f in frames] == [1, 2, 3]
    assert err.strip() == ("darknetpy: note: -prefix frame: Darknet's PREFIX_%08d.jpg file of each annotated frame, instead of a "
                           "window; -out_filename writes the annotated video here")
    assert not list(tmp_path.glob("frame_*.jpg"))
    assert main(["detector", "demo", "cfg/coco.data", "cfg/yolov4.cfg", "yolov4.weights", "missing.mp4"]) == 2
    assert capsys.readouterr().err == "darknetpy: missing.mp4: no such video file\n"
    assert main(["detector", "demo", "cfg/coco.data", "cfg/yolov4.cfg", "yolov4.weights", "test.mp4", "file.mp4"]) == 2
    assert "demo takes one video file or stream" in capsys.readouterr().err


def test_flags_and_file_names_interleave_as_in_darknet(tmp_path, monkeypatch, capsys):
    make_folder(tmp_path, training=False)
    monkeypatch.chdir(tmp_path)
    args = ["detector", "test", "-ext_output", "cfg/coco.data", "-thresh", "0.3", "cfg/yolov4.cfg", "-i", "0", "yolov4.weights", "-dont_show", "dog.jpg"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert out.startswith("dog.jpg: Predicted in") and "left_x:" in out
    assert err.startswith("darknetpy: note: -i 0: Darknet's GPU index;") and err.count("\n") == 1


def test_save_labels_writes_each_box_once_with_its_best_class_where_darknet_reads_labels(tmp_path):
    image = tmp_path / "VOC" / "JPEGImages" / "a.jpg"
    image.parent.mkdir(parents=True)
    (tmp_path / "VOC" / "labels").mkdir()
    box = dict(objectness=0.9, x=0.5, y=0.25, w=0.125, h=0.0625, image_w=64, image_h=48)
    dets = [dp.Detection(3, "c", 0.8, **box), dp.Detection(1, "b", 0.6, **box), dp.Detection(2, "c", 0.7, **{**box, "x": 0.75})]
    assert dp.save_labels(image, dets) == tmp_path / "VOC" / "labels" / "a.txt"
    assert (tmp_path / "VOC" / "labels" / "a.txt").read_text() == "3 0.5000 0.2500 0.1250 0.0625\n2 0.7500 0.2500 0.1250 0.0625\n"
    assert dp.save_labels(tmp_path / "b.png", []).read_text() == ""  # beside the image, empty when nothing was found


def test_demo_stops_at_its_time_limit(tmp_path):
    _video(tmp_path / "test.mp4")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = dp.load_detector(None, None, None, fast=True)
    options = dp.DetectorTest(time_limit=1e-9, stream=io.StringIO())
    assert dp.run_detector_demo(model, str(tmp_path / "test.mp4"), options) == []
    assert len(dp.run_detector_demo(model, str(tmp_path / "test.mp4"), dp.DetectorTest(stream=io.StringIO()))) == 3
