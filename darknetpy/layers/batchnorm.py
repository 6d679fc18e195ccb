"""Darknet batch normalisation, used by conv and connected layers, and the ``[batchnorm]`` section.

Darknet: ``src/batchnorm_layer.c:forward_batchnorm_layer``, ``src/blas.c:normalize_cpu``,
``mean_cpu``, ``variance_cpu`` (darknet-reference.md §3.1).

- inference: rolling statistics; pjreddie ``(x-m)/(sqrt(v)+1e-6)``, AlexeyAB ``(x-m)/sqrt(v+1e-5)``;
- training: this batch's mean and **unbiased** variance (``1/(N·H·W-1)``) normalise, and the rolling
  statistics move by the flavour's momentum (pjreddie .01, AlexeyAB CPU .1);
- then ``γ·x̂ + β``.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from ..cfg import Section
from ..flavor import FlavorSpec
from ..registry import register_section
from .base import BuildContext, DarknetLayer, straight_through

__all__ = ["BatchNormParams", "darknet_batch_norm", "sequential_statistics", "BatchNorm"]


def sequential_statistics(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and unbiased variance summed one value at a time in float32.

    Darknet: ``src/blas.c:mean_cpu/variance_cpu`` add every value of a channel into one float in
    order; over 10^5 values that rounding moves a deep network's training-mode output by up to
    1e-2 of its largest value. This reproduces it (for verification; the gradient is the exact one).
    """
    a = x.detach().to("cpu", torch.float32).transpose(0, 1).reshape(x.shape[1], -1).numpy()
    n = a.shape[1]
    total = np.add.accumulate(a, axis=1, dtype=np.float32)[:, -1]
    mean = (total * np.float32(1.0 / n)).astype(np.float32)
    sq = np.square((a - mean[:, None]).astype(np.float64)).astype(np.float32)
    var = (np.add.accumulate(sq, axis=1, dtype=np.float32)[:, -1] * np.float32(1.0 / (n - 1))).astype(np.float32)
    return torch.from_numpy(mean).to(x.device, x.dtype), torch.from_numpy(var).to(x.device, x.dtype)


def darknet_batch_norm(
    x: Tensor,
    scales: Tensor,
    biases: Tensor,
    rolling_mean: Tensor,
    rolling_variance: Tensor,
    flavor: FlavorSpec,
    training: bool,
    sequential_sums: bool = False,
    momentum: float | None = None,
) -> Tensor:
    """Normalise over all but dim 1 of ``x`` (``(B, C, H, W)`` or ``(B, C)``), Darknet's way."""
    view = (1, -1) + (1,) * (x.dim() - 2)
    m = flavor.bn_momentum if momentum is None else momentum
    n = x.numel() // x.shape[1]
    if training and flavor.bn_eps_inside_sqrt and not sequential_sums and n > 1 and x.dim() in (2, 4):
        # The same function through PyTorch's fused kernel (one pass, fast backward): it normalises by
        # the biased variance v_b, and (x-m)/sqrt(v_u+eps) = (x-m)/sqrt(v_b + eps(n-1)/n) · sqrt((n-1)/n)
        # with v_u = v_b·n/(n-1); its running update uses v_u and the same momentum form as Darknet.
        shrink = ((n - 1) / n) ** 0.5
        return torch.batch_norm(
            x, scales * shrink, biases, rolling_mean, rolling_variance, True, m, flavor.bn_eps * (n - 1) / n, False
        )
    if training:
        dims = [0] + list(range(2, x.dim()))
        var, mean = torch.var_mean(x, dim=dims, correction=1)
        if sequential_sums:
            seq_mean, seq_var = sequential_statistics(x)
            mean, var = straight_through(mean, seq_mean), straight_through(var, seq_var)
        with torch.no_grad():
            rolling_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
            rolling_variance.mul_(1 - m).add_(var.detach(), alpha=m)
    else:
        mean, var = rolling_mean, rolling_variance
    if flavor.bn_eps_inside_sqrt:
        denom = torch.sqrt(var + flavor.bn_eps)
    else:
        denom = torch.sqrt(var) + flavor.bn_eps
    y = (x - mean.view(view)) / denom.view(view)
    return y * scales.view(view) + biases.view(view)


class BatchNormParams(nn.Module):
    """γ (``scales``) and the rolling statistics of ``n`` channels; β is the owner's ``biases``."""

    def __init__(self, n: int, flavor: FlavorSpec, momentum: float | None = None) -> None:
        super().__init__()
        self.flavor = flavor
        self.momentum = momentum  # None: the flavour's (conv); connected layers use .05
        self.sequential_sums = False  # see sequential_statistics
        self.scales = nn.Parameter(torch.ones(n))
        self.register_buffer("rolling_mean", torch.zeros(n))
        self.register_buffer("rolling_variance", torch.zeros(n))

    def forward(self, x: Tensor, biases: Tensor) -> Tensor:
        return darknet_batch_norm(
            x, self.scales, biases, self.rolling_mean, self.rolling_variance, self.flavor, self.training,
            self.sequential_sums, self.momentum,
        )

    def fold(self, biases: Tensor) -> tuple[Tensor, Tensor]:
        """(multiplier, offset) in double with ``bn(x) = x·mult + offset`` at inference (AB ``fuse_conv_batchnorm``)."""
        mean = self.rolling_mean.double()
        var = self.rolling_variance.double()
        f = self.flavor
        denom = torch.sqrt(var + f.bn_eps) if f.bn_eps_inside_sqrt else torch.sqrt(var) + f.bn_eps
        mult = self.scales.detach().double() / denom
        offset = biases.detach().double() - mean * mult
        return mult, offset

    def reset(self) -> None:
        with torch.no_grad():
            self.scales.fill_(1.0)
            self.rolling_mean.zero_()
            self.rolling_variance.zero_()


@register_section("batchnorm")
class BatchNorm(DarknetLayer):
    """A stand-alone ``[batchnorm]`` layer (no keys)."""

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        c, h, w = ctx.require_image(sec)
        self.out_shape = (c, h, w)
        self.outputs = c * h * w
        self.biases = nn.Parameter(torch.zeros(c))
        self.bn = BatchNormParams(c, ctx.flavor)

    def forward(self, x: Tensor, cache: list) -> Tensor:
        return self.bn(self.image_input(x), self.biases)

    def weight_tensors(self) -> list[Tensor]:
        bn = self.bn
        # §2.2: AlexeyAB stores β too; pjreddie only γ and the rolling statistics.
        head = [self.biases] if self.flavor.batchnorm_saves_biases else []
        return head + [bn.scales, bn.rolling_mean, bn.rolling_variance]

    def reset_parameters(self, generator=None) -> None:
        self.bn.reset()
        with torch.no_grad():
            self.biases.zero_()
