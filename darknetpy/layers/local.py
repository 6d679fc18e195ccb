"""``[local]``: a locally connected layer (a convolution with separate weights at every location).

Darknet: ``src/parser.c:parse_local``, ``src/local_layer.c:local_out_height/make_local_layer/
forward_local_layer``, ``load_weights_upto``/``save_weights_upto`` (LOCAL branch) (both forks;
darknet-reference.md §2.2).

- keys: ``filters`` = 1, ``size`` = 1, ``stride`` = 1, ``pad`` = 0, ``activation`` = logistic;
- shape: ``pad`` is a flag for the size: ``out = (in − (pad ? 1 : size))/stride + 1``, ``n`` channels;
- forward, per image: ``output = biases`` (one per output value), ``im2col_cpu(input, c, h, w, size,
  stride, pad)`` (the padding *is* the ``pad`` value), then for each location ``j``
  ``output[f·L + j] += Σ_k weights[j][f][k]·col[k][j]`` (``k`` runs over ``c, ky, kx``), then
  ``activate_array``;
- init: ``sqrt(2/(size²·c))·U(−1, 1)`` for the first ``c·n·size²`` weights only (Darknet's loop stops
  there: the other locations start at 0), biases 0;
- file payload: ``biases[outputs]``, then ``weights[locations][n][c][size][size]``.

Darknet only lays ``im2col``'s columns out consistently with its output size when
``(in + 2·pad − size)/stride + 1`` equals ``out`` (``pad=0``, or ``pad = (size−1)/2`` with an odd
size); otherwise it reads misaligned columns or writes past its buffer, so such a cfg is refused.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..activations import activate, activation_from_section
from ..cfg import Section
from ..errors import BadValueError, ShapeError
from ..registry import register_section
from .base import BuildContext, DarknetLayer, c_div, positive

__all__ = ["Local"]


@register_section("local")
class Local(DarknetLayer):
    """Unshared-weight convolution."""

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        n = positive(sec, "filters", sec.get_int("filters", 1))
        size = positive(sec, "size", sec.get_int("size", 1))
        stride = positive(sec, "stride", sec.get_int("stride", 1))
        pad = sec.get_int("pad", 0)
        if pad < 0:
            raise sec.error("must not be negative", "pad", BadValueError)
        self.activation = activation_from_section(sec, ctx.flavor, "logistic", generic=True)
        c, h, w = ctx.require_image(sec)
        out_h = c_div(h - (1 if pad else size), stride) + 1
        out_w = c_div(w - (1 if pad else size), stride) + 1
        if out_h < 1 or out_w < 1:
            raise sec.error(f"the output would be {out_w}x{out_h}: the input {w}x{h} is too small for size={size}", "size", ShapeError)
        col_h = c_div(h + 2 * pad - size, stride) + 1
        col_w = c_div(w + 2 * pad - size, stride) + 1
        if (col_h, col_w) != (out_h, out_w):
            raise sec.error(
                f"Darknet's local layer is {out_w}x{out_h} but its im2col (padding {pad}) makes {col_w}x{col_h} columns: "
                "it only works with pad=0, or pad=(size-1)/2 with an odd size",
                "pad",
                ShapeError,
            )
        self.n, self.c, self.size, self.stride, self.pad = n, c, size, stride, pad
        self.locations = out_h * out_w
        self.out_shape = (n, out_h, out_w)
        self.outputs = n * out_h * out_w
        self.weights = nn.Parameter(torch.zeros(self.locations, n, c, size, size))
        self.biases = nn.Parameter(torch.zeros(n, out_h, out_w))

    def forward(self, x: Tensor, cache: list) -> Tensor:
        x = self.image_input(x)
        _, out_h, out_w = self.out_shape
        p, k, s = self.pad, self.size, self.stride
        # im2col_get_pixel reads 0 outside the image; C's truncating division can make the last
        # window reach past the padded input (in + 2·pad < size), so pad the bottom/right as far as it reads
        extra_h = max(0, (out_h - 1) * s + k - (x.shape[2] + 2 * p))
        extra_w = max(0, (out_w - 1) * s + k - (x.shape[3] + 2 * p))
        if p or extra_h or extra_w:
            x = F.pad(x, (p, p + extra_w, p, p + extra_h))
        cols = F.unfold(x, k, stride=s)  # (B, c·size², L), rows (c, ky, kx)
        w = self.weights.reshape(self.locations, self.n, -1)
        y = torch.einsum("lfk,bkl->bfl", w, cols) + self.biases.reshape(1, self.n, self.locations)
        return activate(y.reshape(x.shape[0], *self.out_shape), self.activation)

    def weight_tensors(self) -> list[Tensor]:
        return [self.biases, self.weights]

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        scale = math.sqrt(2.0 / (self.size * self.size * self.c))
        with torch.no_grad():
            self.weights.zero_()
            self.weights[0].uniform_(-scale, scale, generator=generator)
            self.biases.zero_()

    def bflops(self) -> float:
        return 2.0 * self.locations * self.n * self.c * self.size * self.size / 1e9

    def describe(self) -> tuple[str, str]:
        return f"{self.n}", f"{self.size} x{self.size:2d}/{self.stride:2d}"
