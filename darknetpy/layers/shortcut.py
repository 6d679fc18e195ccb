"""``[shortcut]``: add an earlier layer's output to the previous one.

Darknet: ``src/parser.c:parse_shortcut``, ``src/shortcut_layer.c``, ``src/blas.c:shortcut_cpu`` (pjreddie)
and ``shortcut_multilayer_cpu`` (AlexeyAB) (darknet-reference.md §1.5, §3.4).

- pjreddie: one ``from``; ``out = prev``, then for the common channels and a strided/sampled grid
  ``out = alpha·prev + beta·from``; extra channels of ``prev`` are kept, those of ``from`` dropped.
- AlexeyAB: a list ``from``; ``out[i] = w0·prev[i] + Σ_k w_k·from_k[i]`` over the flat index ``i``
  (a smaller ``from_k`` adds to its first ``outputs_k`` values only); the weights are 1 unless
  ``weights_type`` is ``per_feature`` (one per input) or ``per_channel`` (one per input and
  channel), optionally normalised by ``relu`` or ``softmax``. The inputs must share ``w×h``.

Then the activation.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..activations import activate, activation_from_section
from ..cfg import Section
from ..errors import BadValueError, CfgError, ShapeError
from ..registry import register_section
from .base import BuildContext, DarknetLayer

__all__ = ["Shortcut"]

_WEIGHTS_TYPES = {"none": 0, "per_feature": 1, "per_layer": 1, "per_channel": 2}
_NORMALIZATIONS = {"none": 0, "relu": 1, "avg_relu": 1, "softmax": 2}


@register_section("shortcut")
class Shortcut(DarknetLayer):
    """Residual addition (with Darknet's size and channel rules)."""

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        if "from" not in sec:
            raise sec.error("a shortcut needs from=", cls=CfgError)
        self.activation = activation_from_section(sec, ctx.flavor, "linear")
        self.multilayer = ctx.flavor.shortcut_multilayer
        self.out_shape = ctx.in_shape
        self.outputs = ctx.inputs
        c, h, w = ctx.require_image(sec)
        if self.multilayer:
            values = sec.get_ints("from")
            self.sources = tuple(ctx.layer_index(sec, "from", v) for v in values)
            for i in self.sources:
                oc, oh, ow = ctx.layers[i].out_shape
                if (oh, ow) != (h, w):
                    raise sec.error(
                        f"layer {i} is {ow}x{oh}, the previous layer {w}x{h}: AlexeyAB's shortcut needs the same size "
                        "(parse_shortcut asserts it; pjreddie's darknet samples instead)",
                        "from",
                        ShapeError,
                    )
            self.weights_type = _WEIGHTS_TYPES.get(sec.get_str("weights_type", "none"), -1)
            if self.weights_type < 0:
                raise sec.error("use none, per_feature or per_channel", "weights_type", BadValueError)
            self.weights_normalization = _NORMALIZATIONS.get(sec.get_str("weights_normalization", "none"), -1)
            if self.weights_normalization < 0:
                raise sec.error("use none, relu or softmax", "weights_normalization", BadValueError)
            n = len(self.sources)
            count = 0 if self.weights_type == 0 else (n + 1) if self.weights_type == 1 else (n + 1) * c
            self.weights = nn.Parameter(torch.ones(count)) if count else None
            self.alpha = self.beta = 1.0
        else:
            text = sec.get_str("from")
            first = text.split(",")[0]
            self.sources = (ctx.layer_index(sec, "from", _int(sec, first)),)
            self.alpha = sec.get_float("alpha", 1.0)
            self.beta = sec.get_float("beta", 1.0)
            self.weights = None
            self.weights_type = 0
            self.weights_normalization = 0
        self.source_sizes = tuple(ctx.layers[i].outputs for i in self.sources)

    def forward(self, x: Tensor, cache: list) -> Tensor:
        x = self.image_input(x)
        if self.multilayer:
            y = self._multilayer(x, [cache[i] for i in self.sources])
        else:
            y = self._pjreddie(x, cache[self.sources[0]])
        return activate(y, self.activation)

    def _pjreddie(self, prev: Tensor, add: Tensor) -> Tensor:
        src_c, src_h, src_w = add.shape[1:] if add.dim() == 4 else (0, 0, 0)
        c, h, w = prev.shape[1:]
        if (src_c, src_h, src_w) == (c, h, w):
            return self.alpha * prev + self.beta * add if (self.alpha, self.beta) != (1.0, 1.0) else prev + add
        stride = max(1, src_w // w)
        sample = max(1, w // src_w)
        minc, minh, minw = min(c, src_c), min(h, src_h), min(w, src_w)
        out = prev.clone()
        ys = slice(0, minh * sample, sample)
        xs = slice(0, minw * sample, sample)
        src = add[:, :minc, 0 : minh * stride : stride, 0 : minw * stride : stride][:, :, :minh, :minw]
        out[:, :minc, ys, xs] = self.alpha * prev[:, :minc, ys, xs] + self.beta * src
        return out

    def _weights(self) -> Tensor | None:
        if self.weights is None:
            return None
        n = len(self.sources) + 1
        w = self.weights.view(n, -1)  # (inputs, 1 or channels)
        if self.weights_normalization == 1:
            r = torch.relu(w)
            w = r / (0.0001 + r.sum(dim=0, keepdim=True))
        elif self.weights_normalization == 2:
            e = torch.exp(w - w.max(dim=0, keepdim=True).values)
            w = e / (0.0001 + e.sum(dim=0, keepdim=True))
        return w

    def _multilayer(self, prev: Tensor, adds: list[Tensor]) -> Tensor:
        w = self._weights()
        b = prev.shape[0]

        def scaled(t: Tensor, k: int) -> Tensor:
            if w is None:
                return t
            wk = w[k]
            return t * (wk.view(1, -1, 1, 1) if wk.numel() > 1 else wk)

        out = scaled(prev, 0)
        for k, (add, size) in enumerate(zip(adds, self.source_sizes), start=1):
            if tuple(add.shape[1:]) == tuple(prev.shape[1:]):
                out = out + scaled(add, k)
            else:
                # flat index i < outputs_k: a smaller input adds to the first values only
                flat = out.reshape(b, -1)
                n = min(size, flat.shape[1])
                part = add.reshape(b, -1)[:, :n]
                if w is not None:
                    wk = w[k]
                    part = part * (wk.repeat_interleave(self.outputs // wk.numel())[:n] if wk.numel() > 1 else wk)
                flat = torch.cat([flat[:, :n] + part, flat[:, n:]], dim=1)
                out = flat.reshape(prev.shape)
        return out

    def weight_tensors(self) -> list[Tensor]:
        return [self.weights] if self.weights is not None else []

    def reset_parameters(self, generator=None) -> None:
        if self.weights is not None:
            with torch.no_grad():
                self.weights.fill_(1.0)

    def bflops(self) -> float:
        c, h, w = self.out_shape
        return c * h * w * len(self.sources) / 1e9

    def describe(self) -> tuple[str, str]:
        return "", " ".join(str(i) for i in self.sources)


def _int(sec: Section, text: str) -> int:
    try:
        return int(text.split("#")[0])
    except ValueError:
        raise sec.error("expected a layer index", "from", BadValueError) from None
