"""``[route]``: concatenate earlier layers' outputs (AlexeyAB: one group of each).

Darknet: ``src/parser.c:parse_route``, ``src/route_layer.c:make_route_layer/forward_route_layer``
(darknet-reference.md §1.5, §1.7, §3.4). Per image, each input's flat output (or, with AlexeyAB's
``groups``, its contiguous chunk ``group_id``) is copied one after another. The reported shape is the
first input's ``w×h`` with the channels summed (divided by ``groups``), or 0×0×0 when the inputs'
sizes differ (Darknet accepts that; a following conv then refuses it).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..cfg import Section
from ..errors import BadValueError, CfgError
from ..registry import register_section
from .base import BuildContext, DarknetLayer

__all__ = ["Route"]


@register_section("route")
class Route(DarknetLayer):
    """Concatenation along channels in Darknet's flat memory order."""

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        if "layers" not in sec:
            raise sec.error("a route needs layers=", cls=CfgError)
        values = sec.get_ints("layers")
        self.sources = tuple(ctx.layer_index(sec, "layers", v) for v in values)
        ab = ctx.flavor.reads("route", "groups")
        self.groups = sec.get_int("groups", 1) if ab else 1
        self.group_id = sec.get_int("group_id", 0) if ab else 0
        if ab:
            sec.mark_used("stream", "wait_stream")
        if self.groups < 1 or not 0 <= self.group_id < self.groups:
            raise sec.error(f"needs groups >= 1 and 0 <= group_id < groups (group_id={self.group_id})", "groups", BadValueError)
        inputs = [ctx.layers[i] for i in self.sources]
        self.sizes = tuple(layer.outputs for layer in inputs)
        first = inputs[0].out_shape
        c = first[0]
        same = True
        for layer in inputs[1:]:
            if layer.out_shape[1:] == first[1:]:
                c += layer.out_shape[0]
            else:
                same = False
        self.out_shape = (c // self.groups, first[1], first[2]) if same else (0, 0, 0)
        self.outputs = sum(self.sizes) // self.groups
        # a plain channel concatenation is exact when every chunk is whole channels
        self._channels = same and all(
            l.out_shape[0] % self.groups == 0 and l.outputs == l.out_shape[0] * l.out_shape[1] * l.out_shape[2] for l in inputs
        )

    def forward(self, x: Tensor, cache: list) -> Tensor:
        parts = [cache[i] for i in self.sources]
        if self._channels:
            if self.groups > 1:
                parts = [p.chunk(self.groups, dim=1)[self.group_id] for p in parts]
            return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        flat = []
        for p, size in zip(parts, self.sizes):
            p = p.reshape(p.shape[0], -1)
            part = size // self.groups
            flat.append(p[:, part * self.group_id : part * (self.group_id + 1)])
        return self.shape_output(torch.cat(flat, dim=1))

    def describe(self) -> tuple[str, str]:
        text = " ".join(str(i) for i in self.sources)
        if self.groups > 1:
            text += f"  {self.group_id}/{self.groups}"
        return "", text
