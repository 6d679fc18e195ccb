"""``[lstm]``, and AlexeyAB's ``[conv_lstm]`` and ``[history]``.

Time steps and state: see :mod:`.rnn`. All three keep their state between calls in inference and
in training (Darknet never zeroes ``l.h_cpu``/``l.c_cpu``/``l.prev_state_cpu`` in a forward).

``[lstm]`` — ``src/parser.c:parse_lstm``, ``src/lstm_layer.c:forward_lstm_layer``. Eight linear
connected blocks (optional batch norm, per-step statistics): ``u*`` read the input (``inputs ->
output``), ``w*`` the previous output ``h``::

    f = σ(wf·h + uf·x)   i = σ(wi·h + ui·x)   g = tanh(wg·h + ug·x)   o = σ(wo·h + uo·x)
    c = f*c + i*g        h = y = o * tanh(c)

File order (darknet-reference.md §2.2, ``flavor.lstm_order``): pjreddie ``wi,wf,wo,wg,ui,uf,uo,ug``,
AlexeyAB ``wf,wi,wg,wo,uf,ui,ug,uo``. Shape: pjreddie leaves ``l.out_*`` at 0, AlexeyAB's
``make_lstm_layer`` sets ``1×1×output``.

``[conv_lstm]`` (AlexeyAB) — ``parse_conv_lstm``, ``src/conv_lstm_layer.c:forward_conv_lstm_layer``
(the CPU code). Keys: ``size`` 3, ``stride`` 1, ``dilation`` 1, ``pad``/``padding`` 0, ``output``
1, ``groups`` 1, ``activation`` linear (applied inside every sub-conv), ``batch_normalize``,
``peephole`` 0, ``state_constrain`` (time_steps·32), ``bottleneck``, ``xnor``, ``shortcut``,
``lstm_activation``, ``time_normalizer``. Convs ``u*`` (input), ``w*`` (previous ``h``), with
``peephole`` also ``vf, vi`` (previous ``c``) and ``vo`` (new ``c``)::

    f = σ(wf + uf [+ vf])  i = σ(wi + ui [+ vi])  g = tanh(wg + ug)
    c = f*c + i*g          o = σ(wo + uo [+ vo(c)])     h = y = o * tanh(c)
    c = clamp(c, ±state_constrain); then NaN/inf in c and h become 1/index (fix_nan_and_inf_cpu)

The CPU forward uses tanh whatever ``lstm_activation`` says and ignores ``time_normalizer`` and
``shortcut`` (only the GPU code reads them); ``bottleneck=1`` exists only on the GPU (the CPU
forward runs convs that were never built) and is refused here. File order: ``vf, vi, vo`` (with
peephole), ``wf, wi, wg, wo``, ``uf, ui, ug, uo``, each in the conv layout. Output
``output × out_h × out_w``; the conv must keep h×w (the state is fed back at the input size).

``[history]`` (AlexeyAB) — ``parse_history``, ``forward_history_layer``. ``history_size`` (4)
stacks the last ``history_size`` steps along channels: output channels ``[k·c, (k+1)·c)`` hold
the input of ``k`` steps before (zeros before the first). With ``time_steps=1`` Darknet just
copies ``batch·inputs`` floats to the start of its ``batch·outputs`` buffer (the rest stays 0);
that is reproduced. No weights.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..cfg import Section
from ..errors import BadValueError
from ..registry import register_section
from .base import BuildContext, positive
from .connected import ConnectedBlock
from .crnn import ConvBlock, check_groups, conv_geometry, recurrent_conv_keys, same_size_check
from .rnn import ConnectedRecurrent, RecurrentLayer, flat_inputs

__all__ = ["LSTM", "ConvLSTM", "History"]


@register_section("lstm")
class LSTM(ConnectedRecurrent):
    """LSTM with Darknet's gates and the fork's weight order."""

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        f = ctx.flavor
        inputs = flat_inputs(sec, ctx)
        output = positive(sec, "output", sec.get_int("output", 1))
        bn = sec.get_int("batch_normalize", 0)
        self.batch_normalize = bn
        for gate in "figo":
            setattr(self, "u" + gate, ConnectedBlock(inputs, output, "linear", bn, f))
            setattr(self, "w" + gate, ConnectedBlock(output, output, "linear", bn, f))
        self.block_order = tuple(f.lstm_order)
        self._flat_out(output)

    def forward(self, x: Tensor, cache: list) -> Tensor:
        xs, batch = self.split_steps(x, self.inputs)
        h, c = self.initial_state([(batch, self.outputs), (batch, self.outputs)], xs)
        outs = []
        for t in range(self.steps):  # forward_lstm_layer
            xt = xs[t]
            f = torch.sigmoid(self.wf(h) + self.uf(xt))
            i = torch.sigmoid(self.wi(h) + self.ui(xt))
            g = torch.tanh(self.wg(h) + self.ug(xt))
            o = torch.sigmoid(self.wo(h) + self.uo(xt))
            c = c * f + i * g
            h = torch.tanh(c) * o
            outs.append(h)
        self.keep_state(h, c)
        return self.shape_output(torch.cat(outs, 0))


def _fix_nan_and_inf(v: Tensor) -> Tensor:
    """blas.c:fix_nan_and_inf_cpu over one step's ``batch·outputs`` buffer: bad values become 1.0f/i."""
    flat = v.reshape(-1)
    idx = torch.arange(flat.numel(), device=v.device, dtype=v.dtype)
    return torch.where(torch.isfinite(flat), flat, 1.0 / idx).reshape(v.shape)


@register_section("conv_lstm")
class ConvLSTM(RecurrentLayer):
    """AlexeyAB's convolutional LSTM (its CPU forward)."""

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        f = ctx.flavor
        c, h, w = ctx.require_image(sec)
        keys = recurrent_conv_keys(sec, ctx, "linear")
        output = positive(sec, "output", sec.get_int("output", 1))
        self.peephole = sec.get_int("peephole", 0)
        if sec.get_int("bottleneck", 0):
            raise sec.error(
                "bottleneck=1 is implemented only by AlexeyAB's GPU code (its CPU forward runs the w* convs that a "
                "bottleneck layer never builds); not supported by darknetpy",
                "bottleneck",
                BadValueError,
            )
        self.state_constrain = sec.get_int("state_constrain", self.steps * 32)
        self.shortcut = sec.get_int("shortcut", 0)  # read by AlexeyAB, used by its GPU code only
        sec.mark_used("lstm_activation", "time_normalizer")  # GPU-only (see the module docstring)
        size, stride, dilation, padding, groups = (keys[k] for k in ("size", "stride", "dilation", "padding", "groups"))
        check_groups(sec, groups, **{"input channels": c, "output filters": output})
        out_h, out_w = conv_geometry(sec, h, w, size, stride, padding, dilation)
        same_size_check(sec, "conv_lstm", h, w, out_h, out_w)
        act, bn = keys["activation"], keys["bn"]
        self.size, self.stride, self.padding, self.dilation, self.groups = size, stride, padding, dilation, groups
        order = []
        if self.peephole:
            order += ["vf", "vi", "vo"]
        order += ["wf", "wi", "wg", "wo", "uf", "ui", "ug", "uo"]
        for name in order:
            cin = c if name[0] == "u" else output
            setattr(self, name, ConvBlock(cin, output, size, stride, padding, dilation, groups, act, bn, f))
        self.block_order = tuple(order)
        self.out_shape = (output, out_h, out_w)
        self.outputs = output * out_h * out_w

    def blocks(self) -> list[ConvBlock]:
        return [getattr(self, name) for name in self.block_order]

    def forward(self, x: Tensor, cache: list) -> Tensor:
        c, hh, ww = self.in_shape
        xs, batch = self.split_steps(x, c * hh * ww)
        shape = (batch, *self.out_shape)
        h, cell = self.initial_state([shape, shape], xs)
        outs = []
        for t in range(self.steps):  # forward_conv_lstm_layer
            xt = xs[t].reshape(batch, c, hh, ww)
            fg = self.wf(h) + self.uf(xt)
            ig = self.wi(h) + self.ui(xt)
            if self.peephole:
                fg = fg + self.vf(cell)
                ig = ig + self.vi(cell)
            g = torch.tanh(self.wg(h) + self.ug(xt))
            fg, ig = torch.sigmoid(fg), torch.sigmoid(ig)
            cell = cell * fg + ig * g
            og = self.wo(h) + self.uo(xt)
            if self.peephole:
                og = og + self.vo(cell)
            h = torch.tanh(cell) * torch.sigmoid(og)
            if self.state_constrain:  # constrain_cpu: fminf(a, fmaxf(-a, x)) (NaN -> -a, as in C)
                a = torch.tensor(float(self.state_constrain), dtype=cell.dtype, device=cell.device)
                cell = torch.fmin(a, torch.fmax(-a, cell))
            cell = _fix_nan_and_inf(cell)
            h = _fix_nan_and_inf(h)
            outs.append(h)
        self.keep_state(h, cell)
        return torch.cat(outs, 0)

    def weight_tensors(self) -> list[Tensor]:
        return [t for block in self.blocks() for t in block.stored()]

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        for block in self.blocks():
            block.reset(generator)

    def bflops(self) -> float:
        _, oh, ow = self.out_shape
        extra = (12 if self.peephole else 9) * self.outputs / 1e9
        return sum(block.bflops(oh, ow) for block in self.blocks()) + extra

    def describe(self) -> tuple[str, str]:
        size = f"{self.size} x{self.size:2d}/{self.stride:2d}" + (f"({self.dilation})" if self.dilation > 1 else "")
        return f"{self.out_shape[0]}", size


@register_section("history")
class History(RecurrentLayer):
    """AlexeyAB's ``[history]``: the last ``history_size`` steps stacked along channels."""

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        c, h, w = ctx.require_image(sec)
        self.history_size = positive(sec, "history_size", sec.get_int("history_size", 4))
        self.out_shape = (c * self.history_size, h, w)
        self.outputs = c * h * w * self.history_size

    def forward(self, x: Tensor, cache: list) -> Tensor:
        n = x.shape[0]
        inputs = self.inputs
        if self.steps == 1:  # copy_cpu(l.inputs*l.batch, input, output): the rest of the buffer stays 0
            flat = x.new_zeros(n * self.outputs)
            flat = torch.cat([x.reshape(-1), flat[n * inputs :]])
            return self.shape_output(flat.reshape(n, self.outputs))
        xs, batch = self.split_steps(x, inputs)
        (prev,) = self.initial_state([(batch, self.outputs)], xs)
        shift = inputs * (self.history_size - 1)
        outs = []
        for t in range(self.steps):  # forward_history_layer
            prev = torch.cat([xs[t], prev[:, :shift]], 1)
            outs.append(prev)
        self.keep_state(prev)
        return self.shape_output(torch.cat(outs, 0))
