"""AlexeyAB's ``[scale_channels]``: scale an earlier layer's output per channel (or per pixel).

Darknet (AlexeyAB only): ``src/parser.c:parse_scale_channels``, ``src/scale_channels_layer.c:
make_scale_channels_layer/forward_scale_channels_layer`` (darknet-reference.md §1.5, §3.4).

- keys: ``from`` (one layer, required), ``scale_wh`` = 0, ``activation`` = linear;
- shape: ``from``'s ``out_w×out_h×out_c``;
- ``scale_wh=0`` (squeeze-excitation): the previous layer is ``1×1×C`` (asserted) with ``C`` the
  ``from`` channels (asserted); ``output[i] = input[i / (w·h)]·from[i]``, i.e. ``from[b,c,y,x]·in[b,c]``;
- ``scale_wh=1``: the previous layer is ``w×h×1`` with ``from``'s ``w×h`` (asserted);
  ``output[i] = input[i % (w·h) + (i / (c·w·h))·w·h]·from[i]``, i.e. ``from[b,c,y,x]·in[b,y,x]``;
- then ``activate_array``.
"""
from __future__ import annotations

from torch import Tensor

from ..activations import activate, activation_from_section
from ..cfg import Section
from ..errors import ShapeError
from ..registry import register_section
from .base import BuildContext, DarknetLayer
from .sam import single_from

__all__ = ["ScaleChannels"]


@register_section("scale_channels")
class ScaleChannels(DarknetLayer):
    """``activation(from · prev)`` with ``prev`` broadcast over space (or over channels)."""

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        index = single_from(sec, ctx)
        self.sources = (index,)
        self.scale_wh = sec.get_int("scale_wh", 0)
        self.activation = activation_from_section(sec, ctx.flavor, "linear", generic=True)
        c, h, w = ctx.in_shape
        source = ctx.layers[index]
        fc, fh, fw = source.out_shape
        if fc * fh * fw == 0 or source.outputs != fc * fh * fw:
            raise sec.error(f"layer {index} must output an image, it gives {fw}x{fh}x{fc}", "from", ShapeError)
        if ctx.inputs != c * h * w or c * h * w == 0:
            raise sec.error(f"the layer before must output an image, it gives {w}x{h}x{c}", cls=ShapeError)
        if not self.scale_wh:
            if (w, h) != (1, 1) or fc != c:
                raise sec.error(
                    f"the previous layer ({w}x{h}x{c}) must be 1x1 with the channels of layer {index} ({fw}x{fh}x{fc}) "
                    "(make_scale_channels_layer asserts it; use scale_wh=1 to scale per pixel)",
                    "from",
                    ShapeError,
                )
        elif c != 1 or (fw, fh) != (w, h):
            raise sec.error(
                f"with scale_wh=1 the previous layer ({w}x{h}x{c}) must have one channel and the size of layer {index} "
                f"({fw}x{fh}x{fc}) (make_scale_channels_layer asserts it)",
                "scale_wh",
                ShapeError,
            )
        self.out_shape = (fc, fh, fw)
        self.outputs = fc * fh * fw

    def forward(self, x: Tensor, cache: list) -> Tensor:
        other = cache[self.sources[0]].reshape(x.shape[0], *self.out_shape)
        return activate(other * self.image_input(x), self.activation)

    def describe(self) -> tuple[str, str]:
        return "", f"{self.sources[0]}" + (" wh" if self.scale_wh else "")
