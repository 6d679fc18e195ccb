"""COCO's box mAP@[.50:.95], computed here with pycocotools' rules (no pycocotools needed).

pycocotools: ``cocoeval.py:COCOeval`` (``evaluate`` / ``evaluateImg``, ``accumulate``,
``summarize``) and ``maskApi.c:bbIou``. Per image and category the detections are sorted by score
(stable) and cut to ``max_dets``; at each IoU threshold ``.50:.05:.95`` a detection takes the free
truth of highest IoU ``>= t`` (the last one on ties; crowd truths stay free and, like truths outside
the area range, are ignored rather than counted); the precision envelope is read at 101 recall
points; a category without truths is left out of the mean. Darknet has no COCO evaluator of its own
(AlexeyAB's ``-points 101`` is one IoU only); ``tests/unit/test_evaluate.py`` checks these numbers
against ``COCOeval`` when the ``eval`` extra is installed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from .valid import ImageDetections

__all__ = ["AREA_RANGES", "IOU_THRESHOLDS", "RECALL_POINTS", "CocoMap", "coco_evaluate", "box_iou_coco", "to_coco"]

IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_POINTS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_RANGES = {"all": (0.0, 1e5**2), "small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e5**2)}


@dataclass
class CocoMap:
    """``COCOeval.stats``-like figures (fractions; -1 where nothing was evaluated)."""

    map: float
    map50: float
    map75: float
    ar: float
    per_category: dict[int, float]
    by_area: dict[str, float] = field(default_factory=dict)
    max_dets: int = 100

    def as_dict(self) -> dict:
        return {
            "map": self.map, "map50": self.map50, "map75": self.map75, "ar": self.ar, "max_dets": self.max_dets,
            "per_category": {str(k): v for k, v in self.per_category.items()}, "by_area": dict(self.by_area),
        }


def box_iou_coco(dt: np.ndarray, gt: np.ndarray, iscrowd: np.ndarray) -> np.ndarray:
    """``bbIou``: ``(D, G)`` IoU of ``[x, y, w, h]`` boxes in double; a crowd truth divides by the detection's area."""
    dt = np.asarray(dt, np.float64).reshape(-1, 4)[:, None, :]
    gt = np.asarray(gt, np.float64).reshape(-1, 4)[None, :, :]
    w = np.minimum(dt[..., 2] + dt[..., 0], gt[..., 2] + gt[..., 0]) - np.maximum(dt[..., 0], gt[..., 0])
    h = np.minimum(dt[..., 3] + dt[..., 1], gt[..., 3] + gt[..., 1]) - np.maximum(dt[..., 1], gt[..., 1])
    inter = w * h
    da, ga = dt[..., 2] * dt[..., 3], gt[..., 2] * gt[..., 3]
    union = np.where(np.asarray(iscrowd, bool)[None, :], da, da + ga - inter)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / union
    return np.where((w <= 0) | (h <= 0), 0.0, iou)


def _match_image(ious: np.ndarray, gt_ignore: np.ndarray, crowd: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``evaluateImg``'s greedy matching at every threshold at once: ``(T, D)`` matched and ignored flags.

    Truths come sorted with the ignored ones last; a detection takes the last truth of highest IoU
    among the free non-ignored ones, else among the ignored ones (crowd truths are never used up).
    """
    t_count, (d_count, g_count) = len(thresholds), ious.shape
    taken = np.zeros((t_count, g_count), bool)
    matched = np.zeros((t_count, d_count), bool)
    ignored = np.zeros((t_count, d_count), bool)
    limit = np.minimum(thresholds, 1 - 1e-10)[:, None]
    reverse = np.arange(g_count)[::-1]
    rows = np.arange(t_count)
    for d in range(d_count):
        free = (~taken | crowd[None, :]) & (ious[d][None, :] >= limit)
        choice = np.full(t_count, -1)
        for group in (~gt_ignore, gt_ignore):
            ok = free & group[None, :] & (choice[:, None] < 0)
            if not ok.any():
                continue
            score = np.where(ok, ious[d][None, :], -np.inf)[:, reverse]
            last = reverse[np.argmax(score, axis=1)]
            choice = np.where(ok.any(axis=1) & (choice < 0), last, choice)
        hit = choice >= 0
        matched[hit, d] = True
        ignored[hit, d] = gt_ignore[choice[hit]]
        taken[rows[hit], choice[hit]] = True
    return matched, ignored


def coco_evaluate(
    gts: Sequence[dict],
    dets: Sequence[dict],
    categories: Sequence[int] | None = None,
    image_ids: Sequence[int] | None = None,
    max_dets: int = 100,
    areas: bool = True,
) -> CocoMap:
    """COCO box AP of ``dets`` against ``gts`` (COCO JSON dicts).

    Args:
        gts: ``{"image_id", "category_id", "bbox": [x, y, w, h], "area"?, "iscrowd"?}`` (``area``
            defaults to ``w·h``).
        dets: ``{"image_id", "category_id", "bbox", "score"}`` (``coco_results.json`` lines).
        categories, image_ids: the sets evaluated (default: those of ``gts``; pass ``range(classes)``
            to score detections of classes without truths too, which still leave the mean).
        max_dets: detections kept per image and category (COCO's 100).
        areas: also the small/medium/large APs (``by_area``).
    """
    cats = sorted(set(categories) if categories is not None else {g["category_id"] for g in gts})
    images = sorted(set(image_ids) if image_ids is not None else {g["image_id"] for g in gts})
    by_key_gt: dict[tuple, list] = {}
    by_key_dt: dict[tuple, list] = {}
    for g in gts:
        by_key_gt.setdefault((g["image_id"], g["category_id"]), []).append(g)
    for d in dets:
        by_key_dt.setdefault((d["image_id"], d["category_id"]), []).append(d)
    ranges = AREA_RANGES if areas else {"all": AREA_RANGES["all"]}
    precision = {a: np.full((len(IOU_THRESHOLDS), len(RECALL_POINTS), len(cats)), -1.0) for a in ranges}
    recall = {a: np.full((len(IOU_THRESHOLDS), len(cats)), -1.0) for a in ranges}
    for k, cat in enumerate(cats):
        prepared = [_prepare(by_key_gt.get((image, cat), []), by_key_dt.get((image, cat), []), max_dets) for image in images]
        prepared = [one for one in prepared if one is not None]
        for name, area_range in ranges.items():
            results = [_evaluate_image(one, area_range) for one in prepared]
            truths = sum(r[3] for r in results)
            if not results or truths == 0:
                continue
            p, r = _accumulate(
                np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results], axis=1),
                np.concatenate([r[2] for r in results], axis=1), truths,
            )
            precision[name][:, :, k], recall[name][:, k] = p, r

    def mean(values: np.ndarray) -> float:
        valid = values[values > -1]
        return float(np.mean(valid)) if valid.size else -1.0

    allp = precision["all"]
    return CocoMap(
        map=mean(allp), map50=mean(allp[0]), map75=mean(allp[5]) if len(IOU_THRESHOLDS) > 5 else -1.0,
        ar=mean(recall["all"]), per_category={cat: mean(allp[:, :, k]) for k, cat in enumerate(cats)},
        by_area={a: mean(precision[a]) for a in ranges if a != "all"}, max_dets=max_dets,
    )


def _prepare(gt: list, dt: list, max_dets: int):
    """``computeIoU`` of one image and category: detections by score (stable), cut to ``max_dets``."""
    if not gt and not dt:
        return None
    dt = [dt[i] for i in np.argsort([-d["score"] for d in dt], kind="mergesort")[:max_dets]]
    crowd = np.array([bool(g.get("iscrowd", 0)) for g in gt], bool)
    area = np.array([g["area"] if "area" in g else g["bbox"][2] * g["bbox"][3] for g in gt], np.float64)
    gt_boxes = np.array([g["bbox"] for g in gt], np.float64).reshape(-1, 4)
    dt_boxes = np.array([d["bbox"] for d in dt], np.float64).reshape(-1, 4)
    ious = box_iou_coco(dt_boxes, gt_boxes, crowd) if len(dt) and len(gt) else None
    scores = np.array([d["score"] for d in dt], np.float64)
    return scores, dt_boxes[:, 2] * dt_boxes[:, 3], crowd, area, ious


def _evaluate_image(prepared: tuple, area_range: tuple[float, float]):
    """``evaluateImg`` of one image and category: (scores, matched, ignored, truths counted)."""
    scores, dt_area, crowd, area, ious = prepared
    gt_ignore = crowd | (area < area_range[0]) | (area > area_range[1])
    order = np.argsort(gt_ignore, kind="mergesort")
    if ious is not None:
        matched, ignored = _match_image(ious[:, order], gt_ignore[order], crowd[order], IOU_THRESHOLDS)
    else:
        matched = ignored = np.zeros((len(IOU_THRESHOLDS), len(scores)), bool)
    outside = (dt_area < area_range[0]) | (dt_area > area_range[1])
    ignored = ignored | (~matched & outside[None, :])
    return scores, matched, ignored, int(np.count_nonzero(~gt_ignore))


def _accumulate(scores: np.ndarray, matched: np.ndarray, ignored: np.ndarray, truths: int) -> tuple[np.ndarray, np.ndarray]:
    """``accumulate`` of one category and area range: ``(T, R)`` interpolated precision and ``(T,)`` recall."""
    order = np.argsort(-scores, kind="mergesort")
    matched, ignored = matched[:, order], ignored[:, order]
    tp = np.cumsum(matched & ~ignored, axis=1).astype(float)
    fp = np.cumsum(~matched & ~ignored, axis=1).astype(float)
    n = tp.shape[1]
    precision = np.zeros((tp.shape[0], len(RECALL_POINTS)))
    recall = np.zeros(tp.shape[0])
    for t in range(tp.shape[0]):
        rc = tp[t] / truths
        pr = tp[t] / (fp[t] + tp[t] + np.spacing(1))
        recall[t] = rc[-1] if n else 0.0
        envelope = np.maximum.accumulate(pr[::-1])[::-1] if n else pr
        inds = np.searchsorted(rc, RECALL_POINTS, side="left")
        precision[t] = np.where(inds < n, envelope[np.minimum(inds, max(n - 1, 0))] if n else 0.0, 0.0)
    return precision, recall


def to_coco(detections: "Sequence[ImageDetections]", truths: Sequence[np.ndarray]) -> tuple[list[dict], list[dict]]:
    """Truths and detections as COCO dicts in pixels: image ids ``1..``, category id = class index.

    Truth boxes are ``(x - w/2)·W`` etc. in double; detections are ``print_cocos``'s clamped boxes.
    """
    from .valid import pixel_corners

    gts, dts = [], []
    for image_id, (d, truth) in enumerate(zip(detections, truths), start=1):
        for c, x, y, w, h in np.asarray(truth, np.float64).reshape(-1, 5):
            box = [(x - w / 2) * d.width, (y - h / 2) * d.height, w * d.width, h * d.height]
            gts.append({"image_id": image_id, "category_id": int(c), "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
        corners = pixel_corners(d, 0.0, 0.0).astype(np.float64)
        for i, j in zip(*np.nonzero(d.probs > 0)):
            x1, y1, x2, y2 = corners[i]
            dts.append({"image_id": image_id, "category_id": int(j), "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(d.probs[i, j])})
    return gts, dts
