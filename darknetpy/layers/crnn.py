"""``[crnn]``: Darknet's convolutional RNN, and the small conv block the recurrent convs share.

Darknet: ``src/parser.c:parse_crnn``, ``src/crnn_layer.c:make_crnn_layer/forward_crnn_layer``,
``load_convolutional_weights``/``save_convolutional_weights`` (darknet-reference.md §2.2).
Time steps and state: see :mod:`.rnn` (inference carries the state; training starts every call
from zeros, as for ``[rnn]``).

Three conv blocks, each conv → batch norm (per-step statistics) or ``+biases`` → activation::

    s_t = (shortcut ? s_{t-1} : 0) + input(x_t) + self(s_{t-1})     (hidden filters, h×w)
    y_t = output(s_t)                                                  (output filters)

- pjreddie reads ``output_filters``, ``hidden_filters`` (default 1 each), ``activation``
  (logistic), ``batch_normalize``, ``shortcut``; the convs are always 3×3, stride 1, pad 1.
- AlexeyAB reads ``output``, ``hidden`` (default 1), ``size`` (3), ``stride``, ``dilation``,
  ``pad`` (0; ``pad=1`` means ``size/2``), ``padding``, ``groups``, ``xnor``, ``shortcut``. Its
  ``make_crnn_layer`` asserts ``input_layer->outputs == output_layer->inputs``: the conv must
  keep h×w (the default ``size=3, pad=0`` does not, and is refused here with a ShapeError).

Output ``out_c = output`` × the conv's ``out_h × out_w`` (= the input's h×w). File payload per
block, in the order input, self, output: ``biases[n]``, with batch norm ``scales,
rolling_mean, rolling_variance``, then ``weights[n][c/groups][size][size]``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..activations import activate, activation_from_section
from ..cfg import Section
from ..errors import BadValueError, ShapeError
from ..flavor import FlavorSpec
from ..registry import register_section
from .base import BuildContext, Shape, c_div, normal_, positive, uniform_
from .batchnorm import BatchNormParams
from .rnn import RecurrentLayer

__all__ = ["ConvBlock", "CRNN", "conv_geometry"]


class ConvBlock(nn.Module):
    """One Darknet convolution (``forward_convolutional_layer``): conv, BN or bias, activation."""

    def __init__(
        self,
        c: int,
        n: int,
        size: int,
        stride: int,
        padding: int,
        dilation: int,
        groups: int,
        activation: str,
        batch_normalize: int,
        flavor: FlavorSpec,
    ) -> None:
        super().__init__()
        self.c, self.n, self.size, self.stride = c, n, size, stride
        self.padding, self.dilation, self.groups, self.activation = padding, dilation, groups, activation
        self.flavor = flavor
        self.weight = nn.Parameter(torch.zeros(n, c // groups, size, size))
        self.biases = nn.Parameter(torch.zeros(n))
        self.bn = BatchNormParams(n, flavor) if batch_normalize else None

    def forward(self, x: Tensor) -> Tensor:
        # im2col with padding pad*dilation (AlexeyAB's im2col_cpu_ext), as convolutional.py does
        y = F.conv2d(x, self.weight, None, self.stride, self.padding * self.dilation, self.dilation, self.groups)
        y = self.bn(y, self.biases) if self.bn is not None else y + self.biases.view(1, -1, 1, 1)
        return activate(y, self.activation)

    def stored(self) -> list[Tensor]:
        """File order of load_convolutional_weights (a sub-layer's dontloadscales is always 0)."""
        if self.bn is None:
            return [self.biases, self.weight]
        return [self.biases, self.bn.scales, self.bn.rolling_mean, self.bn.rolling_variance, self.weight]

    def reset(self, generator: torch.Generator | None = None) -> None:
        """make_convolutional_layer: sqrt(2/fan_in)·N(0,1) (pjreddie) or ·U(-1,1) (AlexeyAB)."""
        scale = math.sqrt(2.0 / max(1, (self.c // self.groups) * self.size * self.size))
        (uniform_ if self.flavor.conv_init_uniform else normal_)(self.weight, scale, generator)
        with torch.no_grad():
            self.biases.zero_()
        if self.bn is not None:
            self.bn.reset()

    def bflops(self, out_h: int, out_w: int) -> float:
        return 2.0 * (self.c // self.groups) * self.n * self.size * self.size * out_h * out_w / 1e9


def conv_geometry(sec: Section, h: int, w: int, size: int, stride: int, padding: int, dilation: int) -> tuple[int, int]:
    """Darknet's conv output size ``(in + 2·padding − size)/stride + 1``, checked for PyTorch."""
    out_h = c_div(h + 2 * padding - size, stride) + 1
    out_w = c_div(w + 2 * padding - size, stride) + 1
    if out_h < 1 or out_w < 1:
        raise sec.error(f"the convolution output would be {out_w}x{out_h} for a {w}x{h} input", "size", ShapeError)
    if dilation > 1:
        torch_h = (h + 2 * padding * dilation - dilation * (size - 1) - 1) // stride + 1
        torch_w = (w + 2 * padding * dilation - dilation * (size - 1) - 1) // stride + 1
        if (torch_h, torch_w) != (out_h, out_w):
            raise sec.error(
                "dilation needs pad=1 with an odd size in Darknet (otherwise its output size is not self-consistent)",
                "dilation",
                ShapeError,
            )
    return out_h, out_w


def recurrent_conv_keys(sec: Section, ctx: BuildContext, default_activation: str) -> dict:
    """AlexeyAB's conv keys of ``parse_crnn``/``parse_conv_lstm``, validated."""
    size = positive(sec, "size", sec.get_int("size", 3))
    stride = positive(sec, "stride", sec.get_int("stride", 1))
    dilation = positive(sec, "dilation", sec.get_int("dilation", 1))
    pad = sec.get_int("pad", 0)
    padding = sec.get_int("padding", 0)
    if pad:
        padding = size // 2
    if padding < 0:
        raise sec.error("must not be negative", "padding", BadValueError)
    groups = positive(sec, "groups", sec.get_int("groups", 1))
    activation = activation_from_section(sec, ctx.flavor, default_activation)
    bn = sec.get_int("batch_normalize", 0)
    if sec.get_int("xnor", 0):
        raise sec.error(
            "xnor=1 in a recurrent conv layer is not supported by darknetpy (AlexeyAB's bit-packed XNOR path)",
            "xnor",
            BadValueError,
        )
    return dict(size=size, stride=stride, dilation=dilation, padding=padding, groups=groups, activation=activation, bn=bn)


def same_size_check(sec: Section, kind: str, h: int, w: int, out_h: int, out_w: int) -> None:
    """The recurrent convs feed their state (h×w) back: the conv must keep h×w."""
    if (out_h, out_w) != (h, w):
        raise sec.error(
            f"the convolution turns the {w}x{h} input into {out_w}x{out_h}, but [{kind}] feeds its state back at "
            f"{w}x{h} (Darknet asserts the sizes match; use pad=1 with an odd size and stride=1)",
            "size",
            ShapeError,
        )


def check_groups(sec: Section, groups: int, **channels: int) -> None:
    for name, c in channels.items():
        if c % groups:
            raise sec.error(f"groups={groups} must divide the {name} ({c})", "groups", ShapeError)


@register_section("crnn")
class CRNN(RecurrentLayer):
    """Convolutional RNN with ``input``, ``self`` and ``output`` conv blocks."""

    zero_state_in_training = True

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        f = ctx.flavor
        c, h, w = ctx.require_image(sec)
        if self.rules.crnn_configurable:
            keys = recurrent_conv_keys(sec, ctx, "logistic")
            output = positive(sec, "output", sec.get_int("output", 1))
            hidden = positive(sec, "hidden", sec.get_int("hidden", 1))
        else:
            output = positive(sec, "output_filters", sec.get_int("output_filters", 1))
            hidden = positive(sec, "hidden_filters", sec.get_int("hidden_filters", 1))
            activation = activation_from_section(sec, f, "logistic")
            bn = sec.get_int("batch_normalize", 0)
            keys = dict(size=3, stride=1, dilation=1, padding=1, groups=1, activation=activation, bn=bn)
        self.shortcut = sec.get_int("shortcut", 0)
        size, stride, dilation, padding, groups = (keys[k] for k in ("size", "stride", "dilation", "padding", "groups"))
        check_groups(sec, groups, **{"input channels": c, "hidden filters": hidden, "output filters": output})
        out_h, out_w = conv_geometry(sec, h, w, size, stride, padding, dilation)
        same_size_check(sec, "crnn", h, w, out_h, out_w)
        act, bn = keys["activation"], keys["bn"]
        self.hidden, self.size, self.stride, self.padding, self.dilation, self.groups = hidden, size, stride, padding, dilation, groups
        self.input_layer = ConvBlock(c, hidden, size, stride, padding, dilation, groups, act, bn, f)
        self.self_layer = ConvBlock(hidden, hidden, size, stride, padding, dilation, groups, act, bn, f)
        self.output_layer = ConvBlock(hidden, output, size, stride, padding, dilation, groups, act, bn, f)
        self.hidden_shape: Shape = (hidden, out_h, out_w)
        self.out_shape = (output, out_h, out_w)
        self.outputs = output * out_h * out_w

    def blocks(self) -> list[ConvBlock]:
        return [self.input_layer, self.self_layer, self.output_layer]

    def forward(self, x: Tensor, cache: list) -> Tensor:
        c, h, w = self.in_shape
        xs, batch = self.split_steps(x, c * h * w)
        (state,) = self.initial_state([(batch, *self.hidden_shape)], xs)
        outs = []
        for t in range(self.steps):  # forward_crnn_layer
            a = self.input_layer(xs[t].reshape(batch, c, h, w))
            b = self.self_layer(state)
            state = ((state + a) if self.shortcut else a) + b
            outs.append(self.output_layer(state))
        self.keep_state(state)
        return torch.cat(outs, 0)

    def weight_tensors(self) -> list[Tensor]:
        return [t for block in self.blocks() for t in block.stored()]

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        for block in self.blocks():
            block.reset(generator)

    def bflops(self) -> float:
        _, oh, ow = self.out_shape
        return sum(block.bflops(oh, ow) for block in self.blocks())

    def describe(self) -> tuple[str, str]:
        size = f"{self.size} x{self.size:2d}/{self.stride:2d}" + (f"({self.dilation})" if self.dilation > 1 else "")
        return f"{self.hidden}->{self.out_shape[0]}", size
