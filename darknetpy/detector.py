"""``darknetpy detector test``: Darknet's detection command over images, folders, lists and videos.

Darknet: ``src/detector.c:test_detector`` (prints ``<image>: Predicted in ... milli-seconds.`` then
``name: NN%`` per box and class, with ``-ext_output`` the box in pixels; saves ``predictions.jpg``;
``-out`` writes a JSON of all images). Without a cfg and weights the bundled Yolo-Fastest-1.1 COCO
model is used.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator, Sequence

import cv2
import numpy as np

from .data import DataConfig, read_names
from .detect import Detection, detect, label_line
from .errors import DataError, DarknetError
from .image import draw_detections, load_image, save_image
from .model import Darknet
from .zoo import default_model, find_file

__all__ = ["IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "expand_inputs", "load_detector", "DetectorTest", "run_detector_test"]

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".tif", ".tiff", ".webp"}
VIDEO_EXTENSIONS = {".mp4", ".avi", ".mkv", ".mov", ".mpg", ".mpeg", ".m4v", ".webm"}


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
        elif find_file(p).exists():
            out.append(find_file(p))
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
    batch_size: int = 4
    progress: bool = True
    stream: IO[str] = field(default_factory=lambda: sys.stdout)


def _frames(path: Path, batch: int) -> Iterator[list[np.ndarray]]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"{path}: cannot open the video")
    frames: list[np.ndarray] = []
    try:
        while True:
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


def run_detector_test(model: Darknet, inputs: Sequence[str], options: DetectorTest) -> list[list[Detection]]:
    """Detect, print Darknet's lines, save the annotated images and the requested files."""
    paths = expand_inputs(inputs)
    if not paths:
        raise DataError("no images to detect (give image files, folders, lists or videos)")
    classes = len(model.names) if model.names else (model.heads[-1].options.classes if model.heads else 0)
    images = [p for p in paths if p.suffix.lower() not in VIDEO_EXTENSIONS]
    videos = [p for p in paths if p.suffix.lower() in VIDEO_EXTENSIONS]
    out_dir = Path(options.out_dir) if options.out_dir else (Path("predictions") if len(images) > 1 else None)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    results: list[list[Detection]] = []
    records: list[tuple[str, list[Detection]]] = []
    bar = _progress(len(images), options.progress and len(images) > 1)
    for start in range(0, len(images), options.batch_size):
        chunk = images[start : start + options.batch_size]
        arrays = []
        for p in chunk:
            try:
                arrays.append(load_image(p))
            except DataError as err:
                print(f"darknetpy: warning: {err}; skipped", file=sys.stderr)
                arrays.append(None)
        good = [(p, a) for p, a in zip(chunk, arrays) if a is not None]
        t0 = time.perf_counter()
        dets = detect(model, [a for _, a in good], options.thresh, options.nms, options.hier_thresh, options.letterbox, batch_size=options.batch_size, nms_kind=options.nms_kind) if good else []
        ms = (time.perf_counter() - t0) * 1000 / max(1, len(good))
        for (p, array), image_dets in zip(good, dets):
            print(f"{p}: Predicted in {ms:.6f} milli-seconds.", file=options.stream)
            for d in image_dets:
                print(label_line(d, options.ext_output), file=options.stream)
            target = (out_dir / f"{p.stem}.jpg") if out_dir is not None else Path("predictions.jpg")
            save_image(draw_detections(array, image_dets, classes), target)
            results.append(image_dets)
            records.append((str(p), image_dets))
        bar.update(len(chunk))
    bar.close()
    for video in videos:
        records.extend(_detect_video(model, video, options, classes))
    _write_outputs(records, options)
    return results


def _detect_video(model: Darknet, video: Path, options: DetectorTest, classes: int) -> list[tuple[str, list[Detection]]]:
    records = []
    writer = None
    frame_id = 0
    for frames in _frames(video, options.batch_size):
        dets = detect(model, frames, options.thresh, options.nms, options.hier_thresh, options.letterbox, batch_size=options.batch_size, nms_kind=options.nms_kind)
        for frame, image_dets in zip(frames, dets):
            frame_id += 1
            print(f"{video} frame {frame_id}: {len(image_dets)} objects", file=options.stream)
            for d in image_dets:
                print(label_line(d, options.ext_output), file=options.stream)
            records.append((f"{video}#{frame_id}", image_dets))
            if options.out_filename:
                drawn = draw_detections(frame, image_dets, classes)
                if writer is None:
                    fps = cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FPS) or 25.0
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
