"""``[convolutional]`` / ``[conv]``.

Darknet: ``src/parser.c:parse_convolutional``, ``src/convolutional_layer.c:make_convolutional_layer``,
``forward_convolutional_layer``, ``load_convolutional_weights`` (darknet-reference.md §1.5, §1.7, §2.2, §3.1).

Output size ``(in + 2·padding − size)/stride + 1`` (``pad=1`` means ``padding = size/2``); GEMM, then
batch norm or ``+biases``, then the activation. File payload: ``biases[n]``, with batch norm
``scales, rolling_mean, rolling_variance``, then ``weights[n][c/groups][size][size]``.
AlexeyAB adds ``stride_x/stride_y``, ``dilation`` (PyTorch padding ``padding·dilation``),
``antialiasing`` (a fixed depthwise blur after a stride-1 conv), ``share_index`` (weights of
another conv, not stored again) and ``xnor``/``binary`` (sign-binarised weights, scaled by the mean
absolute value per filter; ``xnor`` binarises the input to ±1 too).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..activations import activate, activation_from_section
from ..cfg import Section
from ..errors import ShapeError
from ..registry import register_section
from .base import BuildContext, DarknetLayer, Shape, c_div, normal_, positive, straight_through, uniform_
from .batchnorm import BatchNormParams

__all__ = ["Convolutional", "binarize_weights"]

_UNSUPPORTED_TRAINING_KEYS = ("sway", "rotate", "stretch", "stretch_sway", "assisted_excitation")


def binarize_weights(w: Tensor) -> Tensor:
    """``binarize_weights``: per filter, ``sign(w)·mean(|w|)`` (``w > 0`` gives +, else −)."""
    mean = w.abs().flatten(1).mean(dim=1).view(-1, *([1] * (w.dim() - 1)))
    return torch.where(w > 0, mean, -mean)


@register_section("convolutional", "conv")
class Convolutional(DarknetLayer):
    """A Darknet convolution with optional batch norm and activation."""

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        f = ctx.flavor
        c, h, w = ctx.require_image(sec)
        n = positive(sec, "filters", sec.get_int("filters", 1))
        groups = positive(sec, "groups", sec.get_int("groups", 1))
        size = positive(sec, "size", sec.get_int("size", 1))
        ab = f.reads("convolutional", "stride_x")
        stride_x = sec.get_int("stride_x", -1) if ab else -1
        stride_y = sec.get_int("stride_y", -1) if ab else -1
        stride = sec.get_int("stride", 1)
        if stride_x < 1:
            stride_x = stride
        if stride_y < 1:
            stride_y = stride
        positive(sec, "stride", min(stride_x, stride_y))
        dilation = sec.get_int("dilation", 1) if ab else 1
        if size == 1:
            dilation = 1
        positive(sec, "dilation", dilation)
        self.antialiasing = sec.get_int("antialiasing", 0) if ab else 0
        pad = sec.get_int("pad", 0)
        padding = sec.get_int("padding", 0)
        if pad:
            padding = size // 2
        if c % groups or n % groups:
            raise sec.error(f"groups={groups} must divide the input channels ({c}) and filters ({n})", "groups", ShapeError)
        self.activation = activation_from_section(sec, f, "logistic")
        self.batch_normalize = sec.get_int("batch_normalize", 0)
        if ab and sec.get_int("cbn", 0):
            self.batch_normalize = 2
        self.binary = sec.get_int("binary", 0)
        self.xnor = sec.get_int("xnor", 0)
        self.flipped = sec.get_int("flipped", 0)
        sec.mark_used("dot")
        if ab:
            sec.mark_used("bin_output", "angle", "grad_centr", "reverse", "coordconv", "stream", "wait_stream")
            for key in _UNSUPPORTED_TRAINING_KEYS:
                sec.mark_used(key)
        self.share_index: int | None = None
        if ab and "share_index" in sec:
            value = sec.get_int("share_index")
            self.share_index = value if value >= 0 else ctx.index + value
            if not 0 <= self.share_index < ctx.index:
                raise sec.error(f"points to layer {self.share_index}, not an earlier layer", "share_index", ShapeError)

        self.n, self.c, self.size, self.groups = n, c, size, groups
        self.stride_x, self.stride_y, self.dilation, self.padding = stride_x, stride_y, dilation, padding
        conv_sx, conv_sy = (1, 1) if self.antialiasing else (stride_x, stride_y)
        out_h = c_div(h + 2 * padding - size, conv_sy) + 1
        out_w = c_div(w + 2 * padding - size, conv_sx) + 1
        if out_h < 1 or out_w < 1:
            raise sec.error(f"the output would be {out_w}x{out_h}: the input {w}x{h} is too small for size={size}", "size", ShapeError)
        if dilation > 1:
            torch_h = (h + 2 * padding * dilation - dilation * (size - 1) - 1) // conv_sy + 1
            torch_w = (w + 2 * padding * dilation - dilation * (size - 1) - 1) // conv_sx + 1
            if (torch_h, torch_w) != (out_h, out_w):
                raise sec.error("dilation needs pad=1 with an odd size in Darknet (otherwise its output size is not self-consistent)", "dilation", ShapeError)
        self.conv_out: Shape = (n, out_h, out_w)
        self.out_shape = (n, out_h, out_w)
        self.outputs = n * out_h * out_w

        self.weight = nn.Parameter(torch.zeros(n, c // groups, size, size))
        self.biases = nn.Parameter(torch.zeros(n))
        self.bn = BatchNormParams(n, f) if self.batch_normalize else None
        if self.share_index is not None:
            other = ctx.layers[self.share_index]
            if not isinstance(other, Convolutional) or other.weight.shape != self.weight.shape or bool(other.bn) != bool(self.bn):
                raise sec.error(f"layer {self.share_index} is not a convolution of the same shape", "share_index", ShapeError)
            self.weight, self.biases, self.bn = other.weight, other.biases, other.bn
        self._next: Shape = self.out_shape
        if self.antialiasing:
            blur = 2 if self.antialiasing == 2 else 3
            blur_pad = 0 if blur == 2 else 1
            kernel = torch.full((2, 2), 0.25) if blur == 2 else torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16
            self.register_buffer("blur_weight", kernel.expand(n, 1, blur, blur).clone(), persistent=False)
            self.blur_pad = blur_pad
            bh = (out_h + 2 * blur_pad - blur) // stride_y + 1
            bw = (out_w + 2 * blur_pad - blur) // stride_x + 1
            self._next = (n, bh, bw)

    # ---- shapes -------------------------------------------------------------------------
    @property
    def next_shape(self) -> Shape:
        return self._next

    @property
    def next_inputs(self) -> int:
        return math.prod(self._next)

    # ---- forward ------------------------------------------------------------------------
    def effective_weight(self) -> Tensor:
        w = self.weight
        if self.binary or self.xnor:
            w = straight_through(w, binarize_weights(w.detach()))
        return w

    def forward(self, x: Tensor, cache: list) -> Tensor:
        x = self.image_input(x)
        if self.xnor:  # binarize_cpu: x > 0 ? 1 : -1
            x = straight_through(x, torch.where(x.detach() > 0, 1.0, -1.0).to(x.dtype))
        sx, sy = (1, 1) if self.antialiasing else (self.stride_x, self.stride_y)
        y = F.conv2d(
            x,
            self.effective_weight(),
            None,
            (sy, sx),
            self.padding * self.dilation,
            self.dilation,
            self.groups,
        )
        y = self.bn(y, self.biases) if self.bn is not None else y + self.biases.view(1, -1, 1, 1)
        y = activate(y, self.activation)
        if self.antialiasing:
            y = F.conv2d(y, self.blur_weight.to(y.dtype), None, (self.stride_y, self.stride_x), self.blur_pad, 1, self.n)
        return y

    # ---- weights ------------------------------------------------------------------------
    def _stored(self) -> list[Tensor]:
        bn = None if self.dontloadscales else self.bn
        tensors = [self.biases] + ([bn.scales, bn.rolling_mean, bn.rolling_variance] if bn is not None else []) + [self.weight]
        if self.numload:  # pjreddie: only the first numload filters are in the file
            tensors = [t[: self.numload] for t in tensors]
        return tensors

    def weight_tensors(self) -> list[Tensor]:
        if self.share_index is not None:
            return []
        return self._stored()

    def read_weights(self, reader) -> None:
        super().read_weights(reader)
        if self.bn is not None and not self.dontloadscales and bool((self.bn.rolling_variance < 0).any()):
            from ..errors import WeightsError

            raise WeightsError(
                f"layer {self.index} [convolutional] ({self.where}): negative rolling variance read; the cfg does not "
                "match these weights (the bytes are misaligned)",
                path=reader.path,
                layer=self.index,
            )
        if self.flipped:
            # load_convolutional_weights: transpose_matrix(weights, c/groups·size², n)
            w = self.weight.detach().reshape(-1).clone()
            rows, cols = (self.c // self.groups) * self.size * self.size, self.n
            with torch.no_grad():
                self.weight.copy_(w.view(rows, cols).t().reshape(self.weight.shape))

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        if self.share_index is not None:
            return
        fan_in = (self.c // self.groups) * self.size * self.size
        scale = math.sqrt(2.0 / fan_in)
        (uniform_ if self.flavor.conv_init_uniform else normal_)(self.weight, scale, generator)
        with torch.no_grad():
            self.biases.zero_()
        if self.bn is not None:
            self.bn.reset()

    # ---- summary ------------------------------------------------------------------------
    def bflops(self) -> float:
        n, oh, ow = self.conv_out
        return 2.0 * (self.c // self.groups) * n * self.size * self.size * oh * ow / 1e9

    def describe(self) -> tuple[str, str]:
        filters = f"{self.n}" + (f"/{self.groups}" if self.groups > 1 else "")
        if self.stride_x == self.stride_y:
            size = f"{self.size} x{self.size:2d}/{self.stride_x:2d}"
        else:
            size = f"{self.size} x{self.size:2d}/{self.stride_x:2d}x{self.stride_y:2d}"
        if self.dilation > 1:
            size += f"({self.dilation})"
        flags = "".join(
            s for s, on in (("xnor ", self.xnor), ("AA ", self.antialiasing), ("share ", self.share_index is not None)) if on
        )
        return filters, flags + size
