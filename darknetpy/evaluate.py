"""``darknet detector map``: AlexeyAB's mAP, with Darknet's matching rules and printout.

Darknet: AlexeyAB ``src/detector.c:validate_detector_map`` (darknet-reference.md §7.3). The
detections are :func:`darknetpy.valid.collect_detections`' (thresh .005, hier 0, NMS .45 of the last
detection layer's kind, stretched input unless ``[net] letter_box=1``, batch norm folded); the
truths are the label files, read as ``read_boxes`` does. A detection matches the same-class truth
of highest IoU strictly above ``iou_thresh``; the detections of all images are sorted by probability
and a matched truth is a TP once (VOC's greedy rule); AP is the area under the curve at every unique
recall (``points=0``) or the mean of 11 / 101 interpolated points; classes without truths count as
AP 0. COCO's mAP@[.50:.95] of the same detections comes from :mod:`darknetpy.cocoeval`.
"""
from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .data import DataConfig, label_path, read_image_list
from .errors import DarknetError, DataError
from .valid import VALID_NMS, VALID_THRESH, collect_detections, detection_classes, prepare_model, valid_list

if TYPE_CHECKING:
    from .model import Darknet

__all__ = ["MapReport", "darknet_iou", "read_truths", "evaluate_detections", "evaluate_map"]


# ---- boxes and truths ---------------------------------------------------------------------------
def darknet_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``box_iou`` (AlexeyAB ``src/box.c``) of ``(N, 4)`` against ``(M, 4)`` ``x, y, w, h`` boxes: ``(N, M)``.

    Float32 in C's order of operations; 0 where the intersection or the union is 0.
    """
    a = np.asarray(a, np.float32)[:, None, :]
    b = np.asarray(b, np.float32)[None, :, :]
    two = np.float32(2)
    with np.errstate(invalid="ignore", divide="ignore"):
        def overlap(x1, w1, x2, w2):
            return np.minimum(x1 + w1 / two, x2 + w2 / two) - np.maximum(x1 - w1 / two, x2 - w2 / two)

        ow = overlap(a[..., 0], a[..., 2], b[..., 0], b[..., 2])
        oh = overlap(a[..., 1], a[..., 3], b[..., 1], b[..., 3])
        inter = np.where((ow < 0) | (oh < 0), np.float32(0), ow * oh)
        union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
        iou = inter / union
    return np.where((inter == 0) | (union == 0), np.float32(0), iou).astype(np.float32)


def read_truths(path: "str | os.PathLike", classes: int | None = None) -> tuple[np.ndarray, list[str]]:
    """``read_boxes``: ``(N, 5)`` float32 ``class x y w h`` rows of a label file, and its problems.

    Every ``%d %f %f %f %f`` group is a truth, zero-sized boxes included (Darknet checks nothing);
    reading stops at the first group that does not parse. A missing file is no truths (AlexeyAB
    prints ``Can't open label file`` and goes on). A class outside ``0..classes-1`` would index past
    Darknet's arrays; it is left out and named.
    """
    p = Path(path)
    try:
        tokens = p.read_text(encoding="utf-8", errors="replace").split()
    except (FileNotFoundError, IsADirectoryError):
        return np.zeros((0, 5), np.float32), [f"{p}: can't open label file"]
    rows, problems = [], []
    for start in range(0, len(tokens) - 4, 5):
        group = tokens[start : start + 5]
        try:
            cls = int(group[0])
            values = [float(v) for v in group[1:]]
        except ValueError:
            problems.append(f"{p}: stopped reading at {' '.join(group)!r}")
            break
        if cls < 0 or (classes is not None and cls >= classes):
            problems.append(f"{p}: class {cls} outside 0..{(classes or 0) - 1}; left out")
            continue
        rows.append([cls, *values])
    return np.asarray(rows, np.float32).reshape(-1, 5), problems


# ---- the mAP of validate_detector_map -------------------------------------------------------------
@dataclass
class MapReport:
    """What ``darknet detector map`` prints, as numbers. ``text()`` gives Darknet's lines."""

    names: list[str]
    points: int
    iou_thresh: float
    thresh: float
    ap: list[float]
    truths_per_class: list[int]
    detections_per_class: list[int]
    tp_per_class: list[int]
    fp_per_class: list[int]
    avg_iou_per_class: list[float]
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    average_iou: float
    map: float
    detections_count: int
    unique_truth_count: int
    images: int = 0
    letterbox: bool = False
    seconds: float = 0.0
    coco: dict | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def classes(self) -> int:
        return len(self.ap)

    def as_dict(self) -> dict:
        """Plain numbers (JSON-ready); ``ap``/``map`` as fractions, per class by name."""
        per_class = [
            {
                "class_id": i, "name": self.names[i], "ap": self.ap[i], "truths": self.truths_per_class[i],
                "detections": self.detections_per_class[i], "tp": self.tp_per_class[i], "fp": self.fp_per_class[i],
                "fn": self.truths_per_class[i] - self.tp_per_class[i], "avg_iou": self.avg_iou_per_class[i],
            }
            for i in range(self.classes)
        ]
        d = {
            "map": self.map, "points": self.points, "iou_thresh": self.iou_thresh, "thresh": self.thresh,
            "classes": per_class, "precision": _nan_none(self.precision), "recall": _nan_none(self.recall),
            "f1": _nan_none(self.f1), "tp": self.tp, "fp": self.fp, "fn": self.fn, "average_iou": self.average_iou,
            "detections_count": self.detections_count, "unique_truth_count": self.unique_truth_count,
            "images": self.images, "letterbox": self.letterbox, "seconds": self.seconds,
        }
        if self.coco is not None:
            d["coco"] = self.coco
        if self.problems:
            d["problems"] = list(self.problems)
        return d

    def text(self) -> str:
        """Darknet's printout (``validate_detector_map``, AlexeyAB 59596d7), line for line."""
        iou = np.float32(self.iou_thresh)
        lines = [f" detections_count = {self.detections_count}, unique_truth_count = {self.unique_truth_count}  "]
        for i in range(self.classes):
            lines.append(
                f"class_id = {i}, name = {self.names[i]}, ap = {self.ap[i] * 100:2.2f}%   \t "
                f"(TP = {self.tp_per_class[i]}, FP = {self.fp_per_class[i]}) "
            )
        t = float(np.float32(self.thresh))
        lines += [
            "",
            f" for conf_thresh = {t:1.2f}, precision = {_c(self.precision, '1.2f')}, recall = {_c(self.recall, '1.2f')}, "
            f"F1-score = {_c(self.f1, '1.2f')} ",
            f" for conf_thresh = {t:0.2f}, TP = {self.tp}, FP = {self.fp}, FN = {self.fn}, "
            f"average IoU = {self.average_iou * 100:2.2f} % ",
            "",
            f" IoU threshold = {float(iou * np.float32(100)):2.0f} %, "
            + (f"used {self.points} Recall-points " if self.points else "used Area-Under-Curve for each unique Recall "),
            f" mean average precision (mAP@{float(iou):0.2f}) = {self.map:f}, or {self.map * 100:2.2f} % ",
        ]
        if self.coco is not None:
            lines.append(
                f" COCO mAP@[.50:.95] = {self.coco['map']:f}, mAP@.50 = {self.coco['map50']:f}, "
                f"mAP@.75 = {self.coco['map75']:f} (101 recall points, up to {self.coco['max_dets']} detections per image and class)"
            )
        return "\n".join(lines) + "\n"


def _c(value: float, spec: str) -> str:
    """printf of a float that may be 0/0 (glibc prints ``-nan``)."""
    return "-nan" if math.isnan(value) else format(value, spec)


def _nan_none(value: float) -> float | None:
    return None if math.isnan(value) else value


def _average_precision(tp: np.ndarray, truths: int, points: int) -> float:
    """AP of one class from its detections in rank order (``tp`` per detection of the class).

    Darknet computes P and R at every global rank; between the class's own detections they repeat
    and contribute nothing, so the class's subsequence gives the same sums:
    ``points=0``: Σ ΔR·max_{r'≥r} P over the ranks (with the ``R_0·maxP`` head segment);
    ``points=N``: the mean over ``r = k/(N-1)`` of the max P at ranks with R ≥ r (0 if none).
    """
    n = tp.shape[0]
    if n == 0:
        return 0.0
    tp_sum = np.cumsum(tp, dtype=np.int64)
    fp_sum = np.arange(1, n + 1, dtype=np.int64) - tp_sum
    precision = tp_sum.astype(np.float64) / (tp_sum + fp_sum).astype(np.float64)
    recall = tp_sum.astype(np.float64) / float(truths) if truths > 0 else np.zeros(n)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    if points == 0:
        delta = np.diff(np.concatenate(([0.0], recall)))
        return float(np.sum(delta * envelope))
    levels = np.arange(points, dtype=np.float64) * 1.0 / (points - 1)
    first = np.searchsorted(recall, levels, side="left")  # recall is non-decreasing
    best = np.where(first < n, envelope[np.minimum(first, n - 1)], 0.0)
    return float(np.sum(best) / points)


@dataclass
class _ImageMatches:
    """One image's (box, class) detections in Darknet's loop order and what they matched."""

    probs: np.ndarray  # (K,) float32
    classes: np.ndarray  # (K,) int
    truth_index: np.ndarray  # (K,) global truth index, -1 when unmatched
    max_iou: np.ndarray  # (K,) float32 IoU with that truth
    kept: np.ndarray  # (K,) False: dropped as a difficult object
    first: np.ndarray  # (K,) the first kept detection of the image to reach its truth


def _match_image(boxes: np.ndarray, probs: np.ndarray, truth: np.ndarray, hard: np.ndarray | None, offset: int, iou_t: np.float32) -> _ImageMatches:
    """The per-image loop of ``validate_detector_map``: every (box, class) with prob > 0, box by box
    and class by class, takes the same-class truth of highest IoU > ``iou_t`` (first on ties)."""
    rows, cols = np.nonzero(np.asarray(probs) > 0)
    p = np.asarray(probs, np.float32)[rows, cols]
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)[rows]
    truth_cls = truth[:, 0].astype(np.int64)
    ious = darknet_iou(boxes, truth[:, 1:])
    valid = (ious > iou_t) & (cols[:, None] == truth_cls[None, :])
    masked = np.where(valid, ious, np.float32(-1))
    matched = valid.any(axis=1)
    best = masked.argmax(axis=1) if truth.shape[0] else np.zeros(len(rows), np.int64)
    max_iou = np.where(matched, masked[np.arange(len(rows)), best] if truth.shape[0] else 0, 0).astype(np.float32)
    truth_index = np.where(matched, offset + best, -1)
    kept = np.ones(len(rows), bool)
    if hard is not None and hard.shape[0]:
        hits = (darknet_iou(boxes, hard[:, 1:]) > iou_t) & (cols[:, None] == hard[:, 0].astype(np.int64)[None, :])
        kept = matched | ~hits.any(axis=1)
    first = np.zeros(len(rows), bool)
    hit = np.nonzero(matched)[0]
    if len(hit):
        first[hit[np.unique(truth_index[hit], return_index=True)[1]]] = True
    return _ImageMatches(p, cols, truth_index, max_iou, kept, first)


def evaluate_detections(
    detections: Sequence[tuple[np.ndarray, np.ndarray]],
    truths: Sequence[np.ndarray],
    classes: int,
    names: Sequence[str] | None = None,
    points: int = 0,
    iou_thresh: float = 0.5,
    thresh: float = 0.25,
    difficult: Sequence[np.ndarray] | None = None,
) -> MapReport:
    """``validate_detector_map``'s matching and sums over per-image detections and truths.

    Args:
        detections: per image, ``(boxes (N, 4) x y w h, probs (N, C))`` in Darknet's array order.
        truths: per image, ``(M, 5)`` ``class x y w h`` rows (same coordinates as the boxes).
        classes: the number of classes (a class without truths has AP 0 and counts in the mean).
        points: 0 (area under the curve at every unique recall), 11 or 101 recall points.
        iou_thresh: a detection matches a truth of its class with IoU strictly above it.
        thresh: the probability above which TP/FP/avg IoU are counted (``-thresh``).
        difficult: per image, ``(K, 5)`` truths whose unmatched detections are dropped.

    Dropped (difficult) detections still count as FP at ``thresh``, and at ``thresh`` a detection is
    a TP only if no earlier detection of its image (any probability) took its truth, as in Darknet.
    All kept detections are stable-sorted by prob (glibc's qsort is a merge sort); a detection is
    a TP if its truth is not yet taken, else an FP.
    """
    _check_points(points)
    names = list(names) if names is not None else [str(i) for i in range(classes)]
    iou_t, thr = np.float32(iou_thresh), np.float32(thresh)
    truth_count = np.zeros(classes, np.int64)
    tp_thr, fp_thr = np.zeros(classes, np.int64), np.zeros(classes, np.int64)
    iou_sum, iou_sum_class = np.float32(0), np.zeros(classes, np.float32)
    parts: list[_ImageMatches] = []
    offset = 0
    for index, ((boxes, probs), truth) in enumerate(zip(detections, truths)):
        truth = np.asarray(truth, np.float32).reshape(-1, 5)
        np.add.at(truth_count, truth[:, 0].astype(np.int64), 1)
        hard = np.asarray(difficult[index], np.float32).reshape(-1, 5) if difficult is not None else None
        m = _match_image(boxes, probs, truth, hard, offset, iou_t)
        for k in np.nonzero(m.probs > thr)[0]:  # float32 sums in Darknet's order
            if m.first[k]:
                tp_thr[m.classes[k]] += 1
                iou_sum = np.float32(iou_sum + m.max_iou[k])
                iou_sum_class[m.classes[k]] = np.float32(iou_sum_class[m.classes[k]] + m.max_iou[k])
            else:
                fp_thr[m.classes[k]] += 1
        parts.append(m)
        offset += truth.shape[0]
    p = np.concatenate([m.probs[m.kept] for m in parts]) if parts else np.zeros(0, np.float32)
    order = np.argsort(-p, kind="stable")
    cls = (np.concatenate([m.classes[m.kept] for m in parts]) if parts else np.zeros(0, np.int64))[order]
    tidx = (np.concatenate([m.truth_index[m.kept] for m in parts]) if parts else np.zeros(0, np.int64))[order]
    tp = np.zeros(len(order), bool)
    hit = np.nonzero(tidx >= 0)[0]
    if len(hit):
        tp[hit[np.unique(tidx[hit], return_index=True)[1]]] = True
    ap = [_average_precision(tp[cls == c], int(truth_count[c]), points) for c in range(classes)]
    return _report(names, points, iou_thresh, thresh, ap, truth_count, np.bincount(cls, minlength=classes)[:classes],
                   tp_thr, fp_thr, iou_sum, iou_sum_class, offset, len(truths))


def _check_points(points: int) -> None:
    if points < 0 or points == 1:
        raise DarknetError(f"points={points}: use 0 (area under the curve), 11 or 101")


def _report(names, points, iou_thresh, thresh, ap, truth_count, per_class, tp_thr, fp_thr, iou_sum, iou_sum_class, unique, images) -> MapReport:
    """The printed figures: P/R/F1 in float32 as Darknet divides them, avg IoU over TP + FP."""
    tp, fp = int(tp_thr.sum()), int(fp_thr.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.float32(tp) / (np.float32(tp) + np.float32(fp))
        recall = np.float32(tp) / (np.float32(tp) + np.float32(unique - tp))
        f1 = np.float32(2) * precision * recall / (precision + recall)
    counted = tp_thr + fp_thr
    return MapReport(
        names=names, points=points, iou_thresh=float(iou_thresh), thresh=float(thresh), ap=ap,
        truths_per_class=truth_count.tolist(), detections_per_class=per_class.tolist(), tp_per_class=tp_thr.tolist(),
        fp_per_class=fp_thr.tolist(),
        avg_iou_per_class=[float(iou_sum_class[c] / np.float32(n)) if n else 0.0 for c, n in enumerate(counted)],
        tp=tp, fp=fp, fn=unique - tp, precision=float(precision), recall=float(recall), f1=float(f1),
        average_iou=float(iou_sum / np.float32(tp + fp)) if tp + fp else 0.0,
        map=float(sum(ap) / len(ap)) if ap else 0.0, detections_count=int(per_class.sum()), unique_truth_count=unique,
        images=images,
    )


def evaluate_map(
    model: "Darknet",
    data: "str | os.PathLike | DataConfig",
    points: int = 0,
    iou_thresh: float = 0.5,
    thresh: float = 0.25,
    letterbox: bool | None = None,
    coco: bool = False,
    batch_size: int = 8,
    decoder: str = "stb",
    fast: bool = True,
    progress: bool = False,
) -> MapReport:
    """``darknet detector map``: AlexeyAB's mAP of ``model`` on the ``valid`` list of a ``.data`` file.

    Truths are read from each image's label file by the model flavour's rule
    (:func:`~darknetpy.data.label_path`); the ``.data`` file's ``difficult`` list (parallel to
    ``valid``) drops detections of difficult objects. ``letterbox`` defaults to ``[net] letter_box``
    (pjreddie: always). ``coco`` adds COCO's mAP@[.50:.95] of the same detections (pixel boxes,
    :func:`darknetpy.cocoeval.coco_evaluate`). ``fast`` folds batch norm as AlexeyAB does
    (:meth:`Darknet.optimize_for_inference`); ``decoder="opencv"`` decodes JPEGs ~40x faster but not
    with stb_image's pixels.

    Darknet: ``src/detector.c:validate_detector_map`` (see :func:`evaluate_detections`).
    """
    from .detect import default_letterbox

    _check_points(points)  # before the pass over the images, not after it
    start = time.perf_counter()
    cfg, paths, names = valid_list(model, data, "data/train.txt")
    classes = detection_classes(model)
    problems: list[str] = []

    def truths_of(image: Path) -> np.ndarray:
        boxes, issues = read_truths(label_path(image, model.flavor.name), classes)
        problems.extend(issues)
        return boxes

    truths = [truths_of(p) for p in paths]
    difficult = None
    if cfg.get("difficult"):
        hard_paths = read_image_list(cfg.resolve(cfg.get("difficult")))
        if len(hard_paths) < len(paths):
            raise DataError(f"{cfg.path}: the difficult list has {len(hard_paths)} images, valid has {len(paths)}")
        difficult = [truths_of(p) for p in hard_paths[: len(paths)]]
    for line in problems:
        warnings.warn(line, stacklevel=2)
    letterbox = default_letterbox(model) if letterbox is None else letterbox
    was_training = model.training
    prepare_model(model, fast)
    try:
        dets = collect_detections(model, paths, VALID_THRESH, VALID_NMS, letterbox, 0.0, batch_size, decoder, progress)
    finally:
        model.train(was_training)
    report = evaluate_detections([(d.boxes, d.probs) for d in dets], truths, classes, names, points, iou_thresh, thresh, difficult)
    if coco:
        from .cocoeval import coco_evaluate, to_coco

        gts, results = to_coco(dets, truths)
        report.coco = coco_evaluate(gts, results, range(classes), range(1, len(dets) + 1)).as_dict()
    report.letterbox, report.problems, report.seconds = letterbox, problems, time.perf_counter() - start
    return report


