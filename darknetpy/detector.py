"""``darknetpy detector test`` and ``demo``: Darknet's detection commands over images, folders,
lists, videos, streams and cameras.

Darknet: ``src/detector.c:test_detector`` (prints ``<image>: Predicted in ... milli-seconds.`` then
``name: NN%`` per box and class, with ``-ext_output`` the box in pixels; saves ``predictions.jpg``;
``-out`` writes a JSON of all images; ``-save_labels`` a label file per image; without an image it
reads paths from standard input), ``src/demo.c:demo`` (a video file, stream or camera). Without a
cfg and weights the bundled Yolo-Fastest-1.1 COCO model is used.
"""
from __future__ import annotations

import itertools
import json
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import cv2
import numpy as np

from .data import DataConfig, read_names
from .data.labels import label_path
from .detect import Detection, detect, label_line
from .errors import DataError, DarknetError
from .image import draw_detections, load_image, save_image
from .model import Darknet
from .zoo import default_model, find_file

__all__ = [
    "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "PROMPT", "expand_inputs", "load_detector", "DetectorTest", "read_image_paths",
    "run_detector_test", "run_detector_demo", "save_labels",
]

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".tif", ".tiff", ".webp"}
VIDEO_EXTENSIONS = {".mp4", ".avi", ".mkv", ".mov", ".mpg", ".mpeg", ".m4v", ".webm"}
PROMPT = "Enter Image Path: "
_STREAM_TIMEOUT_MS = 10000  # opening or reading a network stream


def expand_inputs(inputs: Sequence[str]) -> list[Path]:
    """Images, folders (their images, sorted), image lists (``train.txt`` style) and videos."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out.extend(sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS))
        elif p.suffix.lower() == ".txt" and p.is_file():
            base = p.parent
            for line in p.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    q = Path(line)
                    out.append(q if q.is_absolute() or q.exists() else base / q)
        elif (found := find_file(p)).exists():
            out.append(found)
        else:
            raise DataError(f"{p}: no such image, folder, list or video")
    return out


def load_detector(
    data: str | None = None,
    cfg: str | None = None,
    weights: str | None = None,
    flavor: str | None = None,
    fast: bool = False,
    half: bool = False,
) -> Darknet:
    """The model of ``detector test`` with its class names; ``load_detector()`` is the bundled
    Yolo-Fastest-1.1 COCO model (from any install: it is package data).

    ``fast``: eval mode with :meth:`Darknet.optimize_for_inference` (batch norm folded in double, as
    AlexeyAB's detector does); ``half``: the same in bfloat16 (heads stay float32).
    """
    model = _load_detector(data, cfg, weights, flavor)
    if fast or half:
        import torch

        from .fuse import bf16_supported

        if half and not bf16_supported():
            raise DarknetError("--half needs a CPU with native bfloat16 (AVX512-BF16 or AMX); run without it")
        model.eval().optimize_for_inference(dtype=torch.bfloat16 if half else None)
    return model


def _load_detector(data: str | None, cfg: str | None, weights: str | None, flavor: str | None) -> Darknet:
    if cfg is None:
        cfg_path, weights_path, names_path = default_model()
        model = Darknet(cfg_path, weights_path, flavor=flavor)
        model.names = read_names(names_path)
        return model
    if weights is None:
        raise DarknetError(f"{cfg}: give the weights file too")
    model = Darknet(cfg, weights, flavor=flavor)
    if data is not None:
        model.names = DataConfig.read(data).names()
    else:
        classes = getattr(model.heads[-1].options, "classes", 0) if model.heads else 0
        if classes == 80:
            model.names = read_names(default_model()[2])
    return model


@dataclass
class DetectorTest:
    """Options of one ``detector test`` run."""

    thresh: float | None = None
    hier_thresh: float = 0.5
    nms: float = 0.45
    nms_kind: str | None = None
    letterbox: bool | None = None
    ext_output: bool = False
    save_txt: str | None = None
    out_json: str | None = None
    out_dir: str | None = None  # where annotated images go (default: predictions.jpg / predictions/)
    out_filename: str | None = None  # annotated video
    save_labels: bool = False  # AlexeyAB's -save_labels: a label file beside each image (pseudo-labelling)
    time_limit: float = 0.0  # demo's -time_limit_sec: stop reading a video after this many seconds (0: never)
    batch_size: int = 4
    progress: bool = True
    stream: IO[str] = field(default_factory=lambda: sys.stdout)


def read_image_paths(stream: IO[str], prompt: IO[str] | None = None) -> Iterator[str]:
    """Image paths from ``stream``, one a line, each read once the previous image is done: the loop of
    Darknet's ``detector test`` without an image, which writes ``Enter Image Path: `` to ``prompt``
    (give it where the input is a terminal) before each. Blank lines are skipped.
    """
    while True:
        if prompt is not None:
            prompt.write(PROMPT)
            prompt.flush()
        line = stream.readline()
        if not line:
            return
        path = line.rstrip("\r\n")
        if path.strip():
            yield path


def save_labels(image: "str | Path", detections: Sequence[Detection]) -> Path:
    """AlexeyAB's ``-save_labels``: ``image``'s label file (:func:`darknetpy.data.labels.label_path`)
    with a ``class x y w h`` line per box, for the box's best class above the threshold.

    Darknet: ``src/detector.c:test_detector`` (``%d %2.4f %2.4f %2.4f %2.4f``; every image gets its
    file, empty when nothing was found).
    """
    best: dict[tuple[float, float, float, float], Detection] = {}
    for d in detections:  # one Detection per (box, class) above the threshold
        key = (d.x, d.y, d.w, d.h)
        if key not in best or d.score > best[key].score:
            best[key] = d
    target = label_path(image)
    target.write_text("".join(f"{d.class_id} {d.x:2.4f} {d.y:2.4f} {d.w:2.4f} {d.h:2.4f}\n" for d in best.values()))
    return target


def _open_capture(source: "str | Path | int") -> cv2.VideoCapture:
    """A video file, a stream URL (``rtsp://``, ``http://...mjpg``) or a camera index, opened."""
    if isinstance(source, int):
        cap = cv2.VideoCapture(source)
        if not cap.isOpened():
            raise DataError(f"camera {source}: cannot be opened (no such camera, or in use); give a video file or stream URL")
        return cap
    text = str(source)
    if "://" in text:
        timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, _STREAM_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, _STREAM_TIMEOUT_MS]
        cap = cv2.VideoCapture(text, cv2.CAP_ANY, timeouts)
        if not cap.isOpened():
            raise DataError(f"{text}: cannot open the video stream")
        return cap
    if not Path(text).is_file():
        raise DataError(f"{text}: no such video file")
    cap = cv2.VideoCapture(text)
    if not cap.isOpened():
        raise DataError(f"{text}: cannot open the video")
    return cap


def _frames(cap: cv2.VideoCapture, batch: int, time_limit: float = 0.0) -> Iterator[list[np.ndarray]]:
    start = time.perf_counter()
    frames: list[np.ndarray] = []
    try:
        while not (time_limit > 0 and time.perf_counter() - start > time_limit):
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            if len(frames) == batch:
                yield frames
                frames = []
        if frames:
            yield frames
    finally:
        cap.release()


def _classes(model: Darknet) -> int:
    return len(model.names) if model.names else (model.heads[-1].options.classes if model.heads else 0)


def run_detector_test(model: Darknet, inputs: "Sequence[str] | Iterator[str]", options: DetectorTest) -> list[list[Detection]]:
    """Detect, print Darknet's lines, save the annotated images and the requested files.

    ``inputs``: images, folders, image lists and videos; or an iterator of image paths (as
    :func:`read_image_paths` gives), each detected as it comes, its picture written to
    ``predictions.jpg`` (or into ``out_dir``) as Darknet's ``Enter Image Path:`` loop does.
    """
    classes = _classes(model)
    if isinstance(inputs, Iterator):
        images: Iterable[Path] = (find_file(p) for p in inputs)
        videos: list[Path] = []
        out_dir = Path(options.out_dir) if options.out_dir else None
        bar = _NoBar()
    else:
        paths = expand_inputs(inputs)
        if not paths:
            raise DataError("no images to detect (give image files, folders, lists or videos)")
        images = [p for p in paths if p.suffix.lower() not in VIDEO_EXTENSIONS]
        videos = [p for p in paths if p.suffix.lower() in VIDEO_EXTENSIONS]
        out_dir = Path(options.out_dir) if options.out_dir else (Path("predictions") if len(images) > 1 else None)
        bar = _progress(len(images), options.progress and len(images) > 1)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    records: list[tuple[str, list[Detection]]] = []
    iterator = iter(images)
    while chunk := list(itertools.islice(iterator, max(1, options.batch_size))):
        records.extend(_detect_images(model, chunk, options, out_dir, classes))
        bar.update(len(chunk))
    bar.close()
    results = [dets for _, dets in records]
    for video in videos:
        records.extend(_detect_video(model, video, options, classes))
    _write_outputs(records, options)
    return results


def _detect_images(model: Darknet, chunk: list[Path], options: DetectorTest, out_dir: Path | None, classes: int) -> list[tuple[str, list[Detection]]]:
    good = []
    for p in chunk:
        try:
            good.append((p, load_image(p)))
        except DataError as err:
            print(f"darknetpy: warning: {err}; skipped", file=sys.stderr)
    if not good:
        return []
    t0 = time.perf_counter()
    dets = detect(model, [a for _, a in good], options.thresh, options.nms, options.hier_thresh, options.letterbox, batch_size=options.batch_size, nms_kind=options.nms_kind)
    ms = (time.perf_counter() - t0) * 1000 / len(good)
    records = []
    for (p, array), image_dets in zip(good, dets):
        print(f"{p}: Predicted in {ms:.6f} milli-seconds.", file=options.stream)
        for d in image_dets:
            print(label_line(d, options.ext_output), file=options.stream)
        target = (out_dir / f"{p.stem}.jpg") if out_dir is not None else Path("predictions.jpg")
        save_image(draw_detections(array, image_dets, classes), target)
        if options.save_labels:
            save_labels(p, image_dets)
        records.append((str(p), image_dets))
    return records


def run_detector_demo(model: Darknet, source: "str | int", options: DetectorTest) -> list[list[Detection]]:
    """``detector demo``: every frame of a video file, a stream URL or a camera (its index), with
    Darknet's lines; ``out_filename`` writes the annotated video, ``out_json`` the frames' JSON
    (AlexeyAB's ``-json_file_output``), ``time_limit`` stops it.

    Darknet: ``src/demo.c:demo``, without its window, servers and frame averaging.

    Raises:
        DataError: the video, stream or camera cannot be opened.
    """
    records = _detect_video(model, source, options, _classes(model))
    _write_outputs(records, options)
    return [dets for _, dets in records]


def _detect_video(model: Darknet, source: "str | Path | int", options: DetectorTest, classes: int) -> list[tuple[str, list[Detection]]]:
    cap = _open_capture(source)
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    name = f"camera {source}" if isinstance(source, int) else str(source)
    records = []
    writer = None
    frame_id = 0
    for frames in _frames(cap, options.batch_size, options.time_limit):
        dets = detect(model, frames, options.thresh, options.nms, options.hier_thresh, options.letterbox, batch_size=options.batch_size, nms_kind=options.nms_kind)
        for frame, image_dets in zip(frames, dets):
            frame_id += 1
            print(f"{name} frame {frame_id}: {len(image_dets)} objects", file=options.stream)
            for d in image_dets:
                print(label_line(d, options.ext_output), file=options.stream)
            records.append((f"{name}#{frame_id}", image_dets))
            if options.out_filename:
                drawn = draw_detections(frame, image_dets, classes)
                if writer is None:
                    writer = cv2.VideoWriter(options.out_filename, cv2.VideoWriter_fourcc(*"MJPG"), fps, (frame.shape[1], frame.shape[0]))
                writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
    if writer is not None:
        writer.release()
    return records


def _write_outputs(records: list[tuple[str, list[Detection]]], options: DetectorTest) -> None:
    if options.save_txt:
        with open(options.save_txt, "w") as f:
            for name, dets in records:
                if len(records) > 1:
                    f.write(f"# {name}\n")
                for d in dets:
                    f.write(f"{d.class_id} {d.score:.6f} {d.objectness:.6f} {d.x:.6f} {d.y:.6f} {d.w:.6f} {d.h:.6f}\n")
    if options.out_json:
        frames = []
        for frame_id, (name, dets) in enumerate(records, start=1):
            objects = []
            for d in dets:
                x1, y1, _, _ = d.box
                objects.append(
                    {
                        "class_id": d.class_id,
                        "name": d.name,
                        "relative_coordinates": {"center_x": d.x, "center_y": d.y, "width": d.w, "height": d.h},
                        "confidence": d.score,
                        "bbox": [x1, y1, d.w * d.image_w, d.h * d.image_h],
                    }
                )
            frames.append({"frame_id": frame_id, "filename": name, "objects": objects})
        Path(options.out_json).write_text(json.dumps(frames, indent=1))


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="img", file=sys.stderr, leave=False)
