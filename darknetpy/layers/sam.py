"""AlexeyAB's ``[sam]``: multiply the previous layer's output element-wise by an earlier layer's.

Darknet (AlexeyAB only): ``src/parser.c:parse_sam``, ``src/sam_layer.c:make_sam_layer/
forward_sam_layer`` (darknet-reference.md §1.5, §3.4).

- keys: ``from`` (one layer, required; Darknet takes the first of a list with ``atoi``),
  ``activation`` = linear;
- shape: ``from``'s ``out_w×out_h×out_c``; ``make_sam_layer`` asserts ``out_c == c`` and the same
  ``w×h`` as the previous layer;
- forward: ``output[i] = input[i]·from_output[i]``, then ``activate_array``.

The backward of Darknet *assigns* (``from_delta[i] = input[i]·delta[i]``) where autograd adds;
that only differs when the ``from`` layer also feeds a later layer.
"""
from __future__ import annotations

from torch import Tensor

from ..activations import activate, activation_from_section
from ..cfg import Section
from ..errors import BadValueError, CfgError, ShapeError
from ..registry import register_section
from .base import BuildContext, DarknetLayer

__all__ = ["Sam", "single_from"]


def single_from(sec: Section, ctx: BuildContext) -> int:
    """The one earlier layer named by ``from`` (``parse_sam``/``parse_scale_channels``)."""
    if "from" not in sec:
        raise sec.error(f"a [{sec.name}] layer needs from=", cls=CfgError)
    values = sec.get_ints("from")
    if len(values) != 1:
        raise sec.error(f"takes one layer (Darknet would silently use only the first of {len(values)})", "from", BadValueError)
    return ctx.layer_index(sec, "from", values[0])


@register_section("sam")
class Sam(DarknetLayer):
    """Spatial attention: ``activation(prev · from)``."""

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        index = single_from(sec, ctx)
        self.sources = (index,)
        self.activation = activation_from_section(sec, ctx.flavor, "linear", generic=True)
        c, h, w = ctx.in_shape
        fc, fh, fw = ctx.layers[index].out_shape
        if fc != c or (fh, fw) != (h, w):
            raise sec.error(
                f"layer {index} gives {fw}x{fh}x{fc}, the previous layer {w}x{h}x{c}: [sam] needs the same size and "
                "channels (make_sam_layer asserts it)",
                "from",
                ShapeError,
            )
        if fc * fh * fw == 0 or ctx.inputs != c * h * w or ctx.layers[index].outputs != fc * fh * fw:
            raise sec.error("both inputs must be images of the same size", "from", ShapeError)
        self.out_shape = (fc, fh, fw)
        self.outputs = fc * fh * fw

    def forward(self, x: Tensor, cache: list) -> Tensor:
        other = cache[self.sources[0]].reshape(x.shape[0], *self.out_shape)
        return activate(self.image_input(x) * other, self.activation)

    def describe(self) -> tuple[str, str]:
        return "", f"{self.sources[0]}"
