"""``[activation]``: apply an activation function to the previous layer's output.

Darknet: ``src/parser.c:parse_activation``, ``src/activation_layer.c:make_activation_layer``,
``forward_activation_layer`` (both forks; darknet-reference.md §1.6, §3.2). ``activation``
defaults to ``linear``; the output keeps the input's ``c×h×w`` and ``outputs``; the forward is
``copy_cpu`` then ``activate_array``.

Also here: :func:`generic_activation`, used by every layer whose forward calls Darknet's generic
``activate_array`` ([activation], [local], [scale_channels], [sam], [deconvolutional]). That
function has no case for ``swish``, ``mish``, ``hard_mish`` and ``normalize_channels*`` (only the
conv and shortcut forwards apply them with dedicated code), so Darknet would output zeros there
(AlexeyAB's ``parse_scale_channels``/``parse_sam`` only print a warning). Deliberate difference:
such a cfg is refused with a :class:`~darknetpy.errors.BadValueError` instead.
"""
from __future__ import annotations

from torch import Tensor

from ..activations import activate, activation_from_section
from ..cfg import Section
from ..errors import BadValueError
from ..flavor import FlavorSpec
from ..registry import register_section
from .base import BuildContext, DarknetLayer

__all__ = ["Activation", "generic_activation", "NOT_IN_ACTIVATE_ARRAY"]

# §1.6: Darknet's generic activate() returns 0 for these.
NOT_IN_ACTIVATE_ARRAY = frozenset(
    "swish mish hard_mish normalize_channels normalize_channels_softmax normalize_channels_softmax_maxval".split()
)


def generic_activation(sec: Section, flavor: FlavorSpec, default: str) -> str:
    """Read ``activation`` for a layer that uses Darknet's generic ``activate_array``."""
    name = activation_from_section(sec, flavor, default)
    if name in NOT_IN_ACTIVATE_ARRAY:
        raise sec.error(
            f"Darknet's generic activate_array() (used by [{sec.name}]) has no case for {name} and would output "
            "zeros; only [convolutional] and [shortcut] apply it",
            "activation",
            BadValueError,
        )
    return name


@register_section("activation")
class Activation(DarknetLayer):
    """An element-wise activation; shape and size are the input's."""

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        self.activation = generic_activation(sec, ctx.flavor, "linear")
        self.out_shape = ctx.in_shape
        self.outputs = ctx.inputs

    def forward(self, x: Tensor, cache: list) -> Tensor:
        return self.shape_output(activate(x, self.activation))

    def describe(self) -> tuple[str, str]:
        return "", self.activation
