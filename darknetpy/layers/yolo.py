"""``[yolo]``: the YOLOv3/v4 detection head.

Darknet: ``src/parser.c:parse_yolo``, ``src/yolo_layer.c:make_yolo_layer/forward_yolo_layer``
(darknet-reference.md §1.5, §3.5). Memory is ``[b][anchor][5+C][H][W]``; the output applies the
logistic to x, y, objectness and classes (w, h stay raw); AlexeyAB then maps x and y through
``S·v − (S−1)/2`` with ``S = scale_x_y``, and with ``new_coords=1`` applies no logistic at all
(the conv before it already did).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..boxes import Detections, correct_boxes, grid_candidates, threshold_probs
from ..cfg import Section
from ..errors import BadValueError, ShapeError
from ..registry import register_section
from .base import BuildContext, DarknetLayer

__all__ = ["Yolo", "YoloOptions", "read_mask_and_anchors"]

_IOU_KINDS = ("mse", "giou", "diou", "ciou")
_NMS_KINDS = {"default": "default", "greedynms": "greedynms", "diounms": "diounms"}  # parse_yolo; others: default


@dataclass(frozen=True)
class YoloOptions:
    """Every ``[yolo]`` key, with the flavour's defaults (the loss reads these)."""

    classes: int
    total: int
    mask: tuple[int, ...]
    anchors: tuple[float, ...]
    max_boxes: int
    jitter: float = 0.2
    ignore_thresh: float = 0.5
    truth_thresh: float = 1.0
    random: float = 0.0
    resize: float = 1.0
    scale_x_y: float = 1.0
    new_coords: int = 0
    iou_normalizer: float = 0.75
    obj_normalizer: float = 1.0
    cls_normalizer: float = 1.0
    delta_normalizer: float = 1.0
    iou_loss: str = "mse"
    iou_thresh_kind: str = "iou"
    iou_thresh: float = 1.0
    beta_nms: float = 0.6
    nms_kind: str = "default"
    focal_loss: int = 0
    max_delta: float = float("inf")
    label_smooth_eps: float = 0.0
    objectness_smooth: int = 0
    counters_per_class: tuple[int, ...] | None = None
    show_details: int = 1
    track_history_size: int = 5
    uc_normalizer: float = 1.0  # Gaussian_yolo
    yolo_point: str = "center"  # Gaussian_yolo
    extra: dict = field(default_factory=dict, compare=False)

    def anchor(self, n: int) -> tuple[float, float]:
        """Anchor (w, h) in input pixels of global anchor index ``n``."""
        return self.anchors[2 * n], self.anchors[2 * n + 1]


def read_mask_and_anchors(sec: Section, ctx: BuildContext) -> tuple[int, tuple[int, ...], tuple[float, ...]]:
    """``num``, ``mask`` (default ``0..num-1``) and ``anchors`` (default .5 each).

    Darknet keeps ``num`` anchors (values beyond ``2·num`` are ignored). A mask entry ``>= num``
    makes Darknet read past its anchor array (undefined behaviour); it is accepted with a warning
    when the file writes that anchor (as cspx-p7 does), and refused otherwise.
    """
    total = sec.get_int("num", 1)
    if total < 1:
        raise sec.error("must be at least 1", "num", BadValueError)
    mask = sec.get_ints("mask")
    mask = tuple(mask) if mask is not None else tuple(range(total))
    given = sec.get_floats("anchors") or []
    if any(m < 0 for m in mask):
        raise sec.error("mask values must not be negative", "mask", ShapeError)
    needed = max(total, max(mask, default=0) + 1)
    beyond = [m for m in mask if m >= total]
    if beyond:
        if len(given) < 2 * needed:
            raise sec.error(f"mask values {beyond} are not anchors of num={total}", "mask", ShapeError)
        warnings.warn(
            f"{sec.where()}: mask uses anchors {beyond} beyond num={total}: Darknet reads past its anchor array "
            "there (undefined); the anchors written in the file are used",
            UserWarning,
            stacklevel=3,
        )
    anchors = [0.5] * (2 * needed)
    for i, v in enumerate(given[: 2 * needed]):
        anchors[i] = v
    return total, mask, tuple(anchors)


def check_head_filters(sec: Section, ctx: BuildContext, per_anchor: int, n: int, what: str) -> None:
    """The conv before a head must give ``n·per_anchor`` channels (Darknet: l.outputs == params.inputs)."""
    c, h, w = ctx.in_shape
    expected = n * per_anchor * h * w
    if ctx.inputs != expected:
        raise sec.error(
            f"the layer before gives {c}x{h}x{w}, this head needs {n * per_anchor} channels "
            f"(filters=({what})·{n} = {n * per_anchor} in the [convolutional] before it)",
            cls=ShapeError,
        )


@register_section("yolo")
class Yolo(DarknetLayer):
    """YOLOv3 head: activations on the conv output, plus the options its loss and decoder use."""

    is_head = True
    has_cost = True

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        c, h, w = ctx.require_image(sec)
        classes = sec.get_int("classes", 20)
        if classes < 1:
            raise sec.error("must be at least 1", "classes", BadValueError)
        total, mask, anchors = read_mask_and_anchors(sec, ctx)
        check_head_filters(sec, ctx, classes + 5, len(mask), "classes+5")
        self.options = _read_options(sec, ctx, classes, total, mask, anchors)
        self.n = len(mask)
        self.classes = classes
        self.out_shape = (self.n * (classes + 5), h, w)
        self.outputs = self.n * (classes + 5) * h * w
        # AlexeyAB embedding_layer (tracking / contrastive): the layer and its filters per anchor
        self.embedding_layer: int | None = None
        self.embedding_size = 0
        if ctx.flavor.reads("yolo", "embedding_layer") and "embedding_layer" in sec:
            self.embedding_layer = ctx.layer_index(sec, "embedding_layer", sec.get_int("embedding_layer"))
            filters = ctx.layers[self.embedding_layer].out_shape[0]
            if filters % self.n:
                raise sec.error(f"layer {self.embedding_layer} has {filters} filters, not a multiple of {self.n} anchors", "embedding_layer", ShapeError)
            self.embedding_size = filters // self.n

    def forward(self, x: Tensor, cache: list) -> Tensor:
        x = self.image_input(x)
        return yolo_activate(x, self.n, self.classes + 5, self.options.scale_x_y, self.options.new_coords)

    def describe(self) -> tuple[str, str]:
        return "", f"{self.options.iou_loss}" if self.flavor.name == "alexeyab" else ""

    def get_detections(
        self, output: Tensor, net_w: int, net_h: int, image_sizes: "list[tuple[int, int]]", thresh: float, hier_thresh: float, letterbox: bool
    ) -> "list[Detections]":
        """``get_yolo_detections``: boxes with objectness > ``thresh``, corrected to each image."""
        o = self.options
        b, _, h, w = output.shape
        v = output.view(b, self.n, self.classes + 5, h, w).permute(0, 3, 4, 1, 2).reshape(b, h * w * self.n, -1)
        rows, cols, slots = grid_candidates(h, w, self.n, output.device)
        anchor_w = torch.tensor([o.anchors[2 * m] for m in o.mask], dtype=torch.float64, device=output.device)[slots]
        anchor_h = torch.tensor([o.anchors[2 * m + 1] for m in o.mask], dtype=torch.float64, device=output.device)[slots]
        out = []
        for i in range(b):
            p = v[i].float()
            objectness = p[:, 4]
            keep = objectness > thresh
            p, obj = p[keep], objectness[keep]
            x = (cols[keep] + p[:, 0]) / w
            y = (rows[keep] + p[:, 1]) / h
            if o.new_coords:
                bw = p[:, 2] * p[:, 2] * 4 * anchor_w[keep].float() / net_w
                bh = p[:, 3] * p[:, 3] * 4 * anchor_h[keep].float() / net_h
            else:
                bw = (torch.exp(p[:, 2].double()) * anchor_w[keep] / net_w).float()
                bh = (torch.exp(p[:, 3].double()) * anchor_h[keep] / net_h).float()
            prob = threshold_probs(obj[:, None] * p[:, 5:], thresh)
            boxes = correct_boxes(torch.stack([x, y, bw, bh], dim=1), image_sizes[i][0], image_sizes[i][1], net_w, net_h, letterbox)
            out.append(Detections(boxes, obj, prob))
        return out


def yolo_activate(x: Tensor, n: int, per_anchor: int, scale_x_y: float, new_coords: int) -> Tensor:
    """``forward_yolo_layer`` on a ``(B, n·per_anchor, H, W)`` tensor."""
    b, _, h, w = x.shape
    v = x.view(b, n, per_anchor, h, w)
    if new_coords:
        xy, rest = v[:, :, :2], v[:, :, 2:]
    else:
        xy = torch.sigmoid(v[:, :, :2])
        rest = torch.cat([v[:, :, 2:4], torch.sigmoid(v[:, :, 4:])], dim=2)
    if scale_x_y != 1.0:
        xy = xy * scale_x_y - (scale_x_y - 1) / 2
    return torch.cat([xy, rest], dim=2).view(b, n * per_anchor, h, w)


def _read_options(sec: Section, ctx: BuildContext, classes: int, total: int, mask, anchors) -> YoloOptions:
    f = ctx.flavor
    kind = "yolo"
    ab = f.reads(kind, "scale_x_y")
    values = dict(
        classes=classes,
        total=total,
        mask=mask,
        anchors=anchors,
        max_boxes=sec.get_int("max", f.yolo_max_boxes),
        jitter=sec.get_float("jitter", 0.2),
        ignore_thresh=sec.get_float("ignore_thresh", 0.5),
        truth_thresh=sec.get_float("truth_thresh", 1.0),
        random=sec.get_float("random", 0.0),
    )
    sec.mark_used("map")
    if ab:
        iou_loss = sec.get_str("iou_loss", "mse")
        nms_kind = sec.get_str("nms_kind", "default")
        counters = sec.get_ints("counters_per_class")
        if counters is not None and len(counters) != classes:
            raise sec.error(f"has {len(counters)} values for classes={classes}", "counters_per_class", ShapeError)
        values.update(
            resize=sec.get_float("resize", 1.0),
            scale_x_y=sec.get_float("scale_x_y", 1.0),
            new_coords=sec.get_int("new_coords", 0),
            iou_normalizer=sec.get_float("iou_normalizer", 0.75),
            obj_normalizer=sec.get_float("obj_normalizer", 1.0),
            cls_normalizer=sec.get_float("cls_normalizer", 1.0),
            delta_normalizer=sec.get_float("delta_normalizer", 1.0),
            iou_loss=iou_loss if iou_loss in _IOU_KINDS else "iou",
            iou_thresh_kind=sec.get_str("iou_thresh_kind", "iou"),
            iou_thresh=sec.get_float("iou_thresh", 1.0),
            beta_nms=sec.get_float("beta_nms", 0.6),
            nms_kind=_NMS_KINDS.get(nms_kind, "default"),
            focal_loss=sec.get_int("focal_loss", 0),
            max_delta=sec.get_float("max_delta", float("inf")),
            label_smooth_eps=sec.get_float("label_smooth_eps", 0.0),
            objectness_smooth=sec.get_int("objectness_smooth", 0),
            counters_per_class=tuple(counters) if counters is not None else None,
            show_details=sec.get_int("show_details", 1),
            track_history_size=sec.get_int("track_history_size", 5),
        )
        if values["iou_thresh_kind"] not in ("iou", "giou", "diou", "ciou"):
            raise sec.error("use iou, giou, diou or ciou", "iou_thresh_kind", BadValueError)
        sec.mark_used("sim_thresh", "dets_for_track", "dets_for_show", "track_ciou_norm")
    return YoloOptions(**values)
