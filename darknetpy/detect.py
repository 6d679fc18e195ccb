"""Detection as ``darknet detector test`` does it: pre-process, forward, decode every head, NMS.

Darknet: ``src/network.c:get_network_boxes`` (every head's ``get_*_detections`` in layer order),
``src/detector.c:test_detector`` (thresh .25 AlexeyAB / .5 pjreddie, hier .5, nms .45; NMS kind
from the last layer), ``src/image.c:draw_detections`` (one printed line per box and class above
the threshold) (darknet-reference.md §3.5, §3.6, §7.1).
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from .boxes import Detections
from .errors import DarknetError
from .image import ImageLike, prepare
from .nms import nms as run_nms

if TYPE_CHECKING:
    from .model import Darknet

__all__ = ["Detection", "network_boxes", "detect", "detections_to_list", "default_letterbox", "nms_settings"]


@dataclass(frozen=True)
class Detection:
    """One (box, class) pair above the threshold, as Darknet prints it."""

    class_id: int
    name: str
    score: float  # objectness · class probability (Darknet's prob)
    objectness: float
    x: float  # box centre and size relative to the image
    y: float
    w: float
    h: float
    image_w: int
    image_h: int

    @property
    def box(self) -> tuple[float, float, float, float]:
        """``(x1, y1, x2, y2)`` in pixels."""
        return (
            (self.x - self.w / 2) * self.image_w,
            (self.y - self.h / 2) * self.image_h,
            (self.x + self.w / 2) * self.image_w,
            (self.y + self.h / 2) * self.image_h,
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["box"] = list(self.box)
        return d


def default_letterbox(model: "Darknet") -> bool:
    """pjreddie always letterboxes; AlexeyAB only with ``letter_box=1`` in ``[net]``."""
    return model.flavor.always_letterbox or model.net.letter_box


def network_boxes(
    model: "Darknet",
    outputs: Sequence[Tensor],
    image_sizes: Sequence[tuple[int, int]],
    thresh: float,
    hier_thresh: float = 0.5,
    letterbox: bool | None = None,
) -> list[Detections]:
    """``get_network_boxes``: every head's candidates, per image, relative to the image."""
    letterbox = default_letterbox(model) if letterbox is None else letterbox
    _, net_h, net_w = model.input_shape
    per_image: list[list[Detections]] = [[] for _ in image_sizes]
    classes = 0
    for layer, out in zip(model.heads, outputs):
        if not hasattr(layer, "get_detections"):
            raise DarknetError(f"layer {layer.index} [{layer.section_type}] cannot decode boxes")
        dets = layer.get_detections(out, net_w, net_h, list(image_sizes), thresh, hier_thresh, letterbox)
        for i, d in enumerate(dets):
            per_image[i].append(d)
            classes = d.classes
    return [Detections.cat(parts, classes) for parts in per_image]


def nms_settings(model: "Darknet") -> tuple[str, float]:
    """The last layer's ``nms_kind``/``beta_nms`` (test_detector reads ``net.layers[net.n-1]``)."""
    options = getattr(model.layers[-1], "options", None)
    return getattr(options, "nms_kind", "default"), getattr(options, "beta_nms", 0.6)


def detections_to_list(dets: Detections, image_size: tuple[int, int], thresh: float, names: Sequence[str] | None) -> list[Detection]:
    """Every (box, class) with probability above ``thresh``, highest first."""
    rows, cols = torch.nonzero(dets.probs > thresh, as_tuple=True)
    out = []
    for r, c in zip(rows.tolist(), cols.tolist()):
        x, y, w, h = dets.boxes[r].tolist()
        name = names[c] if names is not None and c < len(names) else str(c)
        out.append(Detection(c, name, float(dets.probs[r, c]), float(dets.objectness[r]), x, y, w, h, *image_size))
    out.sort(key=lambda d: -d.score)
    return out


def detect(
    model: "Darknet",
    images: "ImageLike | Iterable[ImageLike]",
    thresh: float | None = None,
    nms: float = 0.45,
    hier_thresh: float = 0.5,
    letterbox: bool | None = None,
    names: Sequence[str] | None = None,
    batch_size: int = 8,
    nms_kind: str | None = None,
) -> list[list[Detection]]:
    """Darknet's detections for each image (a path, PIL image, ``(H, W, 3)`` array or ``(3, H, W)`` tensor).

    ``thresh`` defaults to the flavour's (.25 AlexeyAB, .5 pjreddie), ``letterbox`` to the
    flavour's rule; ``nms=0`` turns NMS off; ``nms_kind`` (``default`` = ``do_nms_sort``,
    ``greedynms``, ``diounms``) defaults to the last layer's, as ``test_detector`` does.
    """
    single = isinstance(images, (str, os.PathLike, np.ndarray, Tensor)) or hasattr(images, "convert")
    items = [images] if single else list(images)
    thresh = model.flavor.detect_thresh if thresh is None else thresh
    letterbox = default_letterbox(model) if letterbox is None else letterbox
    names = names if names is not None else model.names
    kind, beta = nms_settings(model)
    kind = kind if nms_kind is None else nms_kind
    _, net_h, net_w = model.input_shape
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    was_training = model.training
    model.eval()
    results: list[list[Detection]] = []
    try:
        for start in range(0, len(items), max(1, batch_size)):
            chunk = items[start : start + batch_size]
            prepared = [prepare(img, net_w, net_h, letterbox) for img in chunk]
            x = torch.stack([p[0] for p in prepared]).to(device, dtype)
            sizes = [p[1] for p in prepared]
            with torch.inference_mode():
                heads = model(x)
                boxes = network_boxes(model, [h.float().cpu() for h in heads], sizes, thresh, hier_thresh, letterbox)
            for dets, size in zip(boxes, sizes):
                if nms > 0:
                    dets = run_nms(dets, nms, kind, beta)
                results.append(detections_to_list(dets, size, thresh, names))
    finally:
        model.train(was_training)
    return results[0:1] if single else results


def label_line(d: Detection, ext_output: bool = False) -> str:
    """Darknet's printed line: ``dog: 61%`` (and the box in pixels with ``-ext_output``)."""
    text = f"{d.name}: {d.score * 100:.0f}%"
    if ext_output:
        left = round((d.x - d.w / 2) * d.image_w)
        top = round((d.y - d.h / 2) * d.image_h)
        text += f"\t(left_x: {left:4d}   top_y: {top:4d}   width: {round(d.w * d.image_w):4d}   height: {round(d.h * d.image_h):4d})"
    return text


def _clamp01(v: float) -> float:
    return min(1.0, max(0.0, v))


def class_color(class_id: int, classes: int) -> tuple[int, int, int]:
    """Darknet's ``get_color`` palette as an RGB triple (0..255)."""
    colors = [[1, 0, 1], [0, 0, 1], [0, 1, 1], [0, 1, 0], [1, 1, 0], [1, 0, 0]]
    offset = class_id * 123457 % max(1, classes)

    def channel(c: int) -> float:
        ratio = offset / max(1, classes) * 5
        i, j = math.floor(ratio), math.ceil(ratio)
        ratio -= i
        return (1 - ratio) * colors[i][c] + ratio * colors[j][c]

    return tuple(int(255 * _clamp01(channel(c))) for c in (2, 1, 0))  # type: ignore[return-value]


def verify_detections(case, tolerances: dict):
    """The ``detect`` check of :mod:`darknetpy.verify`: ``detections.txt`` from the case's input."""
    from .nms import do_nms_sort
    from .verify import FAILED, PASSED, CheckResult

    settings = case.info.get("detect", {})
    thresh, nms_thresh = settings.get("thresh", 0.25), settings.get("nms", 0.45)
    hier = settings.get("hier", 0.5)
    image_w, image_h = settings.get("image_size", (0, 0))
    model = case.model()
    x = torch.from_numpy(case.expected()["input"])
    with torch.no_grad():
        heads = model(x)
    (dets,) = network_boxes(model, heads, [(image_w, image_h)], thresh, hier, letterbox=True)
    dets = do_nms_sort(dets, nms_thresh)
    got = [
        (d.class_id, d.score, d.objectness, d.x, d.y, d.w, d.h)
        for d in detections_to_list(dets, (image_w, image_h), thresh, None)
    ]
    expected = []
    for line in (case.path / "detections.txt").read_text().splitlines():
        if line.strip():
            v = line.split()
            expected.append((int(v[0]), *map(float, v[1:7])))
    tol = tolerances["detect"]
    unmatched, worst = list(got), 0.0
    for e in expected:
        best = None
        for g in unmatched:
            if g[0] == e[0]:
                err = max(abs(a - b) for a, b in zip(g[1:], e[1:]))
                if best is None or err < best[0]:
                    best = (err, g)
        if best is None or best[0] > tol:
            return CheckResult(case.name, "detect", FAILED, best[0] if best else None, tol, f"no match for Darknet's line {e}")
        worst = max(worst, best[0])
        unmatched.remove(best[1])
    if unmatched:
        return CheckResult(case.name, "detect", FAILED, worst, tol, f"{len(unmatched)} detections Darknet does not have: {unmatched[:2]}")
    return CheckResult(case.name, "detect", PASSED, worst, tol, f"{len(expected)} detections, same set")
