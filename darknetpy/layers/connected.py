"""``[connected]`` / ``[conn]``: a fully connected layer on the flattened (C, H, W) input.

Darknet: ``src/parser.c:parse_connected``, ``src/connected_layer.c`` (darknet-reference.md §1.5, §2.2, §3.4).
``y = x·Wᵀ``, then batch norm (over the batch) or ``+biases``, then the activation. File payload:
``biases[out]``, ``weights[out][in]`` (transposed ``[in][out]`` when the header's major or minor
exceeds 1000), then with batch norm ``scales, rolling_mean, rolling_variance`` — after the weights,
unlike a conv.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..activations import activate, activation_from_section
from ..cfg import Section
from ..errors import BadValueError
from ..flavor import FlavorSpec
from ..registry import register_section
from .base import BuildContext, DarknetLayer, positive, uniform_
from .batchnorm import BatchNormParams

__all__ = ["Connected", "ConnectedBlock"]


class ConnectedBlock(nn.Module):
    """The maths and storage of one connected layer (also the blocks of rnn/gru/lstm)."""

    def __init__(self, inputs: int, outputs: int, activation: str, batch_normalize: int, flavor: FlavorSpec) -> None:
        super().__init__()
        self.inputs, self.outputs, self.activation = inputs, outputs, activation
        self.weight = nn.Parameter(torch.zeros(outputs, inputs))
        self.biases = nn.Parameter(torch.zeros(outputs))
        # forward_connected_layer (both forks) moves the rolling statistics by .95/.05
        self.bn = BatchNormParams(outputs, flavor, momentum=0.05) if batch_normalize else None

    def forward(self, x: Tensor) -> Tensor:
        y = F.linear(x.reshape(x.shape[0], self.inputs), self.weight)
        y = self.bn(y, self.biases) if self.bn is not None else y + self.biases
        return activate(y, self.activation)

    def stored(self, dontloadscales: bool = False) -> list[Tensor]:
        if self.bn is None or dontloadscales:
            return [self.biases, self.weight]
        return [self.biases, self.weight, self.bn.scales, self.bn.rolling_mean, self.bn.rolling_variance]

    def read(self, reader, layer: DarknetLayer, dontloadscales: bool = False) -> None:
        reader.read_into(self.biases, layer)
        if reader.transpose:  # load_connected_weights: transpose_matrix(weights, inputs, outputs)
            arr = reader.take(self.weight.numel(), layer).reshape(self.inputs, self.outputs).T
            with torch.no_grad():
                self.weight.copy_(torch.from_numpy(arr.copy()))
        else:
            reader.read_into(self.weight, layer)
        if self.bn is not None and not dontloadscales:
            for t in (self.bn.scales, self.bn.rolling_mean, self.bn.rolling_variance):
                reader.read_into(t, layer)

    def reset(self, generator: torch.Generator | None = None) -> None:
        uniform_(self.weight, math.sqrt(2.0 / max(1, self.inputs)), generator)
        with torch.no_grad():
            self.biases.zero_()
        if self.bn is not None:
            self.bn.reset()


@register_section("connected", "conn")
class Connected(DarknetLayer):
    """Fully connected layer; output shape ``output×1×1``."""

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        output = positive(sec, "output", sec.get_int("output", 1))
        activation = activation_from_section(sec, ctx.flavor, "logistic", generic=True)
        if ctx.inputs < 1:
            raise sec.error("the layer before gives no outputs", cls=BadValueError)
        self.block = ConnectedBlock(ctx.inputs, output, activation, sec.get_int("batch_normalize", 0), ctx.flavor)
        self.out_shape = (output, 1, 1)
        self.outputs = output

    def forward(self, x: Tensor, cache: list) -> Tensor:
        return self.block(x).reshape(x.shape[0], self.outputs, 1, 1)

    def weight_tensors(self) -> list[Tensor]:
        return self.block.stored(bool(self.dontloadscales))

    def read_weights(self, reader) -> None:
        self.block.read(reader, self, bool(self.dontloadscales))

    def reset_parameters(self, generator=None) -> None:
        self.block.reset(generator)

    def bflops(self) -> float:
        return 2.0 * self.inputs * self.outputs / 1e9

    def describe(self) -> tuple[str, str]:
        return f"{self.outputs}", ""
