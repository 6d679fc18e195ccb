"""``[region]``: the YOLOv2 detection head.

Darknet: ``src/parser.c:parse_region``, ``src/region_layer.c:make_region_layer/forward_region_layer``,
``src/blas.c:flatten/softmax_cpu``, ``src/softmax_layer.c:softmax_tree`` (darknet-reference.md §1.5, §3.6).

Shape (both forks): ``l.outputs = h·w·num·(coords+1+classes)`` must equal the previous layer's outputs
(PJ ``assert``, AB ``exit``); ``l.out_c/out_h/out_w`` are the input's. Per anchor there are
``size = coords + 1 + classes`` entries: x, y, w, h (…coords), objectness, classes.

**pjreddie** (``forward_region_layer``, CPU): memory stays planar ``[b][n][size][H][W]`` (like yolo).

- logistic on entries 0, 1 (x, y);
- logistic on entry ``coords`` (objectness) unless ``background=1``;
- classes: ``softmax=1`` → ``softmax_cpu`` (temperature 1) at each cell over entries
  ``coords+!background … coords+classes`` of the *raw input* (with ``background`` the objectness slot is
  softmaxed with the classes as a background class); a ``tree`` → a softmax per tree group; otherwise
  logistic on the classes;
- w, h (and coords 2..coords-1) stay raw; anchors are in grid units (``bw = exp(tw)·anchor/lw``).

**AlexeyAB** (``forward_region_layer``, CPU build): ``flatten(l.output, w·h, size·n, batch, 1)`` first, so
``l.output`` is interleaved ``[b][cell][n][size]``; then logistic on entry 4 (objectness) only, and a
softmax (temperature 1) over entries 5..5+classes of each anchor (``softmax=1``), or ``softmax_tree``
over them; without either the classes stay raw. x and y stay raw in ``l.output`` (``get_region_box``
applies the logistic when decoding).

The output tensor is Darknet's ``l.output`` memory seen as ``(B, C, H, W)``; :meth:`Region.entries`
gives ``(B, n, size, H, W)`` for either layout.

Where this port differs: for a ``tree`` under pjreddie it follows ``forward_region_layer_gpu``
(a softmax over each tree group per anchor and cell, temperature 1); the pjreddie CPU loop calls
``softmax_cpu`` with strides that do not fit the planar layout and ``l.temperature`` left at 0 (NaN).
AlexeyAB's region hard-codes offsets 4 and 5, so ``coords < 4`` is refused there. pjreddie writes
anchors past its buffer when more than ``2·num`` are given (refused here); AlexeyAB ignores the extra.
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
from .softmax import SoftmaxTree, darknet_softmax, read_map, read_tree, tree_softmax
from .yolo import check_head_filters

__all__ = ["Region", "RegionOptions"]


@dataclass(frozen=True)
class RegionOptions:
    """Every ``[region]`` key with the fork's defaults, plus the output layout (the loss and decoder read these)."""

    classes: int
    coords: int
    num: int
    anchors: tuple[float, ...]  # grid units, 2·num values (Darknet's l.biases, .5 when not given)
    max_boxes: int
    interleaved: bool  # AlexeyAB: l.output is [cell][anchor][size]; pjreddie: [anchor][size][cell]
    xy_activated: bool  # pjreddie applies the logistic to x, y in l.output; AlexeyAB in get_region_box
    truths: int  # floats of truth per image (PJ 30·(coords+1), AB max·5)
    log: int = 0
    sqrt: int = 0
    softmax: int = 0
    background: int = 0
    jitter: float = 0.2
    rescore: int = 0
    thresh: float = 0.5
    classfix: int = 0
    absolute: int = 0
    random: float = 0.0
    coord_scale: float = 1.0
    object_scale: float = 1.0
    noobject_scale: float = 1.0
    mask_scale: float = 1.0
    class_scale: float = 1.0
    bias_match: int = 0
    focal_loss: int = 0
    resize: float = 1.0
    tree: SoftmaxTree | None = None
    map: tuple[int, ...] | None = None

    @property
    def size(self) -> int:
        """Entries per anchor: coords + 1 + classes."""
        return self.coords + 1 + self.classes

    def anchor(self, n: int) -> tuple[float, float]:
        """Anchor (w, h) of anchor ``n``, in grid cells."""
        return self.anchors[2 * n], self.anchors[2 * n + 1]


@register_section("region")
class Region(DarknetLayer):
    """YOLOv2 head: the fork's activations and memory layout, plus the options for its loss and decoder."""

    is_head = True
    has_cost = True

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        c, h, w = ctx.require_image(sec)
        f = ctx.flavor
        coords = sec.get_int("coords", 4)
        classes = sec.get_int("classes", 20)
        num = sec.get_int("num", 1)
        if num < 1:
            raise sec.error("must be at least 1", "num", BadValueError)
        if classes < 1:
            raise sec.error("must be at least 1", "classes", BadValueError)
        if coords < 0:
            raise sec.error("must not be negative", "coords", BadValueError)
        if coords < 4 and f.region_interleaved:
            raise sec.error(
                "must be at least 4: this fork's region layer reads objectness and classes at fixed offsets 4 and 5",
                "coords",
                BadValueError,
            )
        max_boxes = sec.get_int("max", f.region_max_boxes)
        size = coords + 1 + classes
        check_head_filters(sec, ctx, size, num, "coords+1+classes")
        anchors = _read_anchors(sec, num, bounded=f.region_anchors_bounded)
        values = dict(
            classes=classes,
            coords=coords,
            num=num,
            anchors=anchors,
            max_boxes=max_boxes,
            interleaved=f.region_interleaved,
            xy_activated=not f.region_interleaved,
            truths=max_boxes * 5 if f.region_truths_from_max else 30 * (coords + 1),
            log=sec.get_int("log", 0),
            sqrt=sec.get_int("sqrt", 0),
            softmax=sec.get_int("softmax", 0),
            jitter=sec.get_float("jitter", 0.2),
            rescore=sec.get_int("rescore", 0),
            thresh=sec.get_float("thresh", 0.5),
            classfix=sec.get_int("classfix", 0),
            absolute=sec.get_int("absolute", 0),
            coord_scale=sec.get_float("coord_scale", 1.0),
            object_scale=sec.get_float("object_scale", 1.0),
            noobject_scale=sec.get_float("noobject_scale", 1.0),
            mask_scale=sec.get_float("mask_scale", 1.0),
            class_scale=sec.get_float("class_scale", 1.0),
            bias_match=sec.get_int("bias_match", 0),
        )
        random = sec.get_float("random", 0.0)
        values["random"] = random if f.head_random_is_float else float(int(random))  # PJ: atoi
        if f.reads("region", "background"):
            values["background"] = sec.get_int("background", 0)
        if f.reads("region", "focal_loss"):
            values.update(focal_loss=sec.get_int("focal_loss", 0), resize=sec.get_float("resize", 1.0))
        tree = read_tree(sec)
        if tree is not None and tree.n != classes:
            raise sec.error(f"the tree has {tree.n} nodes, classes={classes}; they must be equal", "tree", ShapeError)
        values["tree"] = tree
        values["map"] = read_map(sec)
        self.options = RegionOptions(**values)
        self.n = num
        self.classes = classes
        self.coords = coords
        self.out_shape = (num * size, h, w)
        self.outputs = num * size * h * w

    # ---- forward ------------------------------------------------------------------------
    def forward(self, x: Tensor, cache: list) -> Tensor:
        x = self.image_input(x)
        if self.options.interleaved:
            return self._forward_interleaved(x)
        return self._forward_planar(x)

    def _forward_planar(self, x: Tensor) -> Tensor:
        """pjreddie ``forward_region_layer`` (CPU; the GPU's softmax_tree for a tree), step by step."""
        o = self.options
        b, ch, h, w = x.shape
        size, coords, classes = o.size, o.coords, o.classes
        v = x.reshape(b, o.num, size, h * w)
        out = _put(v, 0, torch.sigmoid(v[:, :, 0:2]))
        if not o.background:
            out = _put(out, coords, torch.sigmoid(out[:, :, coords : coords + 1]))
        cls = coords + 1
        if o.tree is not None:
            out = _put(out, cls, tree_softmax(v[:, :, cls : cls + classes], o.tree, 1.0, dim=2))
        elif o.softmax:
            start = coords + (0 if o.background else 1)
            out = _put(out, start, darknet_softmax(v[:, :, start : start + classes + o.background], dim=2))
        else:
            out = _put(out, cls, torch.sigmoid(out[:, :, cls : cls + classes]))
        return out.reshape(b, ch, h, w)

    def _forward_interleaved(self, x: Tensor) -> Tensor:
        """AlexeyAB ``forward_region_layer`` (CPU build): flatten, logistic on obj, softmax per anchor."""
        o = self.options
        b, ch, h, w = x.shape
        t = x.reshape(b, ch, h * w).transpose(1, 2).reshape(b, h * w, o.num, o.size)
        cls = t[..., 5 : 5 + o.classes]
        if o.tree is not None:
            cls = tree_softmax(cls, o.tree, 1.0)
        elif o.softmax:
            cls = darknet_softmax(cls, dim=-1)
        out = torch.cat([t[..., :4], torch.sigmoid(t[..., 4:5]), cls, t[..., 5 + o.classes :]], dim=-1)
        return out.reshape(b, ch, h, w)

    def get_detections(
        self, output: Tensor, net_w: int, net_h: int, image_sizes: "list[tuple[int, int]]", thresh: float, hier_thresh: float, letterbox: bool
    ) -> "list[Detections]":
        """Region boxes: anchors in grid units, ``prob = scale·class`` above ``thresh``.

        pjreddie ``get_region_detections``: x, y already activated, objectness ``scale > thresh ? scale : 0``
        (``background=1``: scale 1), classes from entry ``coords + !background``. AlexeyAB
        ``custom_get_region_detections``/``get_region_boxes``: interleaved memory, the logistic on x and y
        here, every box has objectness 1, ``classfix=-1`` zeroes scales below .5. Candidates that can
        produce no detection (all probabilities 0) are left out.
        """
        o = self.options
        e = self.entries(output)
        b, n, size, h, w = e.shape
        v = e.permute(0, 3, 4, 1, 2).reshape(b, h * w * n, size)
        rows, cols, slots = grid_candidates(h, w, n, output.device)
        aw = torch.tensor(o.anchors[0::2], dtype=torch.float64, device=output.device)[slots]
        ah = torch.tensor(o.anchors[1::2], dtype=torch.float64, device=output.device)[slots]
        out = []
        for i in range(b):
            p = v[i].float()
            if o.interleaved:
                scale = p[:, 4]
                if o.classfix == -1:
                    scale = torch.where(scale < 0.5, torch.zeros_like(scale), scale)
                tx, ty = torch.sigmoid(p[:, 0]), torch.sigmoid(p[:, 1])
                cls = p[:, 5 : 5 + o.classes]
                if o.tree is not None:
                    probs = _tree_probs_alexeyab(cls, scale, o, thresh)
                else:
                    probs = threshold_probs(scale[:, None] * cls, thresh)
                objectness = torch.ones_like(scale)
            else:
                scale = torch.ones_like(p[:, 0]) if o.background else p[:, o.coords]
                objectness = torch.where(scale > thresh, scale, torch.zeros_like(scale))
                start = o.coords + (0 if o.background else 1)
                cls = p[:, start : start + o.classes]
                if o.tree is not None:
                    probs = _tree_probs_pjreddie(cls, scale, o, thresh, hier_thresh)
                else:
                    probs = threshold_probs(scale[:, None] * cls, thresh)
                probs = probs * (objectness > 0)[:, None].to(probs.dtype)
                tx, ty = p[:, 0], p[:, 1]
            keep = (probs > 0).any(dim=1)
            x = (cols[keep] + tx[keep]) / w
            y = (rows[keep] + ty[keep]) / h
            bw = (torch.exp(p[keep, 2].double()) * aw[keep] / w).float()
            bh = (torch.exp(p[keep, 3].double()) * ah[keep] / h).float()
            boxes = correct_boxes(torch.stack([x, y, bw, bh], dim=1), image_sizes[i][0], image_sizes[i][1], net_w, net_h, letterbox)
            out.append(Detections(boxes, objectness[keep], probs[keep]))
        return out

    def entries(self, y: Tensor) -> Tensor:
        """This layer's output as ``(B, n, coords+1+classes, H, W)`` whatever the fork's memory layout."""
        o = self.options
        _, h, w = self.out_shape
        b = y.shape[0]
        if o.interleaved:
            return y.reshape(b, h * w, o.num, o.size).permute(0, 2, 3, 1).reshape(b, o.num, o.size, h, w)
        return y.reshape(b, o.num, o.size, h, w)


def _hierarchy_predictions(cls: Tensor, tree: SoftmaxTree) -> Tensor:
    """``hierarchy_predictions(..., only_leaves=0)``: each node times its parent's (already multiplied) value."""
    out = cls.clone()
    for j, parent in enumerate(tree.parent):
        if parent >= 0:
            out[:, j] = out[:, j] * out[:, parent]
    return out


def _tree_children(tree: SoftmaxTree) -> list[int]:
    """Darknet's ``tree.child``: the group index of each node's children, or -1."""
    child = [-1] * tree.n
    for g, offset in enumerate(tree.group_offset):
        parent = tree.parent[offset]
        if parent >= 0:
            child[parent] = g
    return child


def _top_prediction(values: list[float], tree: SoftmaxTree, child: list[int], thresh: float) -> int:
    """``hierarchy_top_prediction``: descend while ``p·max > thresh``."""
    p, group = 1.0, 0
    while True:
        offset, size = tree.group_offset[group], tree.group_size[group]
        best, best_i = 0.0, 0  # C starts from max_i = 0
        for i in range(offset, offset + size):
            if values[i] > best:
                best, best_i = values[i], i
        if p * best > thresh:
            p *= best
            group = child[best_i]
            if group < 0:
                return best_i
        elif group == 0:
            return best_i
        else:
            return tree.parent[tree.group_offset[group]]


def _tree_probs_pjreddie(cls: Tensor, scale: Tensor, o: "RegionOptions", thresh: float, hier_thresh: float) -> Tensor:
    """pjreddie ``get_region_detections`` with a tree: the ``map`` classes, or one class (the top
    prediction at ``hier_thresh``) with probability ``scale``."""
    values = _hierarchy_predictions(cls.double(), o.tree)
    if o.map is not None:
        picked = values[:, list(o.map)[:200]] * scale.double()[:, None]
        return threshold_probs(picked.float(), thresh)
    child = _tree_children(o.tree)
    probs = torch.zeros(cls.shape[0], o.classes, dtype=cls.dtype)
    for r, row in enumerate(values.tolist()):
        j = _top_prediction(row, o.tree, child, hier_thresh)
        probs[r, j] = scale[r] if scale[r] > thresh else 0.0
    return probs


def _tree_probs_alexeyab(cls: Tensor, scale: Tensor, o: "RegionOptions", thresh: float) -> Tensor:
    """AlexeyAB ``get_region_boxes`` with a tree: the ``map`` classes, or the deepest node above .5
    with its own (hierarchical) probability when ``scale > thresh``."""
    values = _hierarchy_predictions(cls.double(), o.tree).float()
    if o.map is not None:
        return threshold_probs(values[:, list(o.map)[:200]] * scale[:, None], thresh)
    above = values > 0.5
    index = torch.arange(o.classes).expand_as(values)
    last = torch.where(above, index, torch.full_like(index, -1)).amax(dim=1)
    keep = (index == last[:, None]) & (scale > thresh)[:, None]
    return torch.where(keep, values, torch.zeros_like(values))


def _put(t: Tensor, start: int, part: Tensor) -> Tensor:
    """``t`` with entries ``start..start+len(part)`` (dim 2) replaced by ``part`` (no in-place writes)."""
    end = start + part.shape[2]
    return torch.cat([t[:, :, :start], part, t[:, :, end:]], dim=2)


def _read_anchors(sec: Section, num: int, bounded: bool) -> tuple[float, ...]:
    """``anchors``: Darknet's ``l.biases`` (``.5`` each when the key is absent)."""
    anchors = [0.5] * (2 * num)
    given = sec.get_floats("anchors")
    if given is None:
        return tuple(anchors)
    if len(given) > 2 * num and not bounded:
        raise sec.error(
            f"{len(given)} values for num={num} anchors ({2 * num} values); pjreddie's darknet would write past "
            f"its anchor buffer",
            "anchors",
            ShapeError,
        )
    if len(given) < 2 * num:
        raise sec.error(f"{len(given)} values, num={num} anchors need {2 * num}", "anchors", ShapeError)
    for i, v in enumerate(given[: 2 * num]):
        anchors[i] = v
    return tuple(anchors)
