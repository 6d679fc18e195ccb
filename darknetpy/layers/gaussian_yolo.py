"""``[Gaussian_yolo]`` (AlexeyAB only): Gaussian YOLOv3, a yolo head with a variance for each box value.

Darknet: ``src/parser.c:parse_gaussian_yolo``,
``src/gaussian_yolo_layer.c:make_gaussian_yolo_layer/forward_gaussian_yolo_layer``.

Per anchor there are ``classes + 9`` entries, planar like yolo (``[b][anchor][9+C][H][W]``):
``0 μx, 1 σx, 2 μy, 3 σy, 4 μw, 5 σw, 6 μh, 7 σh, 8 objectness, 9.. classes``.
``l.outputs = h·w·n·(classes+9)`` must equal the previous layer's outputs (``exit`` otherwise), with
``n`` the number of ``mask`` values; ``l.out_c/out_h/out_w`` are the input's.

Forward (CPU): logistic on entries 0, 1, 2, 3, 5, 7 and 8.. (objectness and classes); ``scale_x_y`` maps
only the means ``μx`` (0) and ``μy`` (2) through ``S·v − (S−1)/2`` (``scal_add_cpu`` on ``w·h`` values);
``μw`` (4) and ``μh`` (6) stay raw.

Keys (defaults): the yolo keys ``classes``=20, ``num``=1, ``mask``, ``max``=200, ``anchors``,
``jitter``=.2, ``ignore_thresh``=.5, ``truth_thresh``=1, ``iou_thresh``=1, ``random``=0 (float),
``resize``=1, ``scale_x_y``=1, ``max_delta``, ``counters_per_class``, ``label_smooth_eps``,
``objectness_smooth``, ``iou_normalizer``=.75, ``obj_normalizer``=1, ``cls_normalizer``=1,
``delta_normalizer``=1, ``iou_loss``=mse, ``iou_thresh_kind``=iou, ``beta_nms``=.6, ``nms_kind``
(default/greedynms/diounms/cornersnms), ``map``; and ``uc_normalizer``=1, ``yolo_point``=center
(``left_top``/``right_bottom``). It does not read yolo's ``new_coords``, ``focal_loss``, ``show_details``
or the tracking keys.

Where this differs: Darknet copies every ``anchors`` value into a ``2·num`` buffer (no bound); more values
than that are refused here.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..boxes import Detections, correct_boxes, grid_candidates, threshold_probs
from ..cfg import Section
from ..errors import BadValueError, ShapeError
from ..registry import register_section
from .base import BuildContext, DarknetLayer
from .softmax import read_map
from .yolo import YoloOptions, check_head_filters, read_mask_and_anchors

__all__ = ["GaussianYolo", "gaussian_yolo_activate"]

_IOU_KINDS = ("mse", "giou", "diou", "ciou")
_NMS_KINDS = ("default", "greedynms", "diounms", "cornersnms")
_POINTS = ("center", "left_top", "right_bottom")
PER_ANCHOR = 9  # 4 means + 4 sigmas + objectness


@register_section("Gaussian_yolo")
class GaussianYolo(DarknetLayer):
    """Gaussian YOLOv3 head: activations on the conv output, plus the options its loss and decoder use."""

    is_head = True
    has_cost = True

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        c, h, w = ctx.require_image(sec)
        classes = sec.get_int("classes", 20)
        if classes < 1:
            raise sec.error("must be at least 1", "classes", BadValueError)
        total, mask, anchors = read_mask_and_anchors(sec, ctx)
        given = sec.get_floats("anchors") or []
        if len(given) > 2 * total:
            raise sec.error(
                f"{len(given)} values for num={total} anchors ({2 * total} values); Darknet's parse_gaussian_yolo "
                f"would write past its anchor buffer",
                "anchors",
                ShapeError,
            )
        check_head_filters(sec, ctx, classes + PER_ANCHOR, len(mask), "classes+9")
        self.options = _read_options(sec, ctx, classes, total, mask, anchors)
        self.n = len(mask)
        self.classes = classes
        self.out_shape = (self.n * (classes + PER_ANCHOR), h, w)
        self.outputs = self.n * (classes + PER_ANCHOR) * h * w

    def forward(self, x: Tensor, cache: list) -> Tensor:
        x = self.image_input(x)
        return gaussian_yolo_activate(x, self.n, self.classes + PER_ANCHOR, self.options.scale_x_y)

    def describe(self) -> tuple[str, str]:
        return "", f"{self.options.iou_loss}"

    def get_detections(
        self, output: Tensor, net_w: int, net_h: int, image_sizes: "list[tuple[int, int]]", thresh: float, hier_thresh: float, letterbox: bool
    ) -> "list[Detections]":
        """``get_gaussian_yolo_detections``: prob = obj·class·(1 − mean of the 4 uncertainties)."""
        o = self.options
        b, _, h, w = output.shape
        v = output.view(b, self.n, self.classes + PER_ANCHOR, h, w).permute(0, 3, 4, 1, 2).reshape(b, h * w * self.n, -1)
        rows, cols, slots = grid_candidates(h, w, self.n, output.device)
        anchor_w = torch.tensor([o.anchors[2 * m] for m in o.mask], dtype=torch.float64, device=output.device)[slots]
        anchor_h = torch.tensor([o.anchors[2 * m + 1] for m in o.mask], dtype=torch.float64, device=output.device)[slots]
        out = []
        for i in range(b):
            p = v[i].float()
            keep = p[:, 8] > thresh
            p, obj = p[keep], p[keep, 8]
            bw = (torch.exp(p[:, 4].double()) * anchor_w[keep] / net_w).float()
            bh = (torch.exp(p[:, 6].double()) * anchor_h[keep] / net_h).float()
            x = (cols[keep] + p[:, 0]) / w
            y = (rows[keep] + p[:, 2]) / h
            if o.yolo_point == "left_top":
                x, y = x + bw / 2, y + bh / 2
            elif o.yolo_point == "right_bottom":
                x, y = x - bw / 2, y - bh / 2
            uncertainty = p[:, [1, 3, 5, 7]]
            mean_uc = (uncertainty[:, 0] + uncertainty[:, 1] + uncertainty[:, 2] + uncertainty[:, 3]) / 4.0
            prob = (obj[:, None] * p[:, 9:]).double() * (1.0 - mean_uc.double())[:, None]
            prob = threshold_probs(prob.float(), thresh)
            boxes = correct_boxes(torch.stack([x, y, bw, bh], dim=1), image_sizes[i][0], image_sizes[i][1], net_w, net_h, letterbox)
            out.append(Detections(boxes, obj, prob, {"uncertainty": uncertainty}))
        return out


def gaussian_yolo_activate(x: Tensor, n: int, per_anchor: int, scale_x_y: float) -> Tensor:
    """``forward_gaussian_yolo_layer`` (CPU) on a ``(B, n·per_anchor, H, W)`` tensor."""
    b, ch, h, w = x.shape
    v = x.view(b, n, per_anchor, h, w)
    s = torch.sigmoid(v)
    mx, sx, my, sy = s[:, :, 0:1], s[:, :, 1:2], s[:, :, 2:3], s[:, :, 3:4]
    if scale_x_y != 1.0:
        beta = -0.5 * (scale_x_y - 1)  # scal_add_cpu(w·h, S, -0.5·(S-1), ...)
        mx = mx * scale_x_y + beta
        my = my * scale_x_y + beta
    parts = [mx, sx, my, sy, v[:, :, 4:5], s[:, :, 5:6], v[:, :, 6:7], s[:, :, 7:]]
    return torch.cat(parts, dim=2).view(b, ch, h, w)


def _read_options(sec: Section, ctx: BuildContext, classes: int, total: int, mask, anchors) -> YoloOptions:
    """``parse_gaussian_yolo``'s keys, in a :class:`YoloOptions` (which has ``uc_normalizer``/``yolo_point``)."""
    max_delta = sec.get_float("max_delta", float("inf"))
    counters = sec.get_ints("counters_per_class")
    if counters is not None and len(counters) != classes:
        raise sec.error(f"has {len(counters)} values for classes={classes}", "counters_per_class", ShapeError)
    iou_loss = sec.get_str("iou_loss", "mse")
    thresh_kind = sec.get_str("iou_thresh_kind", "iou")
    if thresh_kind not in ("iou", "giou", "diou", "ciou"):
        raise sec.error("use iou, giou, diou or ciou", "iou_thresh_kind", BadValueError)
    nms_kind = sec.get_str("nms_kind", "default")
    point = sec.get_str("yolo_point", "center")
    values = dict(
        classes=classes,
        total=total,
        mask=mask,
        anchors=anchors,
        max_boxes=sec.get_int("max", ctx.flavor.yolo_max_boxes),
        max_delta=max_delta,
        counters_per_class=tuple(counters) if counters is not None else None,
        label_smooth_eps=sec.get_float("label_smooth_eps", 0.0),
        scale_x_y=sec.get_float("scale_x_y", 1.0),
        objectness_smooth=sec.get_int("objectness_smooth", 0),
        uc_normalizer=sec.get_float("uc_normalizer", 1.0),
        iou_normalizer=sec.get_float("iou_normalizer", 0.75),
        obj_normalizer=sec.get_float("obj_normalizer", 1.0),
        cls_normalizer=sec.get_float("cls_normalizer", 1.0),
        delta_normalizer=sec.get_float("delta_normalizer", 1.0),
        iou_loss=iou_loss if iou_loss in _IOU_KINDS else "iou",
        iou_thresh_kind=thresh_kind,
        beta_nms=sec.get_float("beta_nms", 0.6),
        nms_kind=nms_kind if nms_kind in _NMS_KINDS else "default",
        yolo_point=point if point in _POINTS else "center",
        jitter=sec.get_float("jitter", 0.2),
        resize=sec.get_float("resize", 1.0),
        ignore_thresh=sec.get_float("ignore_thresh", 0.5),
        truth_thresh=sec.get_float("truth_thresh", 1.0),
        iou_thresh=sec.get_float("iou_thresh", 1.0),
        random=sec.get_float("random", 0.0),
        extra={"map": read_map(sec)},
    )
    return YoloOptions(**values)
