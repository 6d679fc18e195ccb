"""``[lrn]`` / ``[normalization]``: local response normalisation across channels (Darknet's CPU code).

Darknet: ``src/parser.c:parse_normalization``, ``src/normalization_layer.c:make_normalization_layer/
forward_normalization_layer`` (both forks; darknet-reference.md §1.2).

- keys: ``alpha`` = .0001, ``beta`` = .75, ``kappa`` = 1, ``size`` = 5; the shape is the input's;
- forward, per image, with ``sq = x²`` per channel plane::

      norms[0] = kappa + Σ_{k < size/2} alpha·sq[k]
      norms[k] = norms[k−1] − alpha·sq[k − (size−1)/2 − 1] (if ≥ 0) + alpha·sq[k + size/2] (if < c)
      out = x · norms^(−beta)          (pow_cpu: C pow in double, rounded to float)

  This running sum never adds channel ``size/2`` at the start but subtracts it later, so every
  ``norms[k]`` is the textbook window sum *minus* ``alpha·sq[size/2]`` (when ``size/2 < c``). That is
  what Darknet's CPU forward computes (its cuDNN path computes the textbook LRN); it is reproduced
  here operation by operation.

``size/2`` must not exceed the channels (Darknet would read past the image). Darknet's backward
(``norms^(−beta)·delta``, "approximate") is not reproduced: autograd gives the true gradient.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..cfg import Section
from ..errors import ShapeError
from ..registry import register_section
from .base import BuildContext, DarknetLayer, positive

__all__ = ["Normalization"]


def _f32(value: float) -> float:
    """A cfg float as Darknet stores it (``atof`` into a ``float``)."""
    return float(np.float32(value))


@register_section("normalization", "lrn")
class Normalization(DarknetLayer):
    """Darknet's cross-channel LRN."""

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        self.alpha = _f32(sec.get_float("alpha", 0.0001))
        self.beta = _f32(sec.get_float("beta", 0.75))
        self.kappa = _f32(sec.get_float("kappa", 1.0))
        self.size = positive(sec, "size", sec.get_int("size", 5))
        c, h, w = ctx.require_image(sec)
        if self.size // 2 > c:
            raise sec.error(f"size/2 = {self.size // 2} exceeds the {c} channels: Darknet would read past the image", "size", ShapeError)
        self.out_shape = (c, h, w)
        self.outputs = c * h * w

    def norms(self, x: Tensor) -> Tensor:
        """Darknet's ``layer.norms`` for an image batch ``x`` (B, C, H, W)."""
        c = x.shape[1]
        alpha = torch.tensor(self.alpha, dtype=x.dtype, device=x.device)
        sq = x * x
        first = torch.full_like(x[:, 0], self.kappa)
        for k in range(self.size // 2):
            first = first + alpha * sq[:, k]
        planes = [first]
        lo, hi = (self.size - 1) // 2 + 1, self.size // 2
        for k in range(1, c):
            plane = planes[-1]
            if k - lo >= 0:
                plane = plane + (-alpha) * sq[:, k - lo]
            if k + hi < c:
                plane = plane + alpha * sq[:, k + hi]
            planes.append(plane)
        return torch.stack(planes, dim=1)

    def forward(self, x: Tensor, cache: list) -> Tensor:
        x = self.image_input(x)
        scale = torch.pow(self.norms(x).double(), -float(self.beta)).to(x.dtype)
        return x * scale

    def describe(self) -> tuple[str, str]:
        return "", f"{self.size}"
