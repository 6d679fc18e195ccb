"""``[rnn]``: Darknet's vanilla recurrent layer, and what every recurrent section shares.

Darknet: ``src/parser.c:parse_rnn``, ``src/rnn_layer.c:make_rnn_layer/forward_rnn_layer``,
``load_weights_upto``/``save_weights_upto`` (darknet-reference.md §2.2).

**Time steps.** Darknet's network batch is ``mini_batch·time_steps`` (``[net] time_steps``). A
recurrent layer reads its input as ``time_steps`` consecutive chunks of ``batch = N/time_steps``
rows, *step-major*: row ``t·batch + b`` is step ``t`` of sequence ``b`` (``state.input +=
l.inputs*l.batch`` per step). Feed a ``(time_steps·batch, inputs)`` tensor, e.g.
``x.reshape(time_steps * batch, -1)`` of a ``(time_steps, batch, inputs)`` sequence; the output
has the same step-major layout. ``N`` must be a multiple of ``time_steps``.

**State between calls.** Each layer keeps its hidden state between ``forward`` calls, as
Darknet keeps ``l.state`` (a stream of calls with ``time_steps=1`` is how Darknet's ``rnn
generate`` runs). What Darknet's CPU code does, reproduced here:

- ``[rnn]``/``[crnn]``: in inference the state carries over; in training every call starts from
  zeros (``if(state.train) fill_cpu(..., l.state)``) and leaves a zero state behind (training
  writes the later slots of ``l.state``, slot 0 stays zero).
- ``[gru]``, ``[lstm]``, ``[conv_lstm]``, ``[history]``: the state carries over in both modes.

:meth:`RecurrentLayer.reset_state` zeroes it (``Darknet`` users: call it on every layer that
has it before a new sequence). The kept state is detached (no gradient flows across calls,
as Darknet's backward stops at the call). If the per-step batch, device or dtype changes, the
state starts again from zeros.

``[rnn]`` (three connected blocks ``input``, ``self``, ``output``, each with the layer's
activation and optional batch norm, statistics per step)::

    s_t = (shortcut ? s_{t-1} : 0) + act(W_in·x_t) + act(W_self·s_{t-1})
    y_t = act(W_out·s_t)

pjreddie's ``parse_rnn`` ignores ``hidden`` (the state has ``output`` units); AlexeyAB's reads
``hidden`` (default 1) and ``logistic`` (1: the self block uses logistic, 2: loggy). Shapes:
pjreddie leaves ``l.out_c/h/w`` at 0; AlexeyAB's ``make_rnn_layer`` sets ``1×1×output``.
File payload: the three blocks in the order input, self, output (connected layout each).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch
from torch import Tensor

from ..activations import activation_from_section
from ..cfg import Section
from ..errors import BadValueError, DarknetError, ShapeError
from ..flavor import FlavorSpec
from ..registry import register_section
from .base import BuildContext, DarknetLayer, positive
from .connected import ConnectedBlock

__all__ = ["RecurrentLayer", "RecurrentRules", "RNN", "recurrent_rules"]


# --------------------------------------------------------------------------------------------
# Fork rules for the recurrent sections.
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RecurrentRules:
    """Where pjreddie's and AlexeyAB's recurrent code differ (C functions in each field).

    Taken from fields of the :class:`FlavorSpec` when it has them; until flavor.py carries them,
    derived from its key tables (``flavor.reads("rnn", "hidden")`` is AlexeyAB's ``parse_rnn``).
    """

    # parse_rnn: AlexeyAB reads `hidden` (default 1) and `logistic`; pjreddie uses hidden = output.
    rnn_reads_hidden: bool
    # save/load_weights_upto, GRU: pjreddie wz,wr,wh,uz,ur,uh; AlexeyAB input_z,r,h then state_z,r,h.
    # Here u* are the input blocks (inputs -> output), w* the state blocks (output -> output).
    gru_order: tuple[str, ...]
    # parse_gru: pjreddie reads `tanh` (candidate activation tanh instead of logistic).
    gru_reads_tanh: bool
    # make_rnn_layer / make_lstm_layer: AlexeyAB sets l.out_w = l.out_h = 1, l.out_c = outputs.
    flat_out_1x1: frozenset[str]
    # parse_crnn: AlexeyAB reads size/stride/dilation/pad/padding/groups/xnor, `output`, `hidden`;
    # pjreddie reads `output_filters`, `hidden_filters` and always uses 3x3, stride 1, pad 1.
    crnn_configurable: bool


_GRU_ORDER_PJ = ("wz", "wr", "wh", "uz", "ur", "uh")
_GRU_ORDER_AB = ("uz", "ur", "uh", "wz", "wr", "wh")


def recurrent_rules(flavor: FlavorSpec) -> RecurrentRules:
    """The :class:`RecurrentRules` of ``flavor``."""
    return RecurrentRules(
        rnn_reads_hidden=flavor.reads("rnn", "hidden"),
        gru_order=flavor.gru_order,
        gru_reads_tanh=flavor.gru_reads_tanh,
        flat_out_1x1=flavor.recurrent_out_1x1,
        crnn_configurable=flavor.crnn_configurable,
    )


# --------------------------------------------------------------------------------------------
# Shared machinery.
# --------------------------------------------------------------------------------------------
class RecurrentLayer(DarknetLayer):
    """A layer that runs ``time_steps`` chunks of its batch in order, keeping a state."""

    # True: a training-mode call starts from (and leaves) a zero state ([rnn], [crnn]).
    zero_state_in_training: ClassVar[bool] = False

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        self.rules = recurrent_rules(ctx.flavor)
        steps = ctx.net.time_steps
        if steps < 1:
            net_sec = ctx.net.section
            message = (
                f"must be at least 1 for the recurrent layer [{sec.name}] at {sec.where()}: it splits the batch into "
                "time_steps chunks (pjreddie's darknet divides by it and stops with a floating point exception; "
                "AlexeyAB's parse_network_cfg raises it to 1)"
            )
            if net_sec is not None:
                raise net_sec.error(message, "time_steps", BadValueError)
            raise sec.error(message, cls=BadValueError)
        self.steps: int = steps
        self.batch: int = max(1, ctx.batch // steps)  # Darknet's l.batch: sequences per step
        self._state: tuple[Tensor, ...] | None = None

    # ---- state --------------------------------------------------------------------------
    def reset_state(self) -> None:
        """Forget the kept state: the next call starts from zeros."""
        self._state = None

    @property
    def state(self) -> tuple[Tensor, ...] | None:
        """The kept state (detached), or None when it is zero."""
        return self._state

    def initial_state(self, shapes: Sequence[tuple[int, ...]], like: Tensor) -> list[Tensor]:
        """The state the next call starts from: the kept one if it fits, else zeros."""
        kept = self._state
        if self.training and self.zero_state_in_training:
            kept = None
        if kept is not None and len(kept) == len(shapes) and all(tuple(k.shape) == tuple(s) for k, s in zip(kept, shapes)):
            return [k.to(device=like.device, dtype=like.dtype) for k in kept]
        return [like.new_zeros(s) for s in shapes]

    def keep_state(self, *state: Tensor) -> None:
        if self.training and self.zero_state_in_training:
            self._state = None
        else:
            self._state = tuple(s.detach() for s in state)

    # ---- input --------------------------------------------------------------------------
    def split_steps(self, x: Tensor, per_row: int) -> tuple[Tensor, int]:
        """``x`` as ``(steps, batch, per_row)`` (step-major rows), and ``batch``."""
        n = x.shape[0]
        if n == 0:
            raise DarknetError(f"layer {self.index} [{self.section_name}] ({self.where}): no input rows (an empty batch)")
        if n % self.steps:
            raise DarknetError(
                f"layer {self.index} [{self.section_name}] ({self.where}): {n} input rows are not a multiple of "
                f"time_steps={self.steps}; feed (time_steps*batch, ...) rows, step-major (row t*batch+b is step t "
                "of sequence b)"
            )
        if math.prod(x.shape[1:]) != per_row:
            raise DarknetError(
                f"layer {self.index} [{self.section_name}] ({self.where}): each input row must hold {per_row} values, "
                f"got {tuple(x.shape[1:])}"
            )
        batch = n // self.steps
        return x.reshape(self.steps, batch, per_row), batch

    def _flat_out(self, outputs: int) -> None:
        """Darknet's l.out_c/h/w for a flat recurrent layer (0×0×0, or AlexeyAB's 1×1×outputs)."""
        self.outputs = outputs
        self.out_shape = (outputs, 1, 1) if self.section_type in self.rules.flat_out_1x1 else (0, 0, 0)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", time_steps={self.steps}"


def flat_inputs(sec: Section, ctx: BuildContext) -> int:
    """The previous layer's l.outputs, which a connected-based recurrent layer flattens."""
    if ctx.inputs < 1:
        raise sec.error("the layer before gives no outputs", cls=ShapeError)
    return ctx.inputs


def flat_activation(sec: Section, flavor: FlavorSpec, default: str, key: str = "activation") -> str:
    """The blocks are connected layers: Darknet's generic activate_array applies their activation."""
    return activation_from_section(sec, flavor, default, key, generic=True)


class ConnectedRecurrent(RecurrentLayer):
    """A recurrent layer built of :class:`ConnectedBlock` s, stored in :attr:`block_order`."""

    block_order: tuple[str, ...] = ()

    def blocks(self) -> list[ConnectedBlock]:
        return [getattr(self, name) for name in self.block_order]

    def weight_tensors(self) -> list[Tensor]:
        # The blocks are separate layer structs in Darknet: their dontloadscales is always 0.
        return [t for block in self.blocks() for t in block.stored(False)]

    def read_weights(self, reader) -> None:
        for block in self.blocks():  # load_connected_weights(*(l.block), fp, transpose)
            block.read(reader, self, False)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        for block in self.blocks():
            block.reset(generator)

    def bflops(self) -> float:
        return sum(2.0 * b.inputs * b.outputs for b in self.blocks()) / 1e9

    def describe(self) -> tuple[str, str]:
        return f"{self.outputs}", f"steps {self.steps}"


# --------------------------------------------------------------------------------------------
# [rnn]
# --------------------------------------------------------------------------------------------
@register_section("rnn")
class RNN(ConnectedRecurrent):
    """Vanilla RNN: ``input``, ``self`` and ``output`` connected blocks."""

    zero_state_in_training = True
    block_order = ("input_layer", "self_layer", "output_layer")

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        f = ctx.flavor
        inputs = flat_inputs(sec, ctx)
        output = positive(sec, "output", sec.get_int("output", 1))
        if self.rules.rnn_reads_hidden:
            hidden = positive(sec, "hidden", sec.get_int("hidden", 1))
            log = sec.get_int("logistic", 0)
        else:
            hidden, log = output, 0
        activation = flat_activation(sec, f, "logistic")
        bn = sec.get_int("batch_normalize", 0)
        self.shortcut = sec.get_int("shortcut", 0)
        self_activation = "loggy" if log == 2 else "logistic" if log == 1 else activation
        self.hidden, self.activation, self.batch_normalize = hidden, activation, bn
        self.input_layer = ConnectedBlock(inputs, hidden, activation, bn, f)
        self.self_layer = ConnectedBlock(hidden, hidden, self_activation, bn, f)
        self.output_layer = ConnectedBlock(hidden, output, activation, bn, f)
        self._flat_out(output)

    def forward(self, x: Tensor, cache: list) -> Tensor:
        xs, batch = self.split_steps(x, self.inputs)
        (state,) = self.initial_state([(batch, self.hidden)], xs)
        outs = []
        for t in range(self.steps):  # forward_rnn_layer
            a = self.input_layer(xs[t])
            b = self.self_layer(state)
            # l.state = shortcut ? old : 0; axpy(input output); axpy(self output)
            state = ((state + a) if self.shortcut else a) + b
            outs.append(self.output_layer(state))
        self.keep_state(state)
        return self.shape_output(torch.cat(outs, 0))

    def describe(self) -> tuple[str, str]:
        return f"{self.hidden}->{self.outputs}", f"steps {self.steps}"
