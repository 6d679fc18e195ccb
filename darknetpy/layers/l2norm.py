"""pjreddie's ``[l2norm]``: divide every pixel's channel vector by its L2 norm.

Darknet (pjreddie only): ``src/parser.c:parse_l2norm``, ``src/l2norm_layer.c:make_l2norm_layer/
forward_l2norm_layer``, ``src/blas.c:l2normalize_cpu``.

- no keys; shape and ``outputs`` are the input's;
- forward: per image and pixel ``i``, ``sum = sqrtf(Σ_f x[f·spatial+i]²)``, then ``x /= sum`` (no
  epsilon: an all-zero pixel gives NaN, as in Darknet), with ``filters = out_c`` and
  ``spatial = out_w·out_h``. When the input has no image shape (``0×0×0``) the loops run zero
  times and the output is a copy of the input.

Darknet's backward passes the delta through unchanged (``backward_l2norm_layer``); here autograd
gives the true gradient of the normalisation.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..cfg import Section
from ..errors import ShapeError
from ..registry import register_section
from .base import BuildContext, DarknetLayer

__all__ = ["L2Norm"]


@register_section("l2norm")
class L2Norm(DarknetLayer):
    """Channel-wise L2 normalisation per pixel."""

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        c, h, w = ctx.in_shape
        if c * h * w and c * h * w != ctx.inputs:
            raise sec.error(
                f"the layer before reports {w}x{h}x{c} but gives {ctx.inputs} values: l2normalize_cpu would misalign",
                cls=ShapeError,
            )
        self.out_shape = ctx.in_shape
        self.outputs = ctx.inputs

    def forward(self, x: Tensor, cache: list) -> Tensor:
        c, h, w = self.out_shape
        if c * h * w == 0:
            return x.clone()
        x = self.image_input(x)
        return x / torch.sqrt((x * x).sum(dim=1, keepdim=True))
