"""``[activation]``: apply an activation function to the previous layer's output.

Darknet: ``src/parser.c:parse_activation``, ``src/activation_layer.c:make_activation_layer``,
``forward_activation_layer`` (both forks; darknet-reference.md §1.6, §3.2). ``activation``
defaults to ``linear``; the output keeps the input's ``c×h×w`` and ``outputs``; the forward is
``copy_cpu`` then ``activate_array``.

``activate_array`` has no case for ``swish``, ``mish``, ``hard_mish`` and ``normalize_channels*``
(Darknet would output zeros): such a cfg is refused (``activation_from_section(generic=True)``).
"""
from __future__ import annotations

from torch import Tensor

from ..activations import activate, activation_from_section
from ..cfg import Section
from ..registry import register_section
from .base import BuildContext, DarknetLayer

__all__ = ["Activation"]

@register_section("activation")
class Activation(DarknetLayer):
    """An element-wise activation; shape and size are the input's."""

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        self.activation = activation_from_section(sec, ctx.flavor, "linear", generic=True)
        self.out_shape = ctx.in_shape
        self.outputs = ctx.inputs

    def forward(self, x: Tensor, cache: list) -> Tensor:
        return self.shape_output(activate(x, self.activation))

    def describe(self) -> tuple[str, str]:
        return "", self.activation
