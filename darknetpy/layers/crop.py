"""``[crop]``: a crop of the input, rescaled from [0, 1] to [-1, 1].

Darknet: ``src/parser.c:parse_crop``, ``src/crop_layer.c:make_crop_layer/forward_crop_layer`` (both
forks, CPU code; darknet-reference.md §1.5, §3.4).

- keys: ``crop_height`` = 1, ``crop_width`` = 1, ``flip`` = 0, ``angle`` = 0, ``saturation`` = 1,
  ``exposure`` = 1, ``noadjust`` = 0, ``shift`` = 0 (the CPU forward reads only the sizes, ``flip``
  and ``noadjust``);
- shape: ``crop_width×crop_height×c``;
- forward: ``out = in[c, dh+i, dw+j]·2 − 1`` (``·1 + 0`` with ``noadjust``). At inference (``!net.train``)
  the crop is centred, ``dh = (h−crop_height)/2``, ``dw = (w−crop_width)/2``, never flipped. In
  training ``dh = rand()%(h−crop_height+1)``, ``dw = rand()%(w−crop_width+1)`` and, with ``flip``, a
  coin decides a mirror (column ``w−dw−j−1``): one draw for the whole batch, as the CPU code does.

Differences: the random numbers come from PyTorch (:attr:`Crop.generator`), not C's ``rand()``;
Darknet's GPU forward (per-image crops with angle/saturation/exposure) is not reproduced. A crop
larger than the input (Darknet reads outside the image) is refused.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..cfg import Section
from ..errors import ShapeError
from ..registry import register_section
from .base import BuildContext, DarknetLayer, positive

__all__ = ["Crop"]


@register_section("crop")
class Crop(DarknetLayer):
    """Centre crop at inference, random crop (and flip) in training, then ``2x − 1``."""

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        self.crop_height = positive(sec, "crop_height", sec.get_int("crop_height", 1))
        self.crop_width = positive(sec, "crop_width", sec.get_int("crop_width", 1))
        self.flip = sec.get_int("flip", 0)
        self.angle = sec.get_float("angle", 0.0)
        self.saturation = sec.get_float("saturation", 1.0)
        self.exposure = sec.get_float("exposure", 1.0)
        c, h, w = ctx.require_image(sec)
        self.noadjust = sec.get_int("noadjust", 0)
        self.shift = sec.get_float("shift", 0.0)
        for key, size, limit in (("crop_height", self.crop_height, h), ("crop_width", self.crop_width, w)):
            if size > limit:
                raise sec.error(f"the crop is larger than the input ({w}x{h}): Darknet would read outside the image", key, ShapeError)
        self.scale, self.trans = (1.0, 0.0) if self.noadjust else (2.0, -1.0)
        self.out_shape = (c, self.crop_height, self.crop_width)
        self.outputs = c * self.crop_height * self.crop_width
        self.generator: torch.Generator | None = None  # for the training-mode draws

    def window(self) -> tuple[int, int, bool]:
        """``(dh, dw, flip)`` of the next forward (random in training, centred at inference)."""
        _, h, w = self.in_shape
        oh, ow = self.crop_height, self.crop_width
        if not self.training:
            return (h - oh) // 2, (w - ow) // 2, False
        g = self.generator
        flip = bool(self.flip) and bool(torch.randint(2, (1,), generator=g).item())
        dh = int(torch.randint(h - oh + 1, (1,), generator=g).item())
        dw = int(torch.randint(w - ow + 1, (1,), generator=g).item())
        return dh, dw, flip

    def forward(self, x: Tensor, cache: list) -> Tensor:
        x = self.image_input(x)
        dh, dw, flip = self.window()
        oh, ow = self.crop_height, self.crop_width
        w = x.shape[3]
        if flip:  # col = w - dw - j - 1
            y = x[:, :, dh : dh + oh, w - dw - ow : w - dw].flip(3)
        else:
            y = x[:, :, dh : dh + oh, dw : dw + ow]
        return y * self.scale + self.trans if not self.noadjust else y.clone()

    def describe(self) -> tuple[str, str]:
        return "", f"{self.crop_height}x{self.crop_width}" + (" flip" if self.flip else "")
