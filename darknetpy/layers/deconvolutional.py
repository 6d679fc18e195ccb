"""pjreddie's ``[deconvolutional]`` / ``[deconv]``: a transposed convolution.

Darknet (pjreddie only): ``src/parser.c:parse_deconvolutional``, ``src/deconvolutional_layer.c:
make_deconvolutional_layer/forward_deconvolutional_layer``, ``src/col2im.c:col2im_cpu``,
``src/parser.c:save_convolutional_weights`` (the DECONVOLUTIONAL branch of ``save_weights_upto``).

- keys: ``filters`` = 1, ``size`` = 1, ``stride`` = 1, ``activation`` = logistic,
  ``batch_normalize`` = 0, ``pad`` = 0, ``padding`` = 0 (``pad=1`` means ``padding = size/2``);
- shape: ``out = (in − 1)·stride + size − 2·padding``, ``n`` channels;
- forward, per image: ``col = Wᵀ·x`` (``W`` is ``[c][n·size²]``), ``col2im_cpu`` adds each column into
  the output at ``stride·in + k − padding`` (taps outside are dropped) — exactly
  ``conv_transpose2d(x, W[c][n][size][size], stride, padding)`` — then batch norm (as a conv's) or
  ``+biases``, then ``activate_array``;
- init: ``W = .02·N(0,1)·(out_w·out_h)/(w·h)``, biases 0;
- file payload (what ``save_convolutional_weights`` writes): ``biases[n]``, with batch norm
  ``scales, rolling_mean, rolling_variance``, then ``weights[c][n][size][size]``.

Note: pjreddie's ``load_convolutional_weights`` computes ``l.c/l.groups`` and a deconv layer leaves
``groups`` at 0, so pjreddie's darknet cannot load these weights (integer division by zero); this
module reads back the layout it writes. ``numload`` is refused for the same reason.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..activations import activate, activation_from_section
from ..cfg import Section
from ..errors import BadValueError, ShapeError
from ..registry import register_section
from .base import BuildContext, DarknetLayer, positive
from .batchnorm import BatchNormParams

__all__ = ["Deconvolutional"]


@register_section("deconvolutional", "deconv")
class Deconvolutional(DarknetLayer):
    """Transposed convolution with optional batch norm and activation."""

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        n = positive(sec, "filters", sec.get_int("filters", 1))
        size = positive(sec, "size", sec.get_int("size", 1))
        stride = positive(sec, "stride", sec.get_int("stride", 1))
        self.activation = activation_from_section(sec, ctx.flavor, "logistic", generic=True)
        c, h, w = ctx.require_image(sec)
        self.batch_normalize = sec.get_int("batch_normalize", 0)
        pad = sec.get_int("pad", 0)
        padding = sec.get_int("padding", 0)
        if pad:
            padding = size // 2
        if padding < 0:
            raise sec.error("must not be negative", "padding", BadValueError)
        if self.numload:
            raise sec.error(
                "is not supported for a deconvolutional layer (pjreddie's loader divides by its groups, which is 0)",
                "numload",
                BadValueError,
            )
        out_h = (h - 1) * stride + size - 2 * padding
        out_w = (w - 1) * stride + size - 2 * padding
        if out_h < 1 or out_w < 1:
            raise sec.error(f"the output would be {out_w}x{out_h}: padding={padding} is too large for size={size}", "padding", ShapeError)
        self.n, self.c, self.size, self.stride, self.padding = n, c, size, stride, padding
        self.out_shape = (n, out_h, out_w)
        self.outputs = n * out_h * out_w
        self.weight = nn.Parameter(torch.zeros(c, n, size, size))
        self.biases = nn.Parameter(torch.zeros(n))
        self.bn = BatchNormParams(n, ctx.flavor) if self.batch_normalize else None

    def forward(self, x: Tensor, cache: list) -> Tensor:
        x = self.image_input(x)
        y = F.conv_transpose2d(x, self.weight, None, self.stride, self.padding)
        y = self.bn(y, self.biases) if self.bn is not None else y + self.biases.view(1, -1, 1, 1)
        return activate(y, self.activation)

    def weight_tensors(self) -> list[Tensor]:
        if self.bn is None or self.dontloadscales:
            return [self.biases, self.weight]
        return [self.biases, self.bn.scales, self.bn.rolling_mean, self.bn.rolling_variance, self.weight]

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        _, h, w = self.in_shape
        _, out_h, out_w = self.out_shape
        with torch.no_grad():
            self.weight.normal_(0.0, 0.02, generator=generator)
            self.weight.mul_(float(out_w * out_h) / (w * h))
            self.biases.zero_()
        if self.bn is not None:
            self.bn.reset()

    def bflops(self) -> float:
        _, h, w = self.in_shape
        return 2.0 * self.c * self.n * self.size * self.size * h * w / 1e9

    def describe(self) -> tuple[str, str]:
        return f"{self.n}", f"{self.size} x{self.size:2d}/{self.stride:2d}"
