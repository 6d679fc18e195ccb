"""``[dropout]``: identity at inference; in training ``x = r < p ? 0 : x/(1-p)``.

Darknet: ``src/parser.c:parse_dropout``, ``src/dropout_layer.c`` (darknet-reference.md §1.5, §3.4).
``probability`` defaults to .5 (pjreddie) or .2 (AlexeyAB). Darknet's dropout works in place on
the previous layer's output, so its ``l.output`` *is* the previous output; set :attr:`p` to 0 to
turn it off in training (the golden training dumps were made that way). AlexeyAB's DropBlock
(``dropblock=1``) is applied here as plain dropout, with a warning.
"""
from __future__ import annotations

import warnings

import torch.nn.functional as F
from torch import Tensor

from ..cfg import Section
from ..errors import BadValueError
from ..registry import register_section
from .base import BuildContext, DarknetLayer

__all__ = ["Dropout"]


@register_section("dropout")
class Dropout(DarknetLayer):
    """Inverted dropout with probability :attr:`p`."""

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        self.p = self.cfg_p = sec.get_float("probability", ctx.flavor.dropout_probability)
        if not 0.0 <= self.p < 1.0:
            raise sec.error("must be in [0, 1)", "probability", BadValueError)
        if ctx.flavor.reads("dropout", "dropblock"):
            if sec.get_int("dropblock", 0):
                warnings.warn(f"{sec.where()}: dropblock=1 is trained as plain dropout here", UserWarning, stacklevel=2)
            sec.mark_used("dropblock_size_rel", "dropblock_size_abs")
        self.out_shape = ctx.in_shape
        self.outputs = ctx.inputs

    def forward(self, x: Tensor, cache: list) -> Tensor:
        if self.training and self.p > 0:
            return F.dropout(x, self.p, True)
        return x

    def describe(self) -> tuple[str, str]:
        return "", f"p = {self.p:.3f}"
