"""pjreddie's ``[logistic]`` (LOGXENT): a logistic output with a binary cross-entropy cost.

Darknet (pjreddie only): ``src/parser.c:parse_logistic``, ``src/logistic_layer.c:make_logistic_layer/
forward_logistic_layer``, ``src/blas.c:logistic_x_ent_cpu``.

- no keys; shape and ``outputs`` are the input's;
- forward: ``output = 1/(1+exp(−x))``; with a truth, ``loss[i] = −t·log p − (1−t)·log(1−p)``,
  ``delta[i] = t − p`` and ``cost = Σ loss`` (see :meth:`Logistic.loss`). The backward adds that
  delta to the input's, i.e. the gradient of the cost with respect to the logits.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..cfg import Section
from ..registry import register_section
from .base import BuildContext, DarknetLayer

__all__ = ["Logistic"]


@register_section("logistic")
class Logistic(DarknetLayer):
    """Element-wise logistic; its cost is the summed binary cross-entropy."""

    has_cost = True

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        self.out_shape = ctx.in_shape
        self.outputs = ctx.inputs

    def forward(self, x: Tensor, cache: list) -> Tensor:
        return self.shape_output(torch.sigmoid(x))

    @staticmethod
    def loss(output: Tensor, truth: Tensor) -> Tensor:
        """Darknet's ``l.cost``: ``Σ −t·log p − (1−t)·log(1−p)`` over the batch (``p`` = this layer's output).

        Its gradient through the logistic is ``p − t`` per logit, Darknet's ``−delta``.
        """
        p = output.reshape(output.shape[0], -1)
        t = truth.reshape(p.shape).to(p.dtype)
        return (-t * torch.log(p) - (1 - t) * torch.log(1 - p)).sum()
