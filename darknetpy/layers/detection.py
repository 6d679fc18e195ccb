"""``[detection]``: the YOLOv1 detection head.

Darknet: ``src/parser.c:parse_detection``, ``src/detection_layer.c:make_detection_layer/forward_detection_layer``
(darknet-reference.md §1.5). Both forks:

- keys ``coords``=1, ``classes``=1, ``rescore``=0, ``num``=1, ``side``=7, ``softmax``=0, ``sqrt``=0,
  ``max`` (PJ 90, AB 200), ``coord_scale``=1, ``forced``=0, ``object_scale``=1, ``noobject_scale``=1,
  ``class_scale``=1, ``jitter``=.2, ``random`` (PJ int, AB float), ``reorg``=0; AB adds ``resize``=1;
- ``make_detection_layer`` asserts ``side²·((1+coords)·num + classes) == inputs``; ``l.outputs = l.inputs``;
  ``l.out_c/out_h/out_w`` are never set (0×0×0), so the output is flat ``(B, outputs)``;
- memory per image: ``side²·classes`` class scores (cell-major), then ``side²·num`` confidences, then
  ``side²·num·coords`` box values;
- forward: a copy of the input; with ``softmax=1`` a softmax (temperature 1) over each cell's classes.
  No logistic anywhere (the connected layer before it is linear or logistic as the cfg says).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..boxes import Detections, correct_boxes, grid_candidates, threshold_probs
from ..cfg import Section
from ..errors import BadValueError, ShapeError
from ..registry import register_section
from .base import BuildContext, DarknetLayer
from .softmax import darknet_softmax

__all__ = ["Detection", "DetectionOptions"]


@dataclass(frozen=True)
class DetectionOptions:
    """Every ``[detection]`` key with the fork's defaults (the loss and decoder read these)."""

    classes: int = 1
    coords: int = 1
    num: int = 1
    side: int = 7
    rescore: int = 0
    softmax: int = 0
    sqrt: int = 0
    max_boxes: int = 90
    coord_scale: float = 1.0
    forced: int = 0
    object_scale: float = 1.0
    noobject_scale: float = 1.0
    class_scale: float = 1.0
    jitter: float = 0.2
    random: float = 0.0
    reorg: int = 0
    resize: float = 1.0

    @property
    def truths(self) -> int:
        """Floats of truth per image: ``side²·(1 + coords + classes)``."""
        return self.side * self.side * (1 + self.coords + self.classes)


@register_section("detection")
class Detection(DarknetLayer):
    """YOLOv1 head: identity, or a per-cell class softmax; options for the loss and decoder."""

    is_head = True
    has_cost = True

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        f = ctx.flavor
        coords = sec.get_int("coords", 1)
        classes = sec.get_int("classes", 1)
        rescore = sec.get_int("rescore", 0)
        num = sec.get_int("num", 1)
        side = sec.get_int("side", 7)
        for key, value, low in (("coords", coords, 0), ("classes", classes, 0), ("num", num, 1), ("side", side, 1)):
            if value < low:
                raise sec.error(f"must be at least {low}", key, BadValueError)
        expected = side * side * ((1 + coords) * num + classes)
        if expected != ctx.inputs:
            raise sec.error(
                f"the layer before gives {ctx.inputs} values, this layer needs side²·((1+coords)·num+classes) = "
                f"{side}²·((1+{coords})·{num}+{classes}) = {expected} (output= of the [connected] before it)",
                cls=ShapeError,
            )
        random = sec.get_float("random", 0.0)
        values = dict(
            classes=classes,
            coords=coords,
            num=num,
            side=side,
            rescore=rescore,
            softmax=sec.get_int("softmax", 0),
            sqrt=sec.get_int("sqrt", 0),
            # pjreddie's parse_detection reads max (90), random (int) and reorg too
            max_boxes=sec.get_int("max", f.detection_max_boxes),
            coord_scale=sec.get_float("coord_scale", 1.0),
            forced=sec.get_int("forced", 0),
            object_scale=sec.get_float("object_scale", 1.0),
            noobject_scale=sec.get_float("noobject_scale", 1.0),
            class_scale=sec.get_float("class_scale", 1.0),
            jitter=sec.get_float("jitter", 0.2),
            random=random if f.head_random_is_float else float(int(random)),
            reorg=sec.get_int("reorg", 0),
        )
        if f.reads("detection", "resize"):
            values["resize"] = sec.get_float("resize", 1.0)
        self.options = DetectionOptions(**values)
        self.out_shape = (0, 0, 0)
        self.outputs = ctx.inputs

    def get_detections(
        self, output: Tensor, net_w: int, net_h: int, image_sizes: "list[tuple[int, int]]", thresh: float, hier_thresh: float, letterbox: bool
    ) -> "list[Detections]":
        """``get_detection_detections`` (YOLOv1): class scores per cell, ``side²·n`` scales and boxes.

        Boxes are made relative (``w = h = 1``, as examples/yolo.c calls it; ``get_network_boxes``
        passes the image size, which would give pixels for this head only).
        """
        o = self.options
        flat = output.reshape(output.shape[0], -1)
        cells = o.side * o.side
        rows, cols, _ = grid_candidates(o.side, o.side, o.num, output.device)
        out = []
        for i in range(flat.shape[0]):
            f = flat[i].float()
            cls = f[: cells * o.classes].view(cells, o.classes).repeat_interleave(o.num, dim=0)
            scale = f[cells * o.classes : cells * (o.classes + o.num)]
            coords = f[cells * (o.classes + o.num) :].view(cells * o.num, 4)
            power = 2 if o.sqrt else 1
            x = (coords[:, 0] + cols) / o.side
            y = (coords[:, 1] + rows) / o.side
            bw = torch.pow(coords[:, 2].double(), power).float()
            bh = torch.pow(coords[:, 3].double(), power).float()
            probs = threshold_probs(scale[:, None] * cls, thresh)
            keep = (probs > 0).any(dim=1)
            boxes = torch.stack([x, y, bw, bh], dim=1)[keep]
            boxes = correct_boxes(boxes, image_sizes[i][0], image_sizes[i][1], net_w, net_h, letterbox)
            out.append(Detections(boxes, scale[keep], probs[keep]))
        return out

    def forward(self, x: Tensor, cache: list) -> Tensor:
        flat = x.reshape(x.shape[0], -1)
        o = self.options
        if not o.softmax or o.classes == 0:
            return flat
        b = flat.shape[0]
        cells = o.side * o.side
        n_cls = cells * o.classes
        scores = darknet_softmax(flat[:, :n_cls].reshape(b, cells, o.classes), dim=-1).reshape(b, n_cls)
        return torch.cat([scores, flat[:, n_cls:]], dim=1)

