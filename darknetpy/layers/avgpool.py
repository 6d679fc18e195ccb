"""``[avgpool]`` / ``[avg]``: a global average giving ``C×1×1``.

Darknet: ``src/avgpool_layer.c:make_avgpool_layer/forward_avgpool_layer`` (darknet-reference.md §3.4).
"""
from __future__ import annotations

from torch import Tensor

from ..cfg import Section
from ..registry import register_section
from .base import BuildContext, DarknetLayer

__all__ = ["Avgpool"]


@register_section("avgpool", "avg")
class Avgpool(DarknetLayer):
    """Mean over H·W per channel."""

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        c, _, _ = ctx.require_image(sec)
        self.out_shape = (c, 1, 1)
        self.outputs = c

    def forward(self, x: Tensor, cache: list) -> Tensor:
        return self.image_input(x).mean(dim=(2, 3), keepdim=True)

    def bflops(self) -> float:
        c, h, w = self.in_shape
        return c * h * w / 1e9
