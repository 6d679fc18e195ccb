"""``[cost]``: the error of the previous layer's output against a truth vector.

Darknet: ``src/parser.c:parse_cost``, ``src/cost_layer.c:get_cost_type/make_cost_layer/forward_cost_layer``,
``src/blas.c:l2_cpu/l1_cpu/smooth_l1_cpu`` (darknet-reference.md §1.5).

Shapes: ``l.outputs = l.inputs``; ``l.out_c/out_h/out_w`` are never set (0×0×0), so the output is flat.

``l.output``: ``forward_cost_layer`` returns at once when there is no truth (``if (!state.truth) return``),
so at inference ``l.output`` is the zeros ``make_cost_layer`` allocated — :meth:`Cost.forward` returns
zeros of ``(B, outputs)``. With a truth (training), ``l.output`` becomes the per-value error and
``l.delta`` the per-value delta, ``l.cost = Σ output`` (:meth:`Cost.compute`); the backward pass adds
``scale·δ`` to the previous layer's delta. Per fork (CPU code):

- **pjreddie**: ``type`` ∈ ``seg sse masked smooth L1 wgan`` (anything else: "Couldn't find cost type",
  SSE). ``smooth`` uses ``smooth_l1_cpu``, ``L1`` uses ``l1_cpu``, every other type ``l2_cpu``
  (``seg`` and ``wgan`` only differ on the GPU). Also reads ``noobj``=1 and ``thresh``=0 (GPU only).
  Its ``smooth_l1_cpu`` has the sign of the large-error delta reversed: ``δ = diff < 0 ? 1 : −1``.
- **AlexeyAB**: ``type`` ∈ ``sse masked smooth`` (others: SSE); ``smooth_l1_cpu`` gives
  ``δ = diff > 0 ? 1 : −1``.
- Both: ``masked`` first sets the *input* to ``SECRET_NUM`` (−1234) wherever the truth is −1234 (so those
  values have zero error and delta); ``scale``=1 scales the delta in the backward pass; ``ratio``=0 is
  used only by the GPU code.

Where this differs: Darknet's ``masked`` writes −1234 into the previous layer's output buffer in place;
:meth:`Cost.compute` works on a copy.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from ..cfg import CfgWarning, Section
from ..flavor import PJREDDIE
from ..registry import register_section
from .base import BuildContext, DarknetLayer

__all__ = ["Cost", "CostOptions", "CostResult", "SECRET_NUM", "cost_values"]

SECRET_NUM = -1234.0
_PJ_TYPES = PJREDDIE.cost_types


@dataclass(frozen=True)
class CostOptions:
    """The ``[cost]`` keys, with the fork's defaults."""

    type: str = "sse"
    scale: float = 1.0
    ratio: float = 0.0
    noobject_scale: float = 1.0  # pjreddie "noobj" (GPU only)
    thresh: float = 0.0  # pjreddie (GPU only)
    smooth_l1_reversed: bool = False  # pjreddie's smooth_l1_cpu delta sign


@dataclass(frozen=True)
class CostResult:
    """What ``forward_cost_layer`` leaves: ``l.output`` (per-value error), ``l.delta`` and ``l.cost``."""

    output: Tensor
    delta: Tensor
    cost: Tensor


def cost_values(pred: Tensor, truth: Tensor, options: CostOptions) -> CostResult:
    """``forward_cost_layer`` with a truth, on flat ``(B, inputs)`` tensors."""
    pred = pred.reshape(pred.shape[0], -1)
    truth = truth.reshape(pred.shape).to(pred.dtype)
    if options.type == "masked":
        pred = torch.where(truth == SECRET_NUM, truth, pred)
    diff = truth - pred
    one = torch.ones_like(diff)
    if options.type == "smooth":  # smooth_l1_cpu
        small = diff.abs() < 1
        sign = torch.where(diff < 0, one, -one) if options.smooth_l1_reversed else torch.where(diff > 0, one, -one)
        output = torch.where(small, diff * diff, 2 * diff.abs() - 1)
        delta = torch.where(small, diff, sign)
    elif options.type == "L1":  # l1_cpu
        output = diff.abs()
        delta = torch.where(diff > 0, one, -one)
    else:  # l2_cpu (sse, masked, and on the CPU seg and wgan too)
        output = diff * diff
        delta = diff
    return CostResult(output, delta, output.sum())


@register_section("cost")
class Cost(DarknetLayer):
    """Darknet's cost layer: zeros at inference; :meth:`compute` gives its training output and cost."""

    has_cost = True

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        f = ctx.flavor
        known = f.cost_types
        kind = sec.get_str("type", "sse")
        if kind not in known:
            other = " (only pjreddie's darknet knows it)" if kind in _PJ_TYPES else ""
            warnings.warn(
                f"{sec.where()}: [cost] type={kind}: unknown cost type{other}; Darknet prints "
                f"\"Couldn't find cost type {kind}, going with SSE\" and uses sse",
                CfgWarning,
                stacklevel=2,
            )
            kind = "sse"
        values = dict(
            type=kind,
            scale=sec.get_float("scale", 1.0),
            ratio=sec.get_float("ratio", 0.0),
            smooth_l1_reversed=f.smooth_l1_delta_reversed,
        )
        if f.reads("cost", "noobj"):
            values.update(noobject_scale=sec.get_float("noobj", 1.0), thresh=sec.get_float("thresh", 0.0))
        self.options = CostOptions(**values)
        self.out_shape = (0, 0, 0)
        self.outputs = ctx.inputs

    def forward(self, x: Tensor, cache: list) -> Tensor:
        # forward_cost_layer: `if (!state.truth) return;` -- l.output keeps its calloc'd zeros
        return x.new_zeros((x.shape[0], self.outputs))

    def compute(self, x: Tensor, truth: Tensor) -> CostResult:
        """``l.output``, ``l.delta`` and ``l.cost`` after ``forward_cost_layer`` with a truth."""
        return cost_values(x, truth, self.options)

    def describe(self) -> tuple[str, str]:
        return "", f"{self.options.type}"
