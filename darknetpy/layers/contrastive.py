"""``[contrastive]`` (AlexeyAB only): supervised contrastive loss on per-anchor embeddings.

Darknet: ``src/parser.c:parse_contrastive``, ``src/softmax_layer.c:make_contrastive_layer/
forward_contrastive_layer`` (the layer lives in softmax_layer.c).

Build (``parse_contrastive``): ``classes``=1000, ``yolo_layer``=0 (relative when negative),
``temperature``=1, ``cls_normalizer``=1, ``max_delta``=FLT_MAX, ``contrastive_neg_max``=3;
``l.steps`` = the net's ``time_steps``. The ``yolo_layer`` must point to a ``[yolo]`` layer: Darknet
exits otherwise, and with ``yolo_layer`` absent (or 0) it dereferences a NULL layer (segfault), so only
the detection mode is reachable. From that yolo layer: ``l.n`` (anchors), ``l.classes`` (replacing the
cfg's ``classes``), ``l.max_boxes``; ``l.embedding_size = inputs / (n·h·w)`` (the previous layer's
shape), which must equal the yolo layer's ``embedding_size`` (its ``embedding_layer``'s filters / n).

Shapes: ``l.outputs = l.inputs``; ``l.out_c/out_h/out_w`` are never set (0×0×0): the output is flat.

``l.output`` (CPU, ``forward_contrastive_layer``): never written — it returns at once at inference
(``if (!state.train) return``) and in training only fills ``l.delta``/``l.cost`` — so it is the zeros
``make_contrastive_layer`` allocated; :meth:`Contrastive.forward` returns zeros. (The GPU forward copies
its input to ``l.output`` first.) The loss itself (cosine similarities between embeddings of the same
class across the mini-batch, ``P_constrastive_f_det``, ``grad_contrastive_loss_positive_f/negative_f``,
``δ·cls_normalizer`` clipped to ``±max_delta``, cost ``Σδ²``) is left to the losses.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..cfg import Section
from ..errors import BadValueError, ShapeError
from ..registry import register_section
from .base import BuildContext, DarknetLayer

__all__ = ["Contrastive", "ContrastiveOptions"]


@dataclass(frozen=True)
class ContrastiveOptions:
    """``[contrastive]`` keys and what the layer takes from its yolo layer (the loss reads these)."""

    yolo_layer: int  # absolute index of the [yolo] layer
    classes: int  # the yolo layer's classes (the cfg's classes= is overridden, as Darknet does)
    cfg_classes: int  # classes= as written (default 1000)
    n: int  # embeddings per cell = anchors of the yolo layer
    embedding_size: int
    max_boxes: int
    steps: int = 1
    temperature: float = 1.0
    cls_normalizer: float = 1.0
    max_delta: float = float("inf")
    contrastive_neg_max: int = 3
    detection: int = 1


@register_section("contrastive")
class Contrastive(DarknetLayer):
    """Contrastive-loss layer: zeros as output (Darknet's CPU ``l.output``), options for the loss."""

    has_cost = True

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        cfg_classes = sec.get_int("classes", 1000)
        if "yolo_layer" not in sec:
            raise sec.error(
                "needs yolo_layer= pointing to a [yolo] layer (Darknet dereferences a NULL layer without it)",
                cls=ShapeError,
            )
        value = sec.get_int("yolo_layer", 0)
        index = ctx.layer_index(sec, "yolo_layer", value)
        if index == 0:
            raise sec.error(
                "resolves to layer 0, which Darknet takes for 'no yolo layer' (a NULL dereference)",
                "yolo_layer",
                ShapeError,
            )
        yolo = ctx.layers[index]
        if yolo.section_type != "yolo":
            raise sec.error(
                f"must point to a [yolo] layer; layer {index} is [{yolo.section_type}]", "yolo_layer", ShapeError
            )
        c, h, w = ctx.in_shape
        n = yolo.n
        if h * w * n <= 0:
            raise sec.error(f"the layer before gives {c}x{h}x{w}; it must output an image", cls=ShapeError)
        embedding_size = ctx.inputs // (n * h * w)
        if embedding_size < 1:
            raise sec.error(
                f"the layer before gives {ctx.inputs} values, fewer than one per anchor and cell ({n}·{h}·{w})",
                cls=ShapeError,
            )
        yolo_embedding = yolo.embedding_size  # make_contrastive_layer: must equal (0 without embedding_layer)
        if yolo_embedding != embedding_size:
            raise sec.error(
                f"embedding_size={embedding_size} (the layer before: {ctx.inputs} values / ({n}·{h}·{w})) differs "
                f"from the [yolo] layer's embedding_size={yolo_embedding}; they should use the same "
                f"[convolutional] layer",
                "yolo_layer",
                ShapeError,
            )
        temperature = sec.get_float("temperature", 1.0)
        if temperature == 0:
            raise sec.error("must not be 0 (Darknet divides by it)", "temperature", BadValueError)
        self.options = ContrastiveOptions(
            yolo_layer=index,
            classes=yolo.options.classes,
            cfg_classes=cfg_classes,
            n=n,
            embedding_size=embedding_size,
            max_boxes=yolo.options.max_boxes,
            steps=ctx.net.time_steps,
            temperature=temperature,
            cls_normalizer=sec.get_float("cls_normalizer", 1.0),
            max_delta=sec.get_float("max_delta", float("inf")),
            contrastive_neg_max=sec.get_int("contrastive_neg_max", 3),
        )
        self.w, self.h, self.c = w, h, c
        self.out_shape = (0, 0, 0)
        self.outputs = ctx.inputs

    def forward(self, x: Tensor, cache: list) -> Tensor:
        # forward_contrastive_layer never writes l.output (CPU): it stays the calloc'd zeros
        return x.new_zeros((x.shape[0], self.outputs))

    def describe(self) -> tuple[str, str]:
        return "", f"emb {self.options.embedding_size}"
