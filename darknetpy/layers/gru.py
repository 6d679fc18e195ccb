"""``[gru]``: Darknet's gated recurrent unit (six linear connected blocks).

Darknet: ``src/parser.c:parse_gru``, ``src/gru_layer.c:make_gru_layer/forward_gru_layer``,
``load_weights_upto``/``save_weights_upto``. Time steps and state: see :mod:`.rnn` (the state
carries over between calls in inference *and* training: ``forward_gru_layer`` never zeroes it).

Blocks (linear activation, optional batch norm with per-step statistics): ``u*`` read the input
(``inputs -> output``: pjreddie ``uz/ur/uh``, AlexeyAB ``input_z/r/h_layer``), ``w*`` read the
state (``output -> output``: pjreddie ``wz/wr/wh``, AlexeyAB ``state_z/r/h_layer``)::

    z = σ(uz·x + wz·s)          r = σ(ur·x + wr·s)
    h = act(uh·x + wh·(r*s))    act: logistic (pjreddie with tanh=1, or AlexeyAB built with USET: tanh)
    s = y = z*s + (1-z)*h       (weighted_sum_cpu)

File order: pjreddie ``wz, wr, wh, uz, ur, uh``; AlexeyAB ``input_z, input_r, input_h,
state_z, state_r, state_h``, i.e. ``uz, ur, uh, wz, wr, wh`` (the forks' files differ).
Shape: ``l.out_c/h/w`` stay 0 in both forks.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..cfg import Section
from ..registry import register_section
from .base import BuildContext, positive
from .connected import ConnectedBlock
from .rnn import ConnectedRecurrent, flat_inputs

__all__ = ["GRU"]


@register_section("gru")
class GRU(ConnectedRecurrent):
    """GRU with Darknet's gate layout and weight order."""

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        f = ctx.flavor
        inputs = flat_inputs(sec, ctx)
        output = positive(sec, "output", sec.get_int("output", 1))
        bn = sec.get_int("batch_normalize", 0)
        self.tanh = sec.get_int("tanh", 0) if self.rules.gru_reads_tanh else 0
        self.batch_normalize = bn
        for name in ("uz", "ur", "uh"):
            setattr(self, name, ConnectedBlock(inputs, output, "linear", bn, f))
        for name in ("wz", "wr", "wh"):
            setattr(self, name, ConnectedBlock(output, output, "linear", bn, f))
        self.block_order = self.rules.gru_order
        self._flat_out(output)

    def forward(self, x: Tensor, cache: list) -> Tensor:
        xs, batch = self.split_steps(x, self.inputs)
        (state,) = self.initial_state([(batch, self.outputs)], xs)
        outs = []
        for t in range(self.steps):  # forward_gru_layer
            z = torch.sigmoid(self.uz(xs[t]) + self.wz(state))
            r = torch.sigmoid(self.ur(xs[t]) + self.wr(state))
            pre = self.uh(xs[t]) + self.wh(state * r)
            h = torch.tanh(pre) if self.tanh else torch.sigmoid(pre)
            state = z * state + (1 - z) * h
            outs.append(state)
        self.keep_state(state)
        return self.shape_output(torch.cat(outs, 0))
