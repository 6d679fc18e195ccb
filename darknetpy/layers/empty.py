"""AlexeyAB's ``[empty]`` / ``[silence]``: a layer that passes its input on unchanged.

Darknet (AlexeyAB only): ``src/parser.c:parse_network_cfg_custom`` (the ``lt == EMPTY`` branch) and
``string_to_layer_type`` (darknet-reference.md §1.2). The layer has no keys; ``w/h/c`` and
``out_w/out_h/out_c`` are the input's, ``inputs = outputs = params.inputs``, and its ``l.output``
*is* the previous layer's output buffer (``empty_func`` does nothing forward and backward).
"""
from __future__ import annotations

from torch import Tensor

from ..cfg import Section
from ..registry import register_section
from .base import BuildContext, DarknetLayer

__all__ = ["Empty"]


@register_section("empty", "silence")
class Empty(DarknetLayer):
    """Identity: the output is the previous layer's output."""

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        self.out_shape = ctx.in_shape
        self.outputs = ctx.inputs

    def forward(self, x: Tensor, cache: list) -> Tensor:
        return x
