"""``[maxpool]`` / ``[max]`` and AlexeyAB's ``[local_avgpool]`` / ``[local_avg]``.

Darknet: ``src/parser.c:parse_maxpool/parse_local_avgpool``, ``src/maxpool_layer.c:make_maxpool_layer``,
``forward_maxpool_layer``, ``forward_local_avgpool_layer`` (darknet-reference.md §1.5, §1.7, §3.3).

``stride`` defaults to 1, ``size`` to the stride, ``padding`` (the *total* padding) to ``size-1``;
``out = (in + padding - size)/stride + 1``. The window origin is ``-padding/2``, so the extra
padding goes right and bottom, and out-of-image taps are ``-inf`` (never zero). AlexeyAB's
``maxpool_depth=1`` instead takes, per pixel, the max over channels ``g, g+out_c, g+2·out_c…``;
``local_avgpool`` averages the taps inside the image only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cfg import Section
from ..errors import ShapeError
from ..registry import register_section
from .base import BuildContext, DarknetLayer, Shape, c_div, positive

__all__ = ["Maxpool", "LocalAvgpool", "darknet_pad"]


def darknet_pad(padding: int) -> tuple[int, int, int, int]:
    """``F.pad`` amounts for Darknet's total padding: ``padding//2`` left/top, the rest right/bottom."""
    before = padding // 2
    after = padding - before
    return before, after, before, after


@register_section("maxpool", "max")
class Maxpool(DarknetLayer):
    """Max pooling with Darknet's padding rule."""

    average = False

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        kind = "maxpool"
        c, h, w = ctx.require_image(sec)
        ab = ctx.flavor.reads(kind, "stride_x")
        stride = positive(sec, "stride", sec.get_int("stride", 1))
        self.stride_x = positive(sec, "stride_x", sec.get_int("stride_x", stride)) if ab else stride
        self.stride_y = positive(sec, "stride_y", sec.get_int("stride_y", stride)) if ab else stride
        self.size = positive(sec, "size", sec.get_int("size", stride))
        self.padding = positive(sec, "padding", sec.get_int("padding", self.size - 1), 0)
        self.maxpool_depth = 0
        self.antialiasing = 0
        if ab and not self.average:
            self.maxpool_depth = sec.get_int("maxpool_depth", 0)
            self.out_channels = positive(sec, "out_channels", sec.get_int("out_channels", 1))
            self.antialiasing = sec.get_int("antialiasing", 0)
            sec.mark_used("maxpool_zero_nonmax")
        self._next: Shape
        if self.maxpool_depth:
            self.out_shape = (self.out_channels, h, w)
        else:
            sx, sy = (1, 1) if self.antialiasing else (self.stride_x, self.stride_y)
            out_w = c_div(w + self.padding - self.size, sx) + 1
            out_h = c_div(h + self.padding - self.size, sy) + 1
            if out_w < 1 or out_h < 1:
                raise sec.error(f"the output would be {out_w}x{out_h}: the input {w}x{h} is too small for size={self.size}", "size", ShapeError)
            self.out_shape = (c, out_h, out_w)
        self.outputs = self.out_shape[0] * self.out_shape[1] * self.out_shape[2]
        self._next = self.out_shape
        if self.antialiasing:
            blur = 2 if self.antialiasing == 2 else 3
            self.blur_pad = 0 if blur == 2 else 1
            kernel = torch.full((2, 2), 0.25) if blur == 2 else torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16
            oc, oh, ow = self.out_shape
            self.register_buffer("blur_weight", kernel.expand(oc, 1, blur, blur).clone(), persistent=False)
            self._next = (oc, (oh + 2 * self.blur_pad - blur) // self.stride_y + 1, (ow + 2 * self.blur_pad - blur) // self.stride_x + 1)

    @property
    def next_shape(self) -> Shape:
        return self._next

    @property
    def next_inputs(self) -> int:
        c, h, w = self._next
        return c * h * w

    def forward(self, x: Tensor, cache: list) -> Tensor:
        x = self.image_input(x)
        if self.maxpool_depth:
            return self._depth(x)
        sx, sy = (1, 1) if self.antialiasing else (self.stride_x, self.stride_y)
        left, right, top, bottom = darknet_pad(self.padding)
        _, out_h, out_w = self.out_shape
        # only pad what the windows reach (the extra right/bottom column is often never read)
        right = max(0, min(right, (out_w - 1) * sx + self.size - left - x.shape[3]))
        bottom = max(0, min(bottom, (out_h - 1) * sy + self.size - top - x.shape[2]))
        if self.average:
            y = self._valid_average(x, (left, right, top, bottom), (sy, sx))
        elif left == right and top == bottom and left == top and left <= self.size // 2:
            y = F.max_pool2d(x, self.size, (sy, sx), left)
        else:
            y = F.max_pool2d(F.pad(x, (left, right, top, bottom), value=float("-inf")), self.size, (sy, sx))
        if self.antialiasing:
            y = F.conv2d(y, self.blur_weight.to(y.dtype), None, (self.stride_y, self.stride_x), self.blur_pad, 1, y.shape[1])
        return y

    def _valid_average(self, x: Tensor, pads: tuple[int, int, int, int], stride: tuple[int, int]) -> Tensor:
        k = self.size
        total = F.avg_pool2d(F.pad(x, pads), k, stride, divisor_override=1)
        ones = torch.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype, device=x.device)
        count = F.avg_pool2d(F.pad(ones, pads), k, stride, divisor_override=1)
        return total / count

    def _depth(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        g = self.out_channels
        k = -(-c // g)
        if k * g != c:
            x = torch.cat([x, x.new_full((b, k * g - c, h, w), float("-inf"))], dim=1)
        return x.view(b, k, g, h, w).amax(dim=1)

    def bflops(self) -> float:
        c, oh, ow = self.out_shape
        return self.size * self.size * self.in_shape[0] * oh * ow / 1e9

    def describe(self) -> tuple[str, str]:
        if self.maxpool_depth:
            return "", f"depth {self.out_channels}"
        stride = f"{self.stride_x:2d}" if self.stride_x == self.stride_y else f"{self.stride_x}x{self.stride_y}"
        return "", f"{self.size}x{self.size:2d}/{stride}"


@register_section("local_avgpool", "local_avg")
class LocalAvgpool(Maxpool):
    """AlexeyAB's windowed average over the taps that fall inside the image."""

    average = True
