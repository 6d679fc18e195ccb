"""AlexeyAB's ``[implicit]``: a learned tensor, the same for every image, ignoring the input.

Darknet (AlexeyAB only): ``src/parser.c:parse_implicit``, ``src/representation_layer.c:
make_implicit_layer/forward_implicit_layer``, ``load_implicit_weights`` (darknet-reference.md §2.2).

- keys: ``mean`` = 0, ``std`` = .2, ``filters`` = 128, ``atoms`` = 1;
- shape: ``out_c = filters``, ``out_h = atoms``, ``out_w = 1``; ``outputs = filters·atoms``;
- forward: ``output[b·n + i] = weights[i]`` with ``n = nweights = outputs`` (the input is not read);
- init: ``weights[i] = mean + rand_uniform(-std, std)``;
- file payload: ``weights[nweights]``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..cfg import Section
from ..registry import register_section
from .base import BuildContext, DarknetLayer, positive

__all__ = ["Implicit"]


@register_section("implicit")
class Implicit(DarknetLayer):
    """A ``filters×atoms×1`` parameter broadcast over the batch."""

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        self.mean_init = sec.get_float("mean", 0.0)
        self.std_init = sec.get_float("std", 0.2)
        self.filters = positive(sec, "filters", sec.get_int("filters", 128))
        self.atoms = positive(sec, "atoms", sec.get_int("atoms", 1))
        self.out_shape = (self.filters, self.atoms, 1)
        self.outputs = self.filters * self.atoms
        self.weights = nn.Parameter(torch.zeros(self.filters, self.atoms, 1))

    def forward(self, x: Tensor, cache: list) -> Tensor:
        return self.weights.unsqueeze(0).expand(x.shape[0], -1, -1, -1)

    def weight_tensors(self) -> list[Tensor]:
        return [self.weights]

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        # rand_uniform(min, max) swaps its bounds when max < min, so a negative std acts as |std|
        spread = abs(self.std_init)
        with torch.no_grad():
            self.weights.uniform_(-spread, spread, generator=generator).add_(self.mean_init)

    def describe(self) -> tuple[str, str]:
        return f"{self.filters}", f"{self.atoms} atoms"
