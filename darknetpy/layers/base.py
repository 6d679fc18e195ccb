"""What every layer family shares: the build context, shapes, generic keys and the weights walk.

Darknet keeps, for each layer, ``l.out_c/out_h/out_w`` and ``l.outputs`` (floats per image); the
next layer is built from them (``params`` in ``parse_network_cfg``). A layer here keeps the same
numbers in :attr:`DarknetLayer.out_shape` and :attr:`DarknetLayer.outputs`, so shapes, summaries
and weight sizes follow Darknet exactly, including its zeros (a softmax reports 0×0×0).

Tensors between layers are ``(B, C, H, W)`` when the layer has an image shape, else ``(B, outputs)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..cfg import Section
from ..errors import BadValueError, ShapeError
from ..flavor import FlavorSpec

if TYPE_CHECKING:
    from ..net import NetOptions
    from ..weights import WeightsReader, WeightsWriter

Shape = tuple[int, int, int]  # (c, h, w), Darknet's out_c, out_h, out_w


def c_div(a: int, b: int) -> int:
    """C integer division (truncates toward zero), as Darknet's size formulas use it."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


@dataclass
class BuildContext:
    """What a layer sees while it is built: Darknet's ``size_params`` plus the layers before it."""

    flavor: FlavorSpec
    net: "NetOptions"
    index: int
    in_shape: Shape
    inputs: int
    layers: Sequence["DarknetLayer"]
    batch: int = 1

    def layer_index(self, sec: Section, key: str, value: int) -> int:
        """Resolve a (possibly relative) layer reference; it must point to an earlier layer."""
        idx = value if value >= 0 else self.index + value
        if not 0 <= idx < self.index:
            raise sec.error(
                f"layer {value} resolves to {idx}, outside the layers before this one (0..{self.index - 1})",
                key,
                ShapeError,
            )
        return idx

    def require_image(self, sec: Section) -> Shape:
        """The input must be an image (Darknet: "Layer before ... must output image")."""
        c, h, w = self.in_shape
        if not (c > 0 and h > 0 and w > 0):
            raise sec.error(f"the layer before must output an image (c×h×w), it gives {c}×{h}×{w}", cls=ShapeError)
        return self.in_shape


def positive(sec: Section, key: str, value: int | float, minimum: int | float = 1) -> int | float:
    """Check ``value >= minimum`` for ``key``; a :class:`BadValueError` at its line otherwise."""
    if value < minimum:
        raise sec.error(f"must be at least {minimum}", key, BadValueError)
    return value


class DarknetLayer(nn.Module):
    """Base of every section family.

    Subclasses are registered with :func:`darknetpy.registry.register_section`, build themselves in
    ``__init__(section, ctx)``, set ``out_shape``/``outputs`` and implement :meth:`forward`.
    Layers with weights list them, in file order, in :meth:`weight_tensors`.
    """

    section_type: ClassVar[str] = ""
    section_names: ClassVar[tuple[str, ...]] = ()
    is_head: ClassVar[bool] = False  # a detection head (yolo, region, ...)
    has_cost: ClassVar[bool] = False  # counted in Darknet's network cost

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__()
        self.index = ctx.index
        self.flavor = ctx.flavor
        self.in_shape: Shape = ctx.in_shape
        self.inputs: int = ctx.inputs
        self.out_shape: Shape = ctx.in_shape
        self.outputs: int = ctx.inputs
        self.sources: tuple[int, ...] = ()  # earlier layers forward() reads besides the previous one
        self.section_name = sec.name
        self.where = sec.where()
        # keys every layer reads (§1.4)
        f = ctx.flavor
        self.stopbackward = sec.get_int("stopbackward", 0)
        self.onlyforward = sec.get_int("onlyforward", 0)
        self.dontload = sec.get_int("dontload", 0)
        self.dontloadscales = sec.get_int("dontloadscales", 0)
        self.learning_rate_scale = sec.get_float("learning_rate", 1.0)
        self.dontsave = sec.get_int("dontsave", 0) if "dontsave" in f.layer_keys else 0
        self.numload = sec.get_int("numload", 0) if "numload" in f.layer_keys else 0
        self.clip = sec.get_float("clip", 0.0) if "clip" in f.layer_keys else 0.0
        self.dont_update = sec.get_int("dont_update", 0) if "dont_update" in f.layer_keys else 0
        self.burnin_update = sec.get_int("burnin_update", 0) if "burnin_update" in f.layer_keys else 0
        self.train_only_bn = sec.get_int("train_only_bn", 0) if "train_only_bn" in f.layer_keys else 0
        if "truth" in f.layer_keys:
            sec.mark_used("truth", "smooth")

    # ---- shapes -------------------------------------------------------------------------
    @property
    def next_shape(self) -> Shape:
        """The (c, h, w) the next layer is built from (differs only with antialiasing)."""
        return self.out_shape

    @property
    def next_inputs(self) -> int:
        return self.outputs

    def shape_output(self, x: Tensor) -> Tensor:
        """Give a flat or image tensor this layer's output layout."""
        c, h, w = self.out_shape
        if c > 0 and h > 0 and w > 0 and c * h * w == self.outputs:
            return x.reshape(x.shape[0], c, h, w)
        return x.reshape(x.shape[0], -1)

    def image_input(self, x: Tensor) -> Tensor:
        """The input as (B, C, H, W) using this layer's input shape."""
        c, h, w = self.in_shape
        if x.dim() == 4 and tuple(x.shape[1:]) == (c, h, w):
            return x
        return x.reshape(x.shape[0], c, h, w)

    # ---- weights ------------------------------------------------------------------------
    def weight_tensors(self) -> list[Tensor]:
        """Tensors stored in the .weights file, in Darknet's order (empty for most layers)."""
        return []

    def num_weights(self) -> int:
        """Floats this layer occupies in a .weights file."""
        if self.dontload:
            return 0
        return sum(t.numel() for t in self.weight_tensors())

    def read_weights(self, reader: "WeightsReader") -> None:
        """Fill the tensors of :meth:`weight_tensors` from the file, in order."""
        for t in self.weight_tensors():
            reader.read_into(t, self)

    def write_weights(self, writer: "WeightsWriter") -> None:
        for t in self.weight_tensors():
            writer.write(t)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Darknet's initialisation of this layer's weights (§5.4)."""

    # ---- summary ------------------------------------------------------------------------
    def bflops(self) -> float:
        return 0.0

    def describe(self) -> tuple[str, str]:
        """The ``filters`` and ``size/strd(dil)`` columns of Darknet's layer table."""
        return "", ""

    def extra_repr(self) -> str:
        c, h, w = self.out_shape
        return f"index={self.index}, out={c}x{h}x{w}"


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, y: Tensor) -> Tensor:  # type: ignore[override]
        return y.clone()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return grad, None


def straight_through(x: Tensor, y: Tensor) -> Tensor:
    """The value of ``y`` with the gradient of ``x`` (binarised weights, Darknet-rounded statistics)."""
    return _StraightThrough.apply(x, y.detach())


def numel(shape: Shape) -> int:
    return math.prod(shape)


def uniform_(t: Tensor, scale: float, generator: torch.Generator | None) -> None:
    with torch.no_grad():
        t.uniform_(-scale, scale, generator=generator)


def normal_(t: Tensor, scale: float, generator: torch.Generator | None) -> None:
    with torch.no_grad():
        t.normal_(0.0, scale, generator=generator)


def as_numpy(t: Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).contiguous().numpy()
