"""``[upsample]``: nearest-neighbour ``×stride`` (times ``scale``); a negative stride sums blocks.

Darknet: ``src/upsample_layer.c:make_upsample_layer/forward_upsample_layer``, ``src/blas.c:upsample_cpu``
(darknet-reference.md §1.7, §3.4). With ``stride < 0`` the output is ``in/|stride|`` and each output
pixel is ``scale·Σ`` of its ``|stride|×|stride|`` block (a sum, not a mean).
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..cfg import Section
from ..errors import BadValueError
from ..registry import register_section
from .base import BuildContext, DarknetLayer

__all__ = ["Upsample"]


@register_section("upsample")
class Upsample(DarknetLayer):
    """Nearest upsampling, or block-sum downsampling when ``stride`` is negative."""

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        c, h, w = ctx.require_image(sec)
        stride = sec.get_int("stride", 2)
        if stride == 0:
            raise sec.error("must not be 0", "stride", BadValueError)
        self.scale = sec.get_float("scale", 1.0)
        self.reverse = stride < 0
        self.stride = abs(stride)
        if self.reverse:
            self.out_shape = (c, h // self.stride, w // self.stride)
        else:
            self.out_shape = (c, h * self.stride, w * self.stride)
        self.outputs = self.out_shape[0] * self.out_shape[1] * self.out_shape[2]

    def forward(self, x: Tensor, cache: list) -> Tensor:
        x = self.image_input(x)
        s = self.stride
        if self.reverse:
            b, c = x.shape[:2]
            _, oh, ow = self.out_shape
            block = x[:, :, : oh * s, : ow * s] * self.scale if self.scale != 1 else x[:, :, : oh * s, : ow * s]
            return block.reshape(b, c, oh, s, ow, s).sum(dim=(3, 5))
        y = F.interpolate(x, scale_factor=s, mode="nearest") if s != 1 else x
        return y * self.scale if self.scale != 1 else y

    def describe(self) -> tuple[str, str]:
        return "", f"{'/' if self.reverse else ''}{self.stride:2d}x"
