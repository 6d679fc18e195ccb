"""``[reorg]`` (pjreddie REORG, AlexeyAB REORG_OLD) and AlexeyAB's ``[reorg3d]`` (REORG).

Darknet: ``src/blas.c:reorg_cpu/flatten``; pjreddie ``src/parser.c:parse_reorg``,
``src/reorg_layer.c:make_reorg_layer/forward_reorg_layer``; AlexeyAB ``src/parser.c:parse_reorg_old``
and ``parse_reorg``, ``src/reorg_old_layer.c``, ``src/reorg_layer.c`` (darknet-reference.md §1.5,
§1.7, §3.4).

``reorg_cpu(x, w, h, c, stride, forward, out)`` maps two views of the same number of floats:
``A = (c, h, w)`` and ``B = (c/s², h·s, w·s)`` with ``B[c2, j·s+dy, i·s+dx] ↔ A[(dy·s+dx)·(c/s²)+c2, j, i]``;
``forward=1`` writes ``out`` as ``B`` from ``x`` as ``A``, ``forward=0`` the other way round.

- ``[reorg]`` (both forks; keys ``stride`` = 1, ``reverse`` = 0): shape ``(c·s², h/s, w/s)``
  (``reverse``: ``(c/s², h·s, w·s)``); forward ``reorg_cpu`` with the *input's* ``w, h, c`` and
  ``forward = reverse``. Not a clean space-to-depth: the input's memory is read as ``B``.
- pjreddie's ``[reorg]`` also reads ``flatten`` and ``extra`` (AlexeyAB's does not):
  ``flatten=1`` copies the input and runs ``flatten(out, w·h, c, forward = !reverse)`` (CHW→HWC, or
  HWC→CHW with ``reverse``), keeping the stride-based shape; ``extra=N`` gives shape ``0×0×0`` and
  ``outputs = inputs + N``: each image is its input followed by ``N`` zeros. Precedence is Darknet's:
  ``flatten``, then ``extra``, then ``reverse``.
- AlexeyAB's ``[reorg3d]`` (keys ``stride``, ``reverse``): the same shapes, but ``reorg_cpu`` is
  called with the *output's* ``w, h, c``: without ``reverse`` that is a true space-to-depth,
  ``Y[(dy·s+dx)·C + c, j, i] = X[c, j·s+dy, i·s+dx]``; with ``reverse`` it is the depth-to-space of
  the memory read as ``(C/s², H·s, W·s)`` into ``(C/s⁴, H·s², W·s²)``.

Where Darknet's sizes do not divide (it would read or write past its buffers, or divide by zero)
the cfg is refused with a :class:`~darknetpy.errors.ShapeError`.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..cfg import Section
from ..errors import BadValueError, ShapeError
from ..registry import register_section
from .base import BuildContext, DarknetLayer, positive

__all__ = ["Reorg", "Reorg3d", "reorg_cpu", "flatten"]


def reorg_cpu(x: Tensor, w: int, h: int, c: int, stride: int, forward: bool) -> Tensor:
    """``src/blas.c:reorg_cpu`` on a ``(B, c·h·w)`` tensor; returns ``(B, c·h·w)``."""
    s = stride
    oc = c // (s * s)
    b = x.shape[0]
    if forward:  # x is A = (dy, dx, c2, j, i); out is B = (c2, j, dy, i, dx)
        return x.reshape(b, s, s, oc, h, w).permute(0, 3, 4, 1, 5, 2).reshape(b, -1)
    # x is B = (c2, j, dy, i, dx); out is A = (dy, dx, c2, j, i)
    return x.reshape(b, oc, h, s, w, s).permute(0, 3, 5, 1, 2, 4).reshape(b, -1)


def flatten(x: Tensor, size: int, layers: int, forward: bool) -> Tensor:
    """``src/blas.c:flatten`` on ``(B, layers·size)``: forward ``[c][i] → [i][c]``, else back."""
    b = x.shape[0]
    if forward:
        return x.reshape(b, layers, size).transpose(1, 2).reshape(b, -1)
    return x.reshape(b, size, layers).transpose(1, 2).reshape(b, -1)


class _ReorgBase(DarknetLayer):
    def _common(self, sec: Section, ctx: BuildContext) -> tuple[int, int, int, int]:
        self.stride = positive(sec, "stride", sec.get_int("stride", 1))
        self.reverse = sec.get_int("reverse", 0)
        c, h, w = ctx.require_image(sec)
        s = self.stride
        if self.reverse:
            self.out_shape = (c // (s * s), h * s, w * s)
        else:
            self.out_shape = (c * s * s, h // s, w // s)
        self.outputs = self.out_shape[0] * self.out_shape[1] * self.out_shape[2]
        return c, h, w, s

    @staticmethod
    def _need(sec: Section, ok: bool, message: str) -> None:
        if not ok:
            raise sec.error(message, "stride", ShapeError)

    def describe(self) -> tuple[str, str]:
        return "", f"{'x' if self.reverse else '/'}{self.stride:2d}"


@register_section("reorg")
class Reorg(_ReorgBase):
    """YOLOv2's reorg (pjreddie REORG / AlexeyAB REORG_OLD)."""

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        c, h, w, s = self._common(sec, ctx)
        pj = ctx.flavor.reads("reorg", "flatten")
        self.flatten = sec.get_int("flatten", 0) if pj else 0
        self.extra = sec.get_int("extra", 0) if pj else 0
        inputs = c * h * w
        if self.flatten:
            if self.extra:
                raise sec.error("flatten and extra together make Darknet copy past its input", "extra", BadValueError)
            self._need(
                sec,
                self.outputs == inputs,
                f"with flatten the output ({self.outputs} values) must hold the input ({inputs}): "
                f"use a stride that divides {'the channels by stride²' if self.reverse else 'the width and height'}",
            )
        elif self.extra:
            if self.extra < 0:
                raise sec.error("must not be negative", "extra", BadValueError)
            self.out_shape = (0, 0, 0)
            self.outputs = inputs + self.extra
        else:
            self._need(sec, c % (s * s) == 0, f"the {c} channels must be a multiple of stride² = {s * s} (reorg_cpu)")
            if not self.reverse:
                self._need(sec, h % s == 0 and w % s == 0, f"the input {w}x{h} must be a multiple of stride={s}")

    def forward(self, x: Tensor, cache: list) -> Tensor:
        b = x.shape[0]
        flat = x.reshape(b, -1)
        c, h, w = self.in_shape
        if self.flatten:
            y = flatten(flat, w * h, c, forward=not self.reverse)
        elif self.extra:
            y = torch.cat([flat, flat.new_zeros(b, self.extra)], dim=1)
        else:
            y = reorg_cpu(flat, w, h, c, self.stride, forward=bool(self.reverse))
        return self.shape_output(y)

    def describe(self) -> tuple[str, str]:
        if self.extra:
            return "", f"+{self.extra}"
        return "", ("flatten " if self.flatten else "") + super().describe()[1]


@register_section("reorg3d")
class Reorg3d(_ReorgBase):
    """AlexeyAB's REORG: space-to-depth (``reverse``: its inverse on re-read memory)."""

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        c, h, w, s = self._common(sec, ctx)
        if self.reverse:
            self._need(
                sec,
                c % (s**4) == 0,
                f"with reverse the {c} channels must be a multiple of stride⁴ = {s**4} "
                "(reorg_cpu is called with the output's channels, c/stride²)",
            )
        else:
            self._need(sec, h % s == 0 and w % s == 0, f"the input {w}x{h} must be a multiple of stride={s}")

    def forward(self, x: Tensor, cache: list) -> Tensor:
        flat = x.reshape(x.shape[0], -1)
        oc, oh, ow = self.out_shape
        return self.shape_output(reorg_cpu(flat, ow, oh, oc, self.stride, forward=bool(self.reverse)))
