"""``darknet detector valid``: the detector over a ``.data`` file's ``valid`` list, and its result files.

Darknet: ``src/detector.c:validate_detector`` (both forks) with ``print_detector_detections``
(``comp4_det_test_<class>.txt``) and ``print_cocos`` (``coco_results.json``), thresh .005 and NMS
.45 (pjreddie, darknet-reference.md §7.2; AlexeyAB's ``validate_detector``: thresh .001, NMS .6).
:func:`collect_detections` is the loop shared with
``validate_detector_map`` (:mod:`darknetpy.evaluate`): ``network_predict`` on the stretched input
(letterboxed for pjreddie and for AlexeyAB with ``[net] letter_box=1``), ``get_network_boxes`` and
``do_nms_sort``/``diounms_sort`` with the last detection layer's ``nms_kind``, on the fused path as
AlexeyAB's ``fuse_conv_batchnorm`` does.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from .boxes import Detections
from .data import DataConfig, read_image_list
from .errors import DarknetError, DataError
from .image import load_image, prepare
from .nms import do_nms_sort

if TYPE_CHECKING:
    from .model import Darknet

__all__ = [
    "VALID_THRESH", "VALID_NMS", "COCO_IDS", "ImageDetections", "ValidReport", "collect_detections",
    "detection_classes", "pixel_corners", "valid_list", "validate",
]

log = logging.getLogger(__name__)

VALID_THRESH = 0.005  # pjreddie validate_detector, AlexeyAB validate_detector_map: thresh = .005
VALID_NMS = 0.45  # nms = .45
_AB_VALID = (0.001, 0.6)  # AlexeyAB src/detector.c:validate_detector: thresh = .001, nms = .6 (its map keeps .005/.45)
COCO_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35,
    36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65,
    67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90,
)  # src/detector.c: coco_ids


@dataclass
class ImageDetections:
    """One image's detections after NMS, in the order of Darknet's ``detection`` array.

    ``boxes`` ``(N, 4)`` float32 ``x, y, w, h`` relative to the image; ``probs`` ``(N, C)`` float32
    ``objectness·class`` (0 where at or below the threshold or suppressed).
    """

    path: str
    width: int
    height: int
    boxes: np.ndarray
    probs: np.ndarray




def _detection_layer_options(model: "Darknet"):
    """The last [yolo]/[Gaussian_yolo]/[region] layer's options (``validate_detector_map``'s ``l``)."""
    if not model.heads:
        raise DarknetError(f"{model.cfg.path}: the network has no detection layer to evaluate")
    return model.heads[-1].options


def detection_classes(model: "Darknet") -> int:
    """``l.classes`` of the last detection layer."""
    return int(getattr(_detection_layer_options(model), "classes", 0))


def _darknet_order(before: np.ndarray) -> np.ndarray:
    """The array order ``do_nms_sort`` leaves: one stable qsort per class, class 0 first (glibc's qsort
    is a merge sort), so the last class decides, ties broken by the earlier classes, then by position."""
    if before.shape[0] == 0:
        return np.zeros(0, np.int64)
    return np.lexsort(tuple(-before[:, k] for k in range(before.shape[1])))


def collect_detections(
    model: "Darknet",
    paths: Sequence["str | os.PathLike"],
    thresh: float = VALID_THRESH,
    nms: float = VALID_NMS,
    letterbox: bool | None = None,
    hier_thresh: float = 0.0,
    batch_size: int = 8,
    decoder: str = "stb",
    progress: bool = False,
) -> list[ImageDetections]:
    """``network_predict`` + ``get_network_boxes`` + NMS for each image, as the evaluation loops do.

    Darknet: ``validate_detector_map`` (``hier_thresh`` 0) and ``validate_detector`` (.5). The NMS is
    ``do_nms_sort`` or ``diounms_sort`` with the last detection layer's ``nms_kind``/``beta_nms``;
    ``nms=0`` keeps every candidate. Unreadable images are a :class:`DataError`, as Darknet stops too.
    """
    from .detect import default_letterbox, network_boxes

    letterbox = default_letterbox(model) if letterbox is None else letterbox
    options = _detection_layer_options(model)
    kind, beta = getattr(options, "nms_kind", "default"), getattr(options, "beta_nms", 0.6)
    _, net_h, net_w = model.input_shape
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    bar = _progress(len(paths), progress)
    out: list[ImageDetections] = []
    for start in range(0, len(paths), max(1, batch_size)):
        chunk = [os.fspath(p) for p in paths[start : start + batch_size]]
        prepared = [prepare(load_image(p, decoder), net_w, net_h, letterbox) for p in chunk]
        x = torch.stack([t for t, _ in prepared]).to(device, dtype)
        sizes = [size for _, size in prepared]
        with torch.inference_mode():
            heads = model(x)
            candidates = network_boxes(model, [h.float().cpu() for h in heads], sizes, thresh, hier_thresh, letterbox)
        for path, (w, h), dets in zip(chunk, sizes, candidates):
            out.append(_after_nms(path, w, h, dets, nms, kind, beta))
        bar.update(len(chunk))
    bar.close()
    return out


def _after_nms(path: str, w: int, h: int, dets: Detections, nms: float, kind: str, beta: float) -> ImageDetections:
    if nms > 0:
        dets = dets.select(dets.objectness != 0)
        before = dets.probs.numpy().astype(np.float32)
        dets = do_nms_sort(dets, nms, kind, beta)
        order = _darknet_order(before)
    else:
        order = np.arange(len(dets))
    classes = dets.probs.shape[-1] if dets.probs.dim() == 2 else 0
    boxes = dets.boxes.numpy().astype(np.float32).reshape(-1, 4)[order]
    probs = dets.probs.numpy().astype(np.float32).reshape(-1, classes)[order]  # no detections: (0, classes)
    return ImageDetections(path, w, h, boxes, probs)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool):
    if not enabled or total < 2:
        return _NoBar()
    import sys

    from tqdm import tqdm

    return tqdm(total=total, unit="img", file=sys.stderr, leave=False)


def valid_list(model: "Darknet", data: "str | os.PathLike | DataConfig", default_valid: str) -> tuple[DataConfig, list[Path], list[str]]:
    """The parsed ``.data`` file, its ``valid`` images and the class names (as many as the network's classes,
    which Darknet requires too)."""
    cfg = data if isinstance(data, DataConfig) else DataConfig.read(data)
    classes = detection_classes(model)
    names = cfg.names()
    if len(names) != classes:
        raise DataError(f"{cfg.path}: {len(names)} names in {cfg.path_of('names')} but the network has classes={classes}")
    return cfg, read_image_list(cfg.resolve(cfg.get("valid", default_valid))), names


def prepare_model(model: "Darknet", fast: bool) -> None:
    """Eval mode, and with ``fast`` the fused path (batch norm folded in double, as AlexeyAB's
    ``fuse_conv_batchnorm`` before evaluating) unless the model already has it."""
    model.eval()
    if fast and model.inference_plan is None:
        model.optimize_for_inference()




@dataclass
class ValidReport:
    """The files ``detector valid`` wrote and how many lines went into them."""

    files: list[Path]
    images: int
    detections: int
    format: str


def _image_id(path: str, flavor: str) -> int:
    """``get_coco_image_id`` (pjreddie: what follows the last ``_`` of the path, else its last ``/``,
    even when that ``_`` is in a folder name) or AlexeyAB's ``atoi(basecfg(path))`` (the file name
    without extension); ``atoi`` stops at the first non-digit."""
    if flavor == "pjreddie":
        cut = path.rfind("_")
        text = path[(cut if cut >= 0 else path.rfind("/")) + 1 :]
    else:
        text = Path(path).name.split(".")[0]
    digits = ""
    for ch in text.lstrip():
        if ch.isdigit() or (not digits and ch in "+-"):
            digits += ch
        else:
            break
    try:
        return int(digits)
    except ValueError:
        return 0


def pixel_corners(d: ImageDetections, offset: float, low: float) -> np.ndarray:
    """``x - w/2. + offset`` etc. of ``relative=0`` boxes (float32 pixels, edges in double), clamped
    to ``[low, w]``/``[low, h]`` as ``print_detector_detections``/``print_cocos`` do."""
    x, y, w, h = (d.boxes[:, i] for i in range(4))
    px, pw = (x * np.float32(d.width)).astype(np.float64), (w * np.float32(d.width)).astype(np.float64)
    py, ph = (y * np.float32(d.height)).astype(np.float64), (h * np.float32(d.height)).astype(np.float64)
    xmin = (px - pw / 2.0 + offset).astype(np.float32)
    xmax = (px + pw / 2.0 + offset).astype(np.float32)
    ymin = (py - ph / 2.0 + offset).astype(np.float32)
    ymax = (py + ph / 2.0 + offset).astype(np.float32)
    xmin = np.where(xmin < low, np.float32(low), xmin)
    ymin = np.where(ymin < low, np.float32(low), ymin)
    xmax = np.where(xmax > d.width, np.float32(d.width), xmax)
    ymax = np.where(ymax > d.height, np.float32(d.height), ymax)
    return np.stack([xmin, ymin, xmax, ymax], axis=1)


def validate(
    model: "Darknet",
    data: "str | os.PathLike | DataConfig",
    out_dir: "str | os.PathLike | None" = None,
    format: str | None = None,
    outfile: str | None = None,
    letterbox: bool | None = None,
    batch_size: int = 8,
    decoder: str = "stb",
    fast: bool = True,
    progress: bool = False,
) -> ValidReport:
    """``darknet detector valid``: the result files of every image of the ``valid`` list.

    ``format`` ``"voc"``: ``<out_dir>/<outfile or comp4_det_test_><name>.txt`` per class, lines
    ``id prob xmin ymin xmax ymax`` (1-based pixels clamped to ``[1, w]``/``[1, h]``);
    ``"coco"``: ``<out_dir>/<outfile or coco_results>.json`` with ``bbox = [xmin, ymin, w, h]``
    (clamped to the image) and ``category_id`` from ``coco_ids``. Default: the ``.data`` file's
    ``eval=``, else VOC files (both forks' default). ``out_dir`` defaults to the
    ``.data`` file's ``results=`` (``results``). Thresh .005, NMS .45 (pjreddie, §7.2; AlexeyAB: .001,
    .6); the input is letterboxed for pjreddie and for AlexeyAB with ``[net] letter_box=1``.

    Darknet: ``validate_detector``, ``print_detector_detections``, ``print_cocos`` (both forks).
    """
    cfg, paths, names = valid_list(model, data, "data/train.list")
    flavor = model.flavor.name
    fmt = format or cfg.get("eval") or "voc"  # both forks: option_find_str(options, "eval", "voc")
    if fmt not in ("voc", "coco"):
        raise DataError(f"eval={fmt}: only 'voc' (comp4_det_test_<class>.txt) and 'coco' (coco_results.json) are written")
    folder = Path(out_dir if out_dir is not None else cfg.resolve(cfg.get("results", "results")))
    folder.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    prepare_model(model, fast)
    try:
        thresh, nms = (VALID_THRESH, VALID_NMS) if flavor == "pjreddie" else _AB_VALID
        dets = collect_detections(model, paths, thresh, nms, letterbox, 0.5, batch_size, decoder, progress)
    finally:
        model.train(was_training)
    if fmt == "voc":
        files = [folder / f"{outfile or 'comp4_det_test_'}{name}.txt" for name in names]
        lines: list[list[str]] = [[] for _ in names]
        for d in dets:
            ident = Path(d.path).name.rsplit(".", 1)[0]  # basecfg
            corners = pixel_corners(d, 1.0, 1.0)
            for i, j in zip(*np.nonzero(d.probs)):
                x1, y1, x2, y2 = (float(v) for v in corners[i])
                lines[j].append(f"{ident} {float(d.probs[i, j]):f} {x1:f} {y1:f} {x2:f} {y2:f}\n")
        for path, rows in zip(files, lines):
            path.write_text("".join(rows))
        count = sum(len(rows) for rows in lines)
    else:
        files = [folder / f"{outfile or 'coco_results'}.json"]
        rows = []
        for d in dets:
            image_id = _image_id(d.path, flavor)
            corners = pixel_corners(d, 0.0, 0.0)
            for i, j in zip(*np.nonzero(d.probs > 0)):
                x1, y1, x2, y2 = corners[i]
                category = COCO_IDS[j] if j < len(COCO_IDS) else int(j) + 1
                rows.append(
                    f'{{"image_id":{image_id}, "category_id":{category}, "bbox":[{float(x1):f}, {float(y1):f}, '
                    f'{float(x2 - x1):f}, {float(y2 - y1):f}], "score":{float(d.probs[i, j]):f}}}'
                )
        files[0].write_text("[\n" + ",\n".join(rows) + "\n]\n")
        count = len(rows)
    log.info("detector valid: %d detections of %d images written to %s", count, len(dets), folder)
    return ValidReport(files, len(dets), count, fmt)
