"""pjreddie's ``[iseg]``: the instance-segmentation head (classes + ids channels).

Darknet: ``src/parser.c:parse_iseg``, ``src/iseg_layer.c:make_iseg_layer/forward_iseg_layer``. The
output is the input with the logistic applied to the first ``classes`` channels (the CPU forward);
the ``ids`` embedding channels stay raw. Its training deltas are not implemented here.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..cfg import Section
from ..errors import BadValueError, ShapeError
from ..registry import register_section
from .base import BuildContext, DarknetLayer

__all__ = ["Iseg"]


@register_section("iseg")
class Iseg(DarknetLayer):
    """Logistic on the class channels, identity on the id channels."""

    is_head = True

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        c, h, w = ctx.require_image(sec)
        self.classes = sec.get_int("classes", 20)
        self.ids = sec.get_int("ids", 32)
        if self.classes < 1 or self.ids < 0:
            raise sec.error("needs classes >= 1 and ids >= 0", "classes", BadValueError)
        if c != self.classes + self.ids:
            raise sec.error(f"the layer before gives {c} channels, this head needs classes+ids = {self.classes + self.ids}", cls=ShapeError)
        self.out_shape = (c, h, w)
        self.outputs = c * h * w

    def forward(self, x: Tensor, cache: list) -> Tensor:
        x = self.image_input(x)
        return torch.cat([torch.sigmoid(x[:, : self.classes]), x[:, self.classes :]], dim=1)
